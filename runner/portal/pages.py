"""The pages a signed-in person uses: the catalog, a runbook's form, a request from plan to
run, approvals, past runs, the audit log.

Every refusal (a runbook the person's roles do not grant, a parameter they may not give, a
request that is not theirs, a limit reached) is answered 403, 404 or 429 and written to the
audit log with the parameters as posted, secrets masked."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from ..errors import InputError
from ..executor import Busy
from ..render_text import action_text, label
from ..results import Status
from ..rundir import RunDir, list_runs
from ..runbook import Runbook
from ..secrets import MASK
from .app import Portal, ip_of, signed_in
from .audit import as_csv
from .desk import WAITING, Request as DeskRequest
from .forms import PREFIX, FormErrors, asked, form_view, read_form
from .policy import Refused


def posted_params(rb: Runbook, form: Any) -> dict[str, str]:
    """What a form posted, as the audit log may keep it: secret parameters masked."""
    out = {}
    for key, value in form.items():
        if key.startswith(PREFIX):
            name = key[len(PREFIX):]
            p = rb.params.get(name)
            out[name] = MASK if (p is None or p.secret) and value else str(value)
    return out


def report(portal: Portal, run_id: str | None, rb: Runbook | None = None) -> dict[str, Any] | None:
    """A run directory as the report template shows it; live while the run is under way (also
    before the engine has written its first file: a job waiting for a worker)."""
    if not run_id:
        return None
    rd = RunDir(portal.state_dir, run_id)
    if not rd.path.is_dir():
        return None
    try:                            # a corrupt run is no page (RunDir says InputError), not a 500
        info = rd.read_info() if (rd.path / RunDir.INFO).is_file() else {}
        result = rd.load_result() if info else None
    except InputError:
        return None
    if not info:
        rows = [{"id": s.id, "title": s.title, "status": "waiting", "label": "waiting", "messages": [], "error": None,
                 "action": None} for s in (rb.stages if rb else ())]
        return {"run_id": run_id, "runbook": rb.name if rb else "", "mode": "", "rows": rows, "status": "running",
                "finished": False, "headline": None, "notices": [], "started": None, "params": {}}
    finished = (rd.path / RunDir.REPORT).is_file()
    done = {s.id: s for s in result.stages}
    titles = {sid: s.title for sid, s in done.items()}
    try:
        titles = {s.id: s.title for s in portal.catalog.load(info["source"]).stages} | titles
    except (InputError, OSError, KeyError):
        pass
    rows = []
    for sid, title in titles.items():
        s = done.get(sid)
        rows.append({"id": sid, "title": title, "status": s.status.value if s else "waiting",
                     "label": label(result.mode, s.status) if s else ("not run" if finished else "waiting"),
                     "messages": (s.messages + s.warnings) if s else [],
                     "error": (s.error or {}).get("message") if s and s.status == Status.FAILED else None,
                     "action": action_text(s) if s and s.action else None})
    return {"run_id": run_id, "runbook": info.get("runbook"), "mode": info.get("mode"), "rows": rows,
            "status": result.status.value if finished else "running", "finished": finished,
            "headline": result.headline if finished else None, "notices": result.notices,
            "started": info.get("started"), "params": info.get("params", {})}


def routes(portal: Portal) -> list[Route]:
    policy = portal.config.policy

    @signed_in(portal)
    async def catalog(request: Request, session) -> Response:
        books = await run_in_threadpool(portal.visible, session.user)
        groups: dict[str, list] = {}
        for _entry, rb, grant in books:
            groups.setdefault(rb.audiences[0], []).append((rb, grant))
        order = [a for a in ("helpdesk", "admin", "scheduled") if a in groups]
        return portal.render("catalog.html", request, session, title="Runbooks", groups=[(a, groups[a]) for a in order],
                             mine=list(reversed(portal.desk.mine(session.user)))[:10])

    def runbook_or_refuse(request: Request, session, name: str):
        found = portal.granted(session.user, name)
        if found is None:
            return None, portal.refuse(request, session, 404 if request.method == "GET" else 403,
                                       f"there is no runbook {name!r} that you may run", runbook=name)
        return found, None

    @signed_in(portal)
    async def runbook_page(request: Request, session) -> Response:
        found, refusal = runbook_or_refuse(request, session, request.path_params["name"])
        if refusal is not None:
            return refusal
        rb, grant = found
        setup = portal.config.setup(rb.name)
        return portal.render("runbook.html", request, session, title=rb.title, rb=rb,
                             form=form_view(rb, grant, setup, environ=portal.environ))

    @signed_in(portal)
    async def plan(request: Request, session) -> Response:
        name = request.path_params["name"]
        found, refusal = runbook_or_refuse(request, session, name)
        if refusal is not None:
            return refusal
        rb, grant = found
        form, setup = request.state.form, portal.config.setup(rb.name)
        try:
            values, sources = await run_in_threadpool(read_form, rb, grant, setup, form, environ=portal.environ)
        except Refused as e:
            return portal.refuse(request, session, 403, e.message, runbook=rb.name, params=posted_params(rb, form))
        except FormErrors as e:
            return portal.render("runbook.html", request, session, status=400, title=rb.title, rb=rb,
                                 form=form_view(rb, grant, setup, environ=portal.environ, posted=form, errors=e))
        try:
            req = portal.desk.plan(rb, session.user, values, sources, asked=asked(values, grant, form), ip=ip_of(request),
                                   limit=setup.max_concurrent)
        except Busy as e:
            resp = portal.refuse(request, session, 429, f"{e.message}; {e.hint}", runbook=rb.name,
                                 params=posted_params(rb, form))
            resp.headers["Retry-After"] = "30"
            return resp
        except InputError as e:           # what the executor cannot carry (a typed secret to a worker)
            return portal.refuse(request, session, 400, e.message, runbook=rb.name, params=posted_params(rb, form))
        return RedirectResponse(f"/requests/{req.id}", status_code=303)

    def request_or_refuse(request: Request, session) -> tuple[DeskRequest | None, Response | None]:
        req = portal.desk.get(request.path_params["rid"])
        if req is None or not portal.desk.may_see(req, session.user):
            return None, portal.refuse(request, session, 404, "there is no such request that you may see",
                                       request=request.path_params["rid"])
        return req, None

    @signed_in(portal)
    async def request_page(request: Request, session) -> Response:
        req, refusal = request_or_refuse(request, session)
        if refusal is not None:
            return refusal
        one_time = portal.desk.take_one_time(req, session.user)
        return portal.render("request.html", request, session, title=f"{req.runbook.title}", req=req,
                             plan=report(portal, req.plan_run, req.runbook), run=report(portal, req.run_run, req.runbook),
                             may_approve=portal.desk.may_approve(req, session.user) and req.state == WAITING,
                             one_time=one_time)

    def step(action: str):
        @signed_in(portal)
        async def handler(request: Request, session) -> Response:
            req, refusal = request_or_refuse(request, session)
            if refusal is not None:
                return refusal
            try:
                if action == "confirm":
                    portal.desk.confirm(req, session.user, ip_of(request))
                elif action == "approve":
                    portal.desk.approve(req, session.user, ip_of(request))
                else:
                    portal.desk.reject(req, session.user, ip_of(request), str(request.state.form.get("note", ""))[:500])
            except Refused as e:
                return portal.refuse(request, session, 403, e.message, runbook=req.runbook.name, request=req.id)
            except Busy as e:
                return portal.refuse(request, session, 429, f"{e.message}; {e.hint}", runbook=req.runbook.name,
                                     request=req.id)
            return RedirectResponse(f"/requests/{req.id}", status_code=303)
        return handler

    @signed_in(portal)
    async def approvals(request: Request, session) -> Response:
        return portal.render("approvals.html", request, session, title="Approvals",
                             waiting=portal.desk.waiting_for(session.user))

    @signed_in(portal)
    async def runs(request: Request, session) -> Response:
        items = [r for r in await run_in_threadpool(list_runs, portal.state_dir)
                 if portal.desk.may_see_run(r["run_id"], session.user)]
        for r in items:
            r["owner"] = portal.desk.run_owner.get(r["run_id"], "command line")
        return portal.render("runs.html", request, session, title="Runs", runs=items[:500])

    @signed_in(portal)
    async def run_page(request: Request, session) -> Response:
        run_id = request.path_params["run_id"]
        view = report(portal, run_id) if portal.desk.may_see_run(run_id, session.user) else None
        if view is None:
            return portal.refuse(request, session, 404, f"there is no run {run_id!r} that you may see", run_id=run_id)
        return portal.render("run.html", request, session, title=f"Run {run_id}", run=view)

    def auditor(request: Request, session) -> Response | None:
        if policy.can(session.user.roles, "audit"):
            return None
        return portal.refuse(request, session, 403, "the audit log is for roles that may read it")

    @signed_in(portal)
    async def audit_page(request: Request, session) -> Response:
        refusal = auditor(request, session)
        if refusal is not None:
            return refusal
        q = {k: request.query_params.get(k, "") for k in ("event", "who", "runbook")}
        records = await run_in_threadpool(lambda: portal.audit.search(**q))
        return portal.render("audit.html", request, session, title="Audit", records=records, q=q,
                             broken=await run_in_threadpool(portal.audit.verify))

    @signed_in(portal)
    async def audit_export(request: Request, session) -> Response:
        refusal = auditor(request, session)
        if refusal is not None:
            return refusal
        fmt = request.query_params.get("format", "jsonl")
        records = await run_in_threadpool(portal.audit.records)
        portal.audit.write("export", who=session.user, ip=ip_of(request), detail=f"{len(records)} records as {fmt}")
        if fmt == "csv":
            body, kind = as_csv(records), "text/csv; charset=utf-8"
        else:
            import json
            body, kind = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), "application/x-ndjson"
        return Response(body, media_type=kind, headers={
            "Content-Disposition": f'attachment; filename="psrunner-audit.{"csv" if fmt == "csv" else "jsonl"}"',
            "Cache-Control": "no-store"})

    async def favicon(request: Request) -> Response:
        return Response(status_code=204)

    return [Route("/", catalog, methods=["GET"]),
            Route("/favicon.ico", favicon, methods=["GET"]),
            Route("/runbooks/{name}", runbook_page, methods=["GET"]),
            Route("/runbooks/{name}/plan", plan, methods=["POST"]),
            Route("/requests/{rid}", request_page, methods=["GET"]),
            Route("/requests/{rid}/confirm", step("confirm"), methods=["POST"]),
            Route("/requests/{rid}/approve", step("approve"), methods=["POST"]),
            Route("/requests/{rid}/reject", step("reject"), methods=["POST"]),
            Route("/approvals", approvals, methods=["GET"]),
            Route("/runs", runs, methods=["GET"]),
            Route("/runs/{run_id}", run_page, methods=["GET"]),
            Route("/audit", audit_page, methods=["GET"]),
            Route("/audit/export", audit_export, methods=["GET"])]
