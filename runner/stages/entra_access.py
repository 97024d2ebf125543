"""Read-only stage kinds about an existing Entra application: `graph.find_application` (its
ids, for the stages after it) and `graph.verify_access` (is the backup application still able
to do its job?). Neither writes to the tenant, in plan or run.

`graph.verify_access`:

Checked, in order (each a line in `checks`, the first failure named in the result):
1. the application exists (by uniqueName) and has its service principal;
2. every permission of the profile is consented (an app role assignment each);
3. its credentials: days until each of ours expires (a warning under `warn_days`, a failure
   when none is valid);
4. the application really signs in: a client-credentials token for Microsoft Graph with its
   own secret (the value an earlier run kept in its 0600 file) or its own certificate (the
   PFX beside it), from the same authority the operator signed in at; the token's roles are
   compared with the consented permissions.

Why sign in for real: consent and an unexpired credential are necessary, not sufficient. A
secret whose value was never handed over, a certificate whose private key is lost, a
conditional access policy for workload identities: only a token request tells."""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any

from ..errors import AuthError, InputError
from ..results import Outcome, Status
from ..secrets import Secret
from .base import GraphTarget, StageContext
from .entra import _private_dir, _wanted, graph_target, number, text


def _days_left(cred: dict[str, Any], now: _dt.datetime) -> int | None:
    from ..graph.odata import parse_time
    end = parse_time(cred.get("endDateTime"))
    return None if end is None else int((end - now).total_seconds() // 86400)


def _credential_files(ctx: StageContext, conn: GraphTarget, unique: str, app: dict[str, Any]) -> list[tuple[str, Path]]:
    """("secret" | "certificate", file) for each credential of the app whose secret half an
    earlier run kept on this machine, newest first."""
    from ..graph.credentials import key_thumbprint
    from .entra_credentials import CERTIFICATE_FILE, SECRET_FILE
    folder = ctx.private_path(_private_dir(ctx, conn, unique))
    found: list[tuple[str, str, Path]] = []
    for c in app.get("passwordCredentials") or []:
        for f in folder.glob(SECRET_FILE.format(name="*", key=c.get("keyId"))) if folder.is_dir() else []:
            found.append((str(c.get("endDateTime") or ""), "secret", f))
    for c in app.get("keyCredentials") or []:
        thumb = key_thumbprint(c) or ""
        pattern = CERTIFICATE_FILE.format(name="*", thumb=thumb, suffix=".pfx")
        for f in folder.glob(pattern) if thumb and folder.is_dir() else []:
            found.append((str(c.get("endDateTime") or ""), "certificate", f))
    return [(kind, f) for _, kind, f in sorted(found, key=lambda x: x[0], reverse=True)]


def _unique_name(inputs: dict[str, Any]) -> str:
    name = text(inputs, "unique_name", required=True) or ""
    return name


def find_application(ctx: StageContext, inputs: dict[str, Any]) -> Outcome:
    """inputs: unique_name. outputs: object_id, app_id, display_name. Fails (exit 1) when the
    tenant has no such application: a runbook that changes an existing one must not make one."""
    from ..graph.facts import read_state

    conn = graph_target(ctx, inputs)
    unique = _unique_name(inputs)
    if conn.offline:
        return Outcome(changed=False, messages=[f"offline plan: not checked; would look up {unique!r}"])
    app = read_state(conn.client, conn.facts, unique_name=unique)
    if app is None:
        raise InputError(f"no application with unique name {unique!r} in tenant {conn.tenant}",
                         input="unique_name", hint="check the name, or onboard it with m365-backup-access")
    return Outcome(changed=False, outputs={"object_id": app.get("id"), "app_id": app.get("appId"),
                                           "display_name": app.get("displayName")},
                   messages=[f"application {app.get('displayName')!r} ({app.get('appId')})"])


def verify_access(ctx: StageContext, inputs: dict[str, Any]) -> Outcome:
    """inputs:  unique_name (the application), profile / permissions (as the application stage
             takes them), warn_days (default 30)
    outputs: app_id, tenant_id, sp_id, consented, missing, credentials [{type, name, expires, days_left}],
             sign_in ("secret" | "certificate" | None), roles (in the token), checks, headline"""
    from ..graph import consent as op
    from ..graph import service_principal as sp_op
    from ..graph.facts import read_state, resolve_runtime
    from ..graph.odata import now_utc
    from ..graph.permissions import resource_app_ids

    conn = graph_target(ctx, inputs)
    unique = _unique_name(inputs)
    warn_days = number(inputs, "warn_days", 30, 0, 3650)
    checks: list[str] = []
    warns: list[str] = []
    outputs: dict[str, Any] = {"checks": checks}

    def failed(why: str) -> Outcome:
        outputs["headline"] = f"{unique}: {why}"
        return Outcome(changed=False, status=Status.FAILED, outputs=outputs, warnings=warns, messages=list(checks),
                       error={"type": "AccessCheckFailed", "message": outputs["headline"], "exit_code": 1})

    if conn.offline:
        raise InputError("m365-access-verify signs in to read the tenant; an offline plan checks nothing",
                         input="offline", hint="give the operator's sign-in")
    wanted, _ = _wanted(inputs)
    # the resources' app roles come in the same request as the application (and, when an
    # earlier run left its ids, its service principal and assignments too)
    app = read_state(conn.client, conn.facts, unique_name=unique, resources=resource_app_ids(wanted))
    if app is None:
        return failed(f"no application with unique name {unique!r} in the tenant")
    app_id = str(app.get("appId"))
    outputs.update(app_id=app_id, tenant_id=conn.tenant_id)
    checks.append(f"application {app.get('displayName')!r} ({app_id}) exists")
    sp = sp_op.read(conn.client, conn.facts, app_id, apply=False)
    if sp is None:
        return failed("the application has no service principal, so nothing is consented")
    outputs["sp_id"] = sp["id"]
    checks.append("its service principal exists")

    items = resolve_runtime(conn.client, conn.facts, wanted).items
    d = op.decide(items, op.read_assignments(conn.client, conn.facts, str(sp["id"]), apply=False))
    missing = [items[i].label for i in d.indexes(op.TO_GRANT) + d.indexes(op.UNAVAILABLE)]
    outputs.update(consented=len(d.indexes(op.GRANTED)), missing=missing)
    if missing:
        checks.append(f"{len(missing)} of {len(items)} permissions not consented: {', '.join(missing[:5])}"
                      + (" ..." if len(missing) > 5 else ""))
        return failed(f"{len(missing)} of {len(items)} permissions are not consented (run m365-backup-access)")
    checks.append(f"all {len(items)} permissions of the profile are consented")

    now = now_utc()
    creds = [{"type": "secret", "name": c.get("displayName"), "expires": c.get("endDateTime"),
              "days_left": _days_left(c, now)} for c in app.get("passwordCredentials") or []]
    creds += [{"type": "certificate", "name": c.get("displayName"), "expires": c.get("endDateTime"),
               "days_left": _days_left(c, now)} for c in app.get("keyCredentials") or []]
    outputs["credentials"] = creds
    valid = [c for c in creds if (c["days_left"] or 0) >= 0]
    if not valid:
        return failed("no credential is valid: every secret and certificate has expired (run m365-rotate-credential)")
    soonest = min(valid, key=lambda c: c["days_left"] or 0)
    latest = max(valid, key=lambda c: c["days_left"] or 0)
    for c in valid:
        if (c["days_left"] or 0) < warn_days:
            warns.append(f"{c['type']} {c['name']!r} expires in {c['days_left']} days ({c['expires']})"
                         + ("" if c is not latest else "; rotate it: m365-rotate-credential"))
    checks.append(f"{len(valid)} valid credential(s); the next expires in {soonest['days_left']} days, "
                  f"the last in {latest['days_left']} days")

    files = _credential_files(ctx, conn, unique, app)
    if not files:
        return failed("no secret or private key of the application's valid credentials is on this machine, so "
                      "its sign-in cannot be tried (a new one: m365-rotate-credential)")
    kind, file = files[0]
    try:
        if kind == "secret":
            claims = conn.app_claims(app_id, secret=Secret(file.read_text(encoding="utf-8").strip(), "app secret"))
        else:
            claims = conn.app_claims(app_id, certificate=file)
    except AuthError as e:
        checks.append(f"sign-in with its {kind} failed: {e.message}")
        return failed(f"the application cannot sign in with its {kind}: {e.message}")
    roles = sorted(claims.get("roles") or [])
    outputs.update(sign_in=kind, roles=roles)
    checks.append(f"it signs in with its {kind}; the token carries {len(roles)} role(s)")
    outputs["headline"] = (f"{unique} can work: {len(items)} permissions consented, signs in with its {kind}, "
                           f"the next credential expires in {soonest['days_left']} days.")
    return Outcome(changed=False, outputs=outputs, warnings=warns, messages=list(checks))
