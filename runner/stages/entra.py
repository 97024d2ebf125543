"""Stage kinds for the Entra application (Microsoft Graph): preflight, application, service
principal, admin consent and removal (credentials are in entra_credentials.py). Each reads
first, writes only when `ctx.apply` and only what differs, and returns outputs for later
stages. The Graph operations (runner/graph/: application, service_principal, consent,
removal) read, decide and write; what a run reports about them is said here.

Every kind takes `target` (the runbook target name; default: the stage's `target`, else
"tenant"). An input that refers to an earlier stage's output arrives in plan mode as an
Unknown when that stage would create the object; the kind then reports what it would do."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any, Iterable

from ..errors import InputError, setting
from ..results import Outcome, Status
from ..values import as_bool, as_int, as_text, known_or_none
from .base import GraphTarget, StageContext, notice_line

DEFAULT_PROFILE = "m365-backup"
RESTORABLE = " (restorable for 30 days from deleted items)"


# --------------------------------------------------------------------------- shared by the Entra kinds

def graph_target(ctx: StageContext, inputs: dict[str, Any]) -> GraphTarget:
    """The stage's graph target, told the stage's deadline."""
    conn: GraphTarget = ctx.target(inputs.get("target") or ctx.stage.target or "tenant")
    conn.begin_stage(ctx.deadline)
    return conn


def flag(inputs: dict[str, Any], key: str, default: bool = False) -> bool:
    return as_bool(inputs.get(key, default), key)


def number(inputs: dict[str, Any], key: str, default: int, lo: int = 0, hi: int = 100000) -> int:
    return as_int(inputs.get(key, default), key, lo=lo, hi=hi)


def text(inputs: dict[str, Any], key: str, default: str | None = None, required: bool = False) -> str | None:
    """Text input; an Unknown counts as not given (plan mode: not there yet)."""
    return as_text(known_or_none(inputs.get(key)), key, required=required) or default


def offline(conn: GraphTarget, ctx: StageContext) -> bool:
    """True for a target marked offline (plan without signing in); it cannot apply."""
    if conn.offline:
        if ctx.apply:
            raise InputError("offline: a graph target marked offline can only be planned", input="offline",
                             hint=f"remove {setting('offline')} from the target to run")
        return True
    return False


def _wanted(inputs: dict[str, Any]) -> tuple[list, list[str]]:
    from ..graph.permissions import wanted_for

    profile = inputs.get("profile", DEFAULT_PROFILE)
    return wanted_for(profile or "none", inputs.get("permissions") or [])


def _file_part(value: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", value)[:120] or "x"


def _private_dir(ctx: StageContext, conn: GraphTarget, unique: str) -> str:
    """Where the credential stages keep an application's secret and PFX, under the state
    directory's private/ folder (offboarding removes it). The folder is named by the tenant's
    id, so a tenant written as its domain in one run and as its id in the next (a scheduled
    check, another runbook) finds the same files; what an earlier version kept under the
    tenant as written is moved there the first time."""
    typed = f"graph/{_file_part(conn.tenant.lower())}/{_file_part(unique)}"
    tenant_id = conn.tenant_id
    if not tenant_id:                       # not signed in: nothing can be read or written yet
        return typed
    rel = f"graph/{_file_part(tenant_id.lower())}/{_file_part(unique)}"
    if rel != typed:
        _adopt(ctx.private_path(typed), ctx.private_path(rel))
    return rel


def _adopt(old: Path, new: Path) -> None:
    """Move the files of `old` into `new` (never over a file there), then drop `old` if empty."""
    if not old.is_dir():
        return
    new.mkdir(mode=0o700, parents=True, exist_ok=True)
    for f in old.iterdir():
        if f.is_file() and not (new / f.name).exists():
            f.rename(new / f.name)
    for folder in (old, old.parent):
        try:
            folder.rmdir()
        except OSError:                     # not empty: something stays for a person to see
            break


def slug(text: str) -> str:
    s = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return s[:120] or "app"


# --------------------------------------------------------------------------- notices

def profile_notices(ctx: StageContext, wanted: list) -> list[str]:
    """The runbook's notices about permissions of the profile: EWS (full_access_as_app) being
    switched off, and SharePoint app-only access needing a certificate."""
    from ..graph.permissions import EXCHANGE_APP_ID, SHAREPOINT_APP_ID

    ids = []
    if any(w.resource_app_id == EXCHANGE_APP_ID and w.permission == "full_access_as_app" for w in wanted):
        ids.append("ews-off")
    if any(w.resource_app_id == SHAREPOINT_APP_ID for w in wanted):
        ids.append("spo-app-only-certificate")
    return [line for line in (notice_line(ctx, i) for i in ids) if line]


# --------------------------------------------------------------------------- graph.preflight

def preflight(ctx: StageContext, inputs: dict[str, Any]) -> Outcome:
    """Sign in and check the token grants what the run needs (AuthError naming what is
    missing, before any write); report platform notices for the profile as warnings.

    inputs:  profile (default "m365-backup"), permissions (list of "API: Permission"),
             consent (bool, default true: also check the rights to grant admin consent)
    outputs: tenant_id, identity, sign_in ("delegated" | "app-only"), auth, rights
             {scopes, roles, wids, directory_roles}"""
    from ..graph.permissions import GRAPH_APP_ID

    wanted, _ = _wanted(inputs)          # the profile's corrections are the application stage's to tell
    warns: list[str] = []
    conn = graph_target(ctx, inputs)
    notices = profile_notices(ctx, wanted)
    if offline(conn, ctx):
        return Outcome(changed=False, warnings=warns + notices,
                       outputs={"sign_in": "offline", "tenant_id": None, "identity": None},
                       messages=["offline plan: not signed in; rights not checked"])
    consent = flag(inputs, "consent", True)
    claims = conn.claims()
    grant_graph = consent and any(w.resource_app_id == GRAPH_APP_ID for w in wanted)
    conn.require(manage_apps=True, grant_roles=consent, grant_graph_roles=grant_graph)
    rights = {k: claims.get(k) for k in ("scopes", "roles", "wids", "directory_roles")}
    held = claims["scopes"] if claims["sign_in"] == "delegated" else claims["roles"]
    msgs = [f"signed in to tenant {claims.get('tenant_id')} as {claims.get('identity')} "
            f"({claims['sign_in']}, {conn.signin.kind})",
            "rights are sufficient: " + ", ".join(sorted(set(held) & {"Application.ReadWrite.All",
                                                                       "AppRoleAssignment.ReadWrite.All"}))
            + (" + " + ", ".join(claims["directory_roles"]) if claims["directory_roles"] else "")]
    if conn.signin.kind == "secret":
        warns.append("signed in with a client secret: prefer a certificate for unattended runs")
    return Outcome(changed=False, warnings=warns + notices, messages=msgs,
                   outputs={"tenant_id": claims.get("tenant_id"), "identity": claims.get("identity"),
                            "sign_in": claims["sign_in"], "auth": conn.signin.kind, "rights": rights})


# --------------------------------------------------------------------------- graph.application

def _app_outputs(app: dict[str, Any] | None, unique_name: str, display_name: str) -> dict[str, Any]:
    out: dict[str, Any] = {"unique_name": unique_name, "display_name": display_name}
    if app:
        out.update(app_id=app.get("appId"), object_id=app.get("id"),
                   display_name=app.get("displayName") or display_name)
    return out


def application(ctx: StageContext, inputs: dict[str, Any]) -> Outcome:
    """The application exists under `unique_name`, with `display_name`, requesting every
    permission of the profile. Permissions it requests beyond those are reported, and removed
    only with `remove_extras`.

    inputs:  display_name (required), unique_name (default: display_name as a slug; the
             immutable identity of the app: keep it stable), profile (default "m365-backup"),
             permissions (extra "API: Permission" lines), remove_extras (bool, default false)
    outputs: app_id, object_id, display_name, unique_name, permissions (n requested),
             extras (requested but not in the profile)"""
    from ..graph import application as op
    from ..graph.facts import read_state
    from ..graph.odata import check_unique_name
    from ..graph.permissions import resolve_permissions, resource_app_ids

    display_name = text(inputs, "display_name", required=True)
    assert display_name is not None
    unique_name = check_unique_name(text(inputs, "unique_name") or slug(display_name))
    wanted, warns = _wanted(inputs)
    remove_extras = flag(inputs, "remove_extras", False)
    conn = graph_target(ctx, inputs)
    if offline(conn, ctx):
        res = resolve_permissions(wanted, None)
        return Outcome(changed=True, warnings=warns,
                       outputs={"unique_name": unique_name, "display_name": display_name,
                                "permissions": len(res.items)},
                       messages=[f"offline plan: not checked; would ensure application {display_name!r} "
                                 f"(uniqueName {unique_name}) requesting {len(res.items)} application permissions"])
    app = read_state(conn.client, conn.facts, unique_name=unique_name, resources=resource_app_ids(wanted),
                     policy=True)
    resolution = resolve_permissions(wanted, conn.facts.resource_sps)
    warns = list(warns) + resolution.warnings
    desired = op.requested(resolution.required_resource_access())
    n = len(desired)

    if app is None:
        after = {"display_name": display_name, "unique_name": unique_name, "permissions": n}
        if not ctx.apply:
            return Outcome(changed=True, outputs=_app_outputs(None, unique_name, display_name),
                           before=None, after=after, warnings=warns,
                           messages=[f"would create application {display_name!r} (uniqueName {unique_name}) "
                                     f"requesting {n} application permissions"])
        app, created = op.create(conn.client, conn.facts, unique_name, display_name, desired)
        return Outcome(changed=True, outputs=_app_outputs(app, unique_name, display_name), before=None,
                       after=after, warnings=warns,
                       messages=[f"{'created' if created else 'updated'} application {display_name!r} "
                                 f"(appId {app.get('appId')}) requesting {n} application permissions"])

    d = op.decide(app, desired, display_name, remove_extras=remove_extras)

    def label(k: op.Key) -> str:
        return resolution.label_of(k[0], k[1]) + ("" if k[2] == "Role" else f" ({k[2]})")

    outputs = _app_outputs(app, unique_name, display_name)
    outputs["permissions"] = n
    outputs["extras"] = [label(k) for k in d.extras]
    if d.extras and not remove_extras:
        warns.append(f"the application also requests {len(d.extras)} permission(s) not in the profile "
                     f"(kept; set remove_extras = true to remove): " + ", ".join(label(k) for k in d.extras))
    if not d.patch:
        return Outcome(changed=False, outputs=outputs, warnings=warns,
                       messages=[f"application {app.get('displayName')!r} is up to date "
                                 f"({n} application permissions requested)"])
    changes: list[tuple[str, str]] = []          # (verb, what)
    if "displayName" in d.patch:
        changes.append(("rename", f"{app.get('displayName')!r} to {display_name!r}"))
    if d.missing:
        changes.append(("add", f"{len(d.missing)} permission(s): " + _per_api(label(k) for k in d.missing)))
    if d.remove:
        changes.append(("remove", f"{len(d.remove)} permission(s): " + _per_api(label(k) for k in d.remove)))
    before = {"display_name": app.get("displayName"), "permissions": len(d.existing)}
    after = {"display_name": display_name, "permissions": len(d.existing) + len(d.missing) - len(d.remove),
             "add": [label(k) for k in d.missing], "remove": [label(k) for k in d.remove]}
    if not ctx.apply:
        return Outcome(changed=True, outputs=outputs, before=before, after=after, warnings=warns,
                       messages=[f"would {verb} {what}" for verb, what in changes])
    op.update(conn.client, app, d.patch)
    outputs["display_name"] = display_name
    done = {"rename": "renamed", "add": "added", "remove": "removed"}
    return Outcome(changed=True, outputs=outputs, before=before, after=after, warnings=warns,
                   messages=[f"{done[verb]} {what}" for verb, what in changes])


def _per_api(labels: Iterable[str]) -> str:
    """"API: A, B; API2: C" from "API: Permission" labels: what a plan adds or removes,
    API by API."""
    from ..graph.permissions import by_api
    return "; ".join(f"{api}: {', '.join(names)}" for api, names in
                     by_api(tuple(lb.split(": ", 1)) if ": " in lb else ("", lb) for lb in labels))


# --------------------------------------------------------------------------- graph.service_principal

def service_principal(ctx: StageContext, inputs: dict[str, Any]) -> Outcome:
    """The application has a service principal (the object consent is granted to).

    inputs:  app_id (required: ${stages.<application>.outputs.app_id}), display_name
    outputs: sp_id, app_id"""
    from ..graph import service_principal as op

    conn = graph_target(ctx, inputs)
    app_id = known_or_none(inputs.get("app_id"))
    if offline(conn, ctx):
        return Outcome(changed=True, messages=["offline plan: not checked; would ensure the service principal"])
    if not app_id:          # unknown until the application stage applies
        if ctx.apply:
            raise InputError("app_id: required", input="app_id",
                             hint="pass ${stages.<application stage>.outputs.app_id}")
        return Outcome(changed=True, messages=["would create the service principal of the new application"],
                       after={"service_principal": "new"})
    app_id = str(app_id)
    sp = op.read(conn.client, conn.facts, app_id, apply=ctx.apply)
    if sp is not None:
        return Outcome(changed=False, outputs={"sp_id": sp.get("id"), "app_id": app_id},
                       messages=[f"service principal {sp.get('id')} exists"])
    if not ctx.apply:
        return Outcome(changed=True, outputs={"app_id": app_id}, after={"service_principal": "new"},
                       messages=[f"would create the service principal of application {app_id}"])
    sp, created = op.upsert(conn.client, conn.facts, app_id, text(inputs, "display_name"))
    return Outcome(changed=created, outputs={"sp_id": sp.get("id"), "app_id": app_id},
                   messages=[f"{'created' if created else 'found'} service principal {sp.get('id')}"])


# --------------------------------------------------------------------------- graph.consent

def consent(ctx: StageContext, inputs: dict[str, Any]) -> Outcome:
    """Admin consent: one app role assignment per application permission; what exists is
    listed and only the missing ones are created (20 per $batch).

    inputs:  sp_id (required: ${stages.<service_principal>.outputs.sp_id}), profile, permissions
             (the same as the application stage's)
    outputs: granted (n in place), added (n this run), missing (list of "API: Permission" not
             granted), permissions [{resource, permission, id, state}] with state one of
             granted | added | would-grant | unavailable | failed"""
    from ..graph import consent as op
    from ..graph.facts import resolve_runtime
    from ..graph.permissions import resolve_permissions

    wanted, _ = _wanted(inputs)          # its warnings are the application stage's to tell
    conn = graph_target(ctx, inputs)
    sp_id = known_or_none(inputs.get("sp_id"))
    if offline(conn, ctx):
        res = resolve_permissions(wanted, None)
        return Outcome(changed=True,
                       outputs={"granted": 0, "missing": [r.label for r in res.items]},
                       messages=[f"offline plan: not checked; would grant admin consent for {len(res.items)} "
                                 "application permissions"])
    if not sp_id and ctx.apply:
        raise InputError("sp_id: required", input="sp_id",
                         hint="pass ${stages.<service principal stage>.outputs.sp_id}")
    resolution = resolve_runtime(conn.client, conn.facts, wanted)
    # Rights first, in plan and in apply alike: a plan that cannot be applied should say so.
    conn.require(manage_apps=False, grant_roles=True, grant_graph_roles=op.needs_graph_role_grant(resolution))
    items = resolution.items
    warns: list[str] = []      # resolution warnings are the application stage's to tell

    def entry(i: int, state: str) -> dict[str, Any]:
        return {"resource": items[i].resource, "permission": items[i].permission, "id": items[i].id, "state": state}

    def named(perms: list[dict[str, Any]]) -> list[str]:
        return [f"{p['resource']}: {p['permission']}" for p in perms]

    if not sp_id:           # plan: the service principal is created by an earlier stage
        perms = [entry(i, "would-grant" if r.resource_sp_id else "unavailable") for i, r in enumerate(items)]
        todo = [p for p in perms if p["state"] == "would-grant"]
        return Outcome(changed=bool(todo), warnings=warns,
                       outputs={"granted": 0, "added": 0, "missing": named(perms), "permissions": perms},
                       after={"grant": len(todo)},
                       messages=[f"would grant admin consent for {len(todo)} application permissions "
                                 "to the new service principal"])
    sp_id = str(sp_id)
    d = op.decide(items, op.read_assignments(conn.client, conn.facts, sp_id, apply=ctx.apply))
    word = {op.GRANTED: "granted", op.UNAVAILABLE: "unavailable", op.TO_GRANT: "pending" if ctx.apply else "would-grant"}
    perms = [entry(i, word[s]) for i, s in enumerate(d.states)]
    to_grant = d.indexes(op.TO_GRANT)
    if d.extra:
        warns.append(f"the service principal holds {len(d.extra)} other app role assignment(s), left as they are")

    def outputs() -> dict[str, Any]:
        granted = sum(1 for p in perms if p["state"] in ("granted", "added"))
        return {"granted": granted, "added": sum(1 for p in perms if p["state"] == "added"),
                "missing": named([p for p in perms if p["state"] not in ("granted", "added")]),
                "permissions": perms}

    unavailable = [p for p in perms if p["state"] == "unavailable"]
    if unavailable:
        warns.append(f"{len(unavailable)} permission(s) cannot be consented because their API has no "
                     "service principal in this tenant: " + ", ".join(named(unavailable)))
    before = {"granted": len(perms) - len(to_grant) - len(unavailable)}
    if not to_grant:
        msg = f"admin consent is in place for {outputs()['granted']} application permissions"
        if unavailable:
            msg = (f"admin consent is in place for {outputs()['granted']} of {len(perms)} application "
                   f"permissions; {len(unavailable)} cannot be granted in this tenant (see the warning)")
        return Outcome(changed=False, outputs=outputs(), warnings=warns, messages=[msg])
    if not ctx.apply:
        return Outcome(changed=True, outputs=outputs(), warnings=warns, before=before,
                       after={"grant": named([perms[i] for i in to_grant])},
                       messages=[f"would grant admin consent for {len(to_grant)} application permission(s)"])
    failures: list[str] = []
    first_error: dict[str, Any] | None = None
    for i, (state, err) in op.grant(conn.client, sp_id, items, to_grant).items():
        perms[i]["state"] = state
        if err is not None:
            failures.append(f"{items[i].resource}: {items[i].permission}: {err.code or err.status}")
            first_error = first_error or err.to_dict()
    out = outputs()
    msgs = [f"granted admin consent for {out['added']} application permission(s)"
            + (f" ({out['granted'] - out['added']} were already granted)" if out['granted'] > out['added'] else "")]
    if failures:
        msgs.append(f"{len(failures)} grant(s) failed (re-run to retry): " + "; ".join(failures[:10]))
        return Outcome(changed=out["added"] > 0, outputs=out, warnings=warns, messages=msgs,
                       status=Status.FAILED, error=first_error)
    return Outcome(changed=out["added"] > 0, outputs=out, warnings=warns, messages=msgs,
                   before=before, after={"granted": out["granted"]})


# --------------------------------------------------------------------------- graph.remove_application

def remove_application(ctx: StageContext, inputs: dict[str, Any]) -> Outcome:
    """Offboarding: delete the application; its service principal, role assignments and
    credentials go with it, and so do the private files on this machine that hold its
    secret and PFX (worthless once it is gone). What it leaves is said, not undone.

    inputs:  unique_name or app_id, purge (bool, default false: also delete it from deleted
             items, which frees the uniqueName at once), leaves (what the runbook knows it
             leaves behind, in words: one line each in the report)
    outputs: removed (bool), app_id, object_id, private_files (removed or to remove)"""
    from ..graph import removal as op

    conn = graph_target(ctx, inputs)
    unique_name = text(inputs, "unique_name")
    app_id = text(inputs, "app_id")
    if not unique_name and not app_id:
        raise InputError("remove_application needs unique_name or app_id", input="unique_name")
    leaves = [f"left as it is: {line}" for line in inputs.get("leaves") or []]
    if offline(conn, ctx):
        return Outcome(changed=True, messages=["offline plan: not checked; would remove the application if present"])
    purge = flag(inputs, "purge", False)
    app, sp = op.read(conn.client, conn.facts, unique_name=unique_name, app_id=app_id)
    folder, files = _private_files(ctx, conn, str(unique_name or app_id))
    if app is None and not files:
        what = f"uniqueName {unique_name}" if unique_name else f"appId {app_id}"
        return Outcome(changed=False, outputs={"removed": False, "private_files": []},
                       messages=[f"no application with {what}: nothing to remove", *leaves])
    verb = "deleted" if ctx.apply else "would delete"
    gone, before = [], {}
    if app is not None:
        gone.append(f"application {app.get('displayName')!r} ({app['appId']})")
        if sp:
            gone.append(f"its service principal {sp['id']} with its app role assignments")
        before = {"application": app["appId"], "service_principal": sp["id"] if sp else None}
        if ctx.apply:
            op.delete(conn.client, conn.facts, app, purge=purge)
    messages = [f"{verb} " + " and ".join(gone) + (" (purged)" if purge and ctx.apply else "" if purge else RESTORABLE)
                ] if gone else []
    if files:
        if ctx.apply:
            shutil.rmtree(folder)
        messages.append(f"{'removed' if ctx.apply else 'would remove'} {len(files)} private file(s) in {folder} "
                        "(the secret and certificate written for it)")
    outputs = {"removed": bool(ctx.apply), "private_files": [str(f) for f in files]}
    if app is not None:
        outputs.update(app_id=app["appId"], object_id=app["id"])
    return Outcome(changed=True, outputs=outputs, before=before or None, after=None, messages=messages + leaves)


def _private_files(ctx: StageContext, conn: GraphTarget, unique: str) -> tuple[Path, list[Path]]:
    """The folder under the state directory's private/ folder where the credential stages
    write this application's secret and certificate, and the files in it."""
    folder = ctx.private_path(_private_dir(ctx, conn, unique))
    return folder, sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []
