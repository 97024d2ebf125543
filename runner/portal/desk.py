"""Requests: what a person asked the portal to do, from the plan to the run.

    planning -> planned -> (waiting: a runbook with `approval`) -> running -> done
                        \\-> rejected (by an approver)

A request is planned first (a plan run of its own, shown with what would change); running it
needs the requester's explicit confirmation, and for a runbook marked `approval = "ROLE"`
then a member of ROLE who is not the requester. The parameters are checked once, when the
form is posted, and kept here (secrets as Secret objects, in memory only) so that what runs is
exactly what was planned; the bounds of the requester's role are checked again before the run,
since the policy may have changed while the request waited.

Plans and runs go to an executor (runner/executor.py) and write the same run directories as
the CLI, so `psrunner runs` lists them. Requests live in memory: a restart forgets those still
waiting (the audit log keeps what happened to each)."""

from __future__ import annotations

import secrets as _rand
import threading
from dataclasses import dataclass, field
from typing import Any

from .. import api
from ..executor import Executor, Job
from ..results import RunResult, RunStatus, timestamp
from ..runbook import Runbook
from ..rundir import RUN_ID_RE
from ..secrets import Secret
from .audit import AuditLog
from .policy import Policy, Refused
from .web import User

PLANNING, PLANNED, WAITING, RUNNING, DONE, REJECTED = (
    "planning", "planned", "waiting for approval", "running", "done", "rejected")
ONE_TIME_OUTPUTS = ("one_time_password",)      # stage outputs shown once to the requester


@dataclass
class Request:
    id: str
    runbook: Runbook
    requester: User
    values: dict[str, Any]
    sources: dict[str, str]
    asked: dict[str, Any]            # what the person gave, and what their role fixed
    ip: str
    limit: int
    created: str = field(default_factory=timestamp)
    state: str = PLANNING
    plan_run: str | None = None
    run_run: str | None = None
    plan_result: RunResult | None = None
    run_result: RunResult | None = None
    approver: User | None = None
    decided: str | None = None
    note: str = ""
    one_time: list[tuple[str, Secret]] = field(default_factory=list)

    @property
    def needs_approval(self) -> str | None:
        return self.runbook.approval


class Desk:
    def __init__(self, executor: Executor, audit: AuditLog, policy: Policy, state_dir) -> None:
        self.executor, self.audit, self.policy, self.state_dir = executor, audit, policy, state_dir
        self._requests: dict[str, Request] = {}
        self._lock = threading.Lock()
        self.run_owner: dict[str, str] = {}       # run id -> requester's user id (from the audit log too)
        for r in audit.records():
            if r.get("event") in ("plan", "run") and r.get("run_id") and r.get("who"):
                self.run_owner.setdefault(r["run_id"], r["who"])

    # -- reading ---------------------------------------------------------------
    def get(self, request_id: str) -> Request | None:
        with self._lock:
            return self._requests.get(request_id)

    def may_see(self, req: Request, user: User) -> bool:
        return (req.requester.id == user.id or self.policy.can(user.roles, "all-runs")
                or (req.state == WAITING and self.may_approve(req, user)))

    def may_approve(self, req: Request, user: User) -> bool:
        return bool(req.needs_approval) and req.needs_approval in user.roles and req.requester.id != user.id

    def waiting_for(self, user: User) -> list[Request]:
        with self._lock:
            items = list(self._requests.values())
        return [r for r in items if r.state == WAITING and r.needs_approval in user.roles]

    def mine(self, user: User) -> list[Request]:
        with self._lock:
            return [r for r in self._requests.values() if r.requester.id == user.id]

    def may_see_run(self, run_id: str, user: User) -> bool:
        if not RUN_ID_RE.fullmatch(run_id):        # a run id names a folder: nothing that leaves runs/
            return False
        if self.policy.can(user.roles, "all-runs"):
            return True
        if self.run_owner.get(run_id) == user.id:
            return True
        with self._lock:
            return any(run_id in (r.plan_run, r.run_run) and self.may_see(r, user) for r in self._requests.values())

    # -- the steps -------------------------------------------------------------
    def plan(self, rb: Runbook, user: User, values: dict[str, Any], sources: dict[str, str], *,
             asked: dict[str, Any], ip: str, limit: int) -> Request:
        req = Request(id="r-" + _rand.token_hex(8), runbook=rb, requester=user, values=values,
                      sources=sources, asked=asked, ip=ip, limit=limit)
        with self._lock:
            self._requests[req.id] = req
        try:
            self._submit(req, "plan")
        except BaseException:
            with self._lock:
                self._requests.pop(req.id, None)
            raise
        return req

    def confirm(self, req: Request, user: User, ip: str) -> None:
        """The requester asks for the planned change: it runs, or waits for an approver."""
        if req.requester.id != user.id:
            raise Refused("only the person who asked for this can confirm it")
        if req.state != PLANNED:
            raise Refused(f"this request is {req.state}; it cannot be confirmed now")
        if req.needs_approval:
            req.state = WAITING
            self._audit("request", req, user, ip=ip, outcome="waiting", detail=f"needs approval by {req.needs_approval}")
            return
        self._recheck(req)
        self._submit(req, "run")

    def approve(self, req: Request, approver: User, ip: str) -> None:
        self._decide(req, approver)
        self._recheck(req)
        req.approver, req.decided = approver, timestamp()
        self._audit("approve", req, approver, ip=ip, detail=f"requested by {req.requester.name} ({req.requester.id})")
        self._submit(req, "run")

    def reject(self, req: Request, approver: User, ip: str, note: str = "") -> None:
        self._decide(req, approver)
        req.approver, req.decided, req.state, req.note = approver, timestamp(), REJECTED, note
        self._audit("reject", req, approver, ip=ip, detail=note or None)

    def _decide(self, req: Request, approver: User) -> None:
        if req.state != WAITING:
            raise Refused(f"this request is {req.state}; there is nothing to approve")
        if req.requester.id == approver.id:
            raise Refused("you asked for this run yourself; another member of "
                          f"{req.needs_approval} must approve it (four eyes)")
        if req.needs_approval not in approver.roles:
            raise Refused(f"approving {req.runbook.name} needs the role {req.needs_approval}")

    def _recheck(self, req: Request) -> None:
        grant = self.policy.grant(req.requester.roles, req.runbook.name)
        if grant is None:
            raise Refused(f"{req.requester.name}'s roles no longer grant {req.runbook.name}")
        grant.check(req.runbook, req.values)

    def _submit(self, req: Request, mode: str) -> None:
        rd = api.new_run_dir(req.runbook, self.state_dir)
        submitted = threading.Event()        # the job's end is recorded after its start

        def done(result: RunResult | None, error: BaseException | None) -> None:
            submitted.wait(10)
            self._finished(req, mode, rd.run_id, result, error)

        before = (req.state, req.plan_run, req.run_run)
        if mode == "plan":
            req.plan_run, req.state = rd.run_id, PLANNING
        else:
            req.run_run, req.state = rd.run_id, RUNNING
        try:
            self.executor.submit(Job(req.runbook, mode, req.values, rd, dict(req.sources), on_done=done),
                                 limit=req.limit)
        except BaseException:
            import shutil
            req.state, req.plan_run, req.run_run = before
            shutil.rmtree(rd.path, ignore_errors=True)     # nothing ran: leave no empty run behind
            raise
        try:
            self.run_owner[rd.run_id] = req.requester.id
            self._audit(mode, req, req.requester, ip=req.ip, run_id=rd.run_id, outcome="started",
                        approver=req.approver.id if req.approver else None)
        finally:
            submitted.set()

    def _finished(self, req: Request, mode: str, run_id: str, result: RunResult | None,
                  error: BaseException | None) -> None:
        status = result.status.value if result else "failed"
        detail = result.headline if result else None
        if result is None and error is not None:
            detail = f"{type(error).__name__}: " + str(getattr(error, "message", "") or "the run could not start")
        if mode == "plan":
            req.plan_result = result
            req.state = PLANNED if result and result.status != RunStatus.FAILED else DONE
        else:
            req.run_result, req.state = result, DONE
            req.one_time = [(s.id, v) for s in (result.stages if result else []) for k, v in s.outputs.items()
                            if k in ONE_TIME_OUTPUTS and isinstance(v, Secret)]
        self._audit(mode, req, req.requester, ip=req.ip, run_id=run_id, outcome=status, detail=detail)

    def take_one_time(self, req: Request, user: User) -> list[tuple[str, Secret]]:
        """The run's one-time values for the requester, once: the next call returns none."""
        if req.requester.id != user.id:
            return []
        with self._lock:
            items, req.one_time = req.one_time, []
        return items

    def _audit(self, event: str, req: Request, who: User, **fields: Any) -> None:
        self.audit.write(event, who=who, runbook=req.runbook.name, request=req.id,
                         params=req.asked, **fields)

