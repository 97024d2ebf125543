"""Stage kinds for the Entra application's credentials: a client secret and a certificate.
A new credential is made only when none of ours, whose secret half this machine holds (or
handed over), is valid past the renewal horizon; its secret half (the secret value, the
PFX) goes to a 0600 file under the state directory, stable across runs, and never to
outputs, messages, logs or events. What this machine made is recorded in credential_ledger.py,
which is how a secret created by an interrupted run is found and removed. The Graph side (reading the
credentials, adding one) is runner/graph/credentials.py."""

from __future__ import annotations

import datetime as _dt
import secrets as _rand
from pathlib import Path
from typing import Any

from ..errors import GraphError, InputError, stage_input
from ..results import Outcome, Status
from ..secrets import Secret
from ..values import as_secret, known_or_none
from .base import GraphTarget, StageContext
from .credential_ledger import Ledger, tagged
from .credential_rules import days_of, given_within, handed_over, last_end, no_secrets, policy_refused, within
from .entra import _file_part, _private_dir, flag, graph_target, number, offline, text

# the files of an application's private folder (_private_dir) that hold a credential's secret
# half; m365-access-verify looks for them by the same names
SECRET_FILE = "client-secret-{name}-{key}.txt"
CERTIFICATE_FILE = "{name}-{thumb}{suffix}"            # .pfx (its password and .cer beside it)


def _application(conn: GraphTarget, object_id: str) -> dict[str, Any]:
    from ..graph.facts import read_app_by_object_id

    app = read_app_by_object_id(conn.client, conn.facts, object_id)
    if app is None:
        raise InputError(f"object_id: no application with object id {object_id}", input="object_id")
    return app


def _need_object_id(ctx: StageContext) -> None:
    if ctx.apply:
        raise InputError("object_id: required", input="object_id",
                         hint="pass ${stages.<application stage>.outputs.object_id}")


# --------------------------------------------------------------------------- graph.secret

def check_secret_inputs(inputs: dict[str, Any]) -> tuple[int, int]:
    """(renewal horizon, lifetime) in days, checked before any sign-in: a new secret must
    outlive the horizon, or it would be due for renewal the moment it is made."""
    min_days = number(inputs, "secret_min_days", 30, 0, 729)
    lifetime = number(inputs, "secret_lifetime_days", 180, 1, 730)
    if lifetime <= min_days:
        raise InputError(f"{stage_input('secret_lifetime_days')}: {lifetime} days is not more than "
                         f"{stage_input('secret_min_days')} ({min_days}): a new secret would be due for "
                         "renewal the moment it is made", input="secret_lifetime_days",
                         hint=f"give {stage_input('secret_lifetime_days', min_days + 1)} or more, or a "
                              f"smaller {stage_input('secret_min_days')}")
    return min_days, lifetime


def client_secret(ctx: StageContext, inputs: dict[str, Any]) -> Outcome:
    """A client secret named `secret_name` valid for more than `secret_min_days` exists.

    A new secret lives `secret_lifetime_days`, or less where a tenant app management policy
    allows less; a policy that forbids client secrets, or a renewal while the backup product
    still holds the old secret, is a person's chore: the stage ends action-required and says
    what to do (credential_rules.py).

    inputs:  object_id (required: ${stages.<application>.outputs.object_id}), unique_name (names
             the secret file; default the object id), secret_name (credential display name,
             default "psrunner"), secret_min_days (default 30), secret_lifetime_days (default
             180, at most 730), rotate (bool: make a new one even if a valid one exists),
             purpose (why the secret is wanted, said in the plan)
    outputs: secret_file (0600 file holding the value, stable across runs), key_id, hint, expires"""
    from ..graph import credentials as op
    from ..graph.app_policies import read_limits
    from ..graph.odata import iso, now_utc

    conn = graph_target(ctx, inputs)
    object_id = known_or_none(inputs.get("object_id"))
    name = text(inputs, "secret_name", "psrunner") or "psrunner"
    min_days, lifetime = check_secret_inputs(inputs)
    rotate = flag(inputs, "rotate", False)
    if offline(conn, ctx):
        return Outcome(changed=True, messages=[f"offline plan: not checked; would ensure client secret {name!r}"])
    folder = _private_dir(ctx, conn, text(inputs, "unique_name") or (str(object_id) if object_id else "new"))

    def rel(key_id: str) -> str:
        return f"{folder}/{SECRET_FILE.format(name=_file_part(name), key=_file_part(key_id))}"

    why = f" ({text(inputs, 'purpose')})" if text(inputs, "purpose") else ""
    if not object_id:
        _need_object_id(ctx)
        limits = read_limits(conn.client, conn.facts, None)
        if limits.no_secrets:
            return no_secrets(limits.no_secrets)
        life, notes = within(limits, limits.secret_lifetime, lifetime, min_days, "secret")
        return Outcome(changed=True, after={"secret": name},
                       messages=[f"would create client secret {name!r} valid {days_of(life)} days{why}", *notes])
    object_id = str(object_id)
    app = _application(conn, object_id)
    now = now_utc()
    ledger = Ledger(ctx, folder)
    orphans = ledger.orphans(list(app.get("passwordCredentials") or []), now)
    orphan_ids = {str(c.get("keyId")) for c in orphans}
    left = [c for c in app.get("passwordCredentials") or [] if str(c.get("keyId")) not in orphan_ids]
    state = op.secret_state({"passwordCredentials": left}, name, min_days, now)
    warns: list[str] = []
    if orphans and ctx.apply:
        for c in orphans:
            op.remove_password(conn.client, object_id, str(c.get("keyId")))
        app["passwordCredentials"] = left
        ledger.save()
    for c in orphans:
        warns.append(f"{'removed' if ctx.apply else 'would remove'} client secret {c.get('displayName')!r} "
                     f"({c.get('keyId')}): an interrupted run created it and its value was never stored")

    def held(c: dict[str, Any]) -> Path | str | None:
        """Where this machine keeps (or handed over) the value of secret `c`; None if it never had it."""
        path = ctx.private_path(rel(str(c.get("keyId"))))
        return path if path.is_file() else ledger.stored_file(str(c.get("keyId")))

    mine = [c for c in state.valid if held(c)]
    best = max(mine, key=lambda c: str(c.get("endDateTime") or "")) if mine else None
    if best is not None and not rotate:
        where = held(best)
        path = where if isinstance(where, Path) else None
        note = "" if path else f"; its value was handed over in {where} (no longer there)"
        return handed_over(Outcome(
            changed=bool(orphans), warnings=warns,
            outputs={"key_id": best.get("keyId"), "hint": best.get("hint"),
                     "expires": best.get("endDateTime"), "secret_file": str(path) if path else None},
            messages=[f"client secret {name!r} is valid until {best.get('endDateTime')} "
                      f"(more than {min_days} days){note}"]),
            "client secret", str(path) if path else None, state.expiring)
    for c in state.valid:
        if c is not best and not held(c):
            warns.append(f"client secret {c.get('displayName')!r} ({c.get('hint')}…) is valid until "
                         f"{c.get('endDateTime')}, but this machine never had its value (Graph shows it once, at "
                         "creation), so a new one is made; remove the old one once no client uses it")
    limits = read_limits(conn.client, conn.facts, app)
    if limits.no_secrets:
        return no_secrets(limits.no_secrets)
    life, notes = within(limits, limits.secret_lifetime, lifetime, min_days, "secret")
    end = now + life
    if not ctx.apply:
        then = [f"then the backup product needs the new secret: the old one expires "
                f"{last_end(state.expiring)}"] if state.expiring else []
        return Outcome(changed=True, warnings=warns, before={"valid_secrets": len(state.valid)},
                       after={"secret": name, "expires": iso(end)},
                       messages=[f"would create client secret {name!r} valid until {iso(end)}{why}", *notes, *then])
    display = tagged(name)
    ledger.intend(display)          # before the call: a run stopped inside it leaves a trace
    try:
        cred, value, removed = op.add_password(conn.client, app, object_id, display, end)
    except GraphError as e:
        return policy_refused(e)
    warns += [f"removed client secret {kid}, created by a request whose answer was lost" for kid in removed]
    key_id = str(cred.get("keyId"))
    file = ctx.write_private_file(rel(key_id), value.reveal())
    ledger.record(key_id, str(file))
    return handed_over(Outcome(
        changed=True, warnings=warns,
        outputs={"key_id": key_id, "hint": cred.get("hint"), "expires": cred.get("endDateTime"),
                 "secret_file": str(file)},
        before={"valid_secrets": len(state.valid)},
        after={"secret": name, "key_id": key_id, "expires": cred.get("endDateTime")},
        messages=[f"created client secret {display!r} ({cred.get('hint')}…), valid until "
                  f"{cred.get('endDateTime')}; its value is in {file} (readable by you only)", *notes]),
        "client secret", str(file), state.expiring)


# --------------------------------------------------------------------------- graph.certificate

def check_certificate(inputs: dict[str, Any]) -> None:
    """Before a run: a given `certificate_path` holds a certificate and its private key that
    `certificate_password` opens (a real run would otherwise apply earlier stages first)."""
    from ..graph.certs import load_certificate

    path = text(inputs, "certificate_path")
    if path:
        load_certificate(path, as_secret(inputs.get("certificate_password"), "certificate_password"),
                         input_name="certificate_path")


def certificate(ctx: StageContext, inputs: dict[str, Any]) -> Outcome:
    """A certificate credential valid for more than `cert_min_days` is on the application.
    Without `certificate_path` a self-signed one is generated, its PFX written (0600) before
    its public part is uploaded, so a key never sits on the application without its private
    half on disk.

    inputs:  object_id (required), unique_name (names the files), certificate_path (use this
             PFX/PEM instead of generating one), certificate_password (Secret: opens the given
             file, and protects the generated PFX; without it a password is generated and
             written beside the PFX, both 0600), certificate_name (display name, default
             "psrunner"), certificate_subject (CN of a generated certificate), cert_min_days
             (default 30), cert_lifetime_days (default 365, or less where an app management
             policy allows less), rotate (bool), purpose (why, said in the plan)
    outputs: thumbprint (SHA-1, upper-case hex as Windows shows it), expires, pfx_file,
             pfx_password_file, cert_file"""
    from ..graph import credentials as op
    from ..graph.app_policies import read_limits
    from ..graph.certs import generate_self_signed, load_certificate
    from ..graph.odata import iso, now_utc

    conn = graph_target(ctx, inputs)
    object_id = known_or_none(inputs.get("object_id"))
    name = text(inputs, "certificate_name", "psrunner") or "psrunner"
    min_days = number(inputs, "cert_min_days", 30, 0, 3650)
    lifetime = number(inputs, "cert_lifetime_days", 365, 1, 3650)
    rotate = flag(inputs, "rotate", False)
    password = as_secret(inputs.get("certificate_password"), "certificate_password")
    given_path = text(inputs, "certificate_path")
    given = load_certificate(given_path, password, input_name="certificate_path") if given_path else None
    if offline(conn, ctx):
        return Outcome(changed=True, outputs={"thumbprint": given.thumbprint} if given else {},
                       messages=["offline plan: not checked; would ensure a certificate credential"])
    folder = _private_dir(ctx, conn, text(inputs, "unique_name") or (str(object_id) if object_id else "new"))

    def rel(thumb: str, suffix: str) -> str:
        return f"{folder}/{CERTIFICATE_FILE.format(name=_file_part(name), thumb=thumb, suffix=suffix)}"

    if not given and lifetime <= min_days:
        raise InputError(f"cert_lifetime_days ({lifetime}) must exceed cert_min_days ({min_days})",
                         input="cert_lifetime_days")
    why = f" ({text(inputs, 'purpose')})" if text(inputs, "purpose") else ""
    if not object_id:
        _need_object_id(ctx)
        limits = read_limits(conn.client, conn.facts, None)
        if given:
            given_within(limits, given)
            what, notes = f"upload certificate {given.thumbprint}", []
        else:
            life, notes = within(limits, limits.certificate_lifetime, lifetime, min_days, "cert")
            what = f"generate a self-signed certificate valid {days_of(life)} days and upload it"
        return Outcome(changed=True, outputs={"thumbprint": given.thumbprint} if given else {},
                       messages=[f"would {what} to the new application{why}", *notes])
    object_id = str(object_id)
    app = _application(conn, object_id)
    now = now_utc()
    warns: list[str] = []
    notes: list[str] = []
    old: list[dict[str, Any]] = []
    if given is not None:
        cert, thumb = given, given.thumbprint
        outputs: dict[str, Any] = {
            "thumbprint": thumb, "expires": iso(given.not_after),
            "pfx_file": given_path if given_path and given_path.lower().endswith((".pfx", ".p12")) else None,
            "cert_file": given_path}
        if given.not_after <= now + _dt.timedelta(days=min_days):
            warns.append(f"the given certificate expires {iso(given.not_after)}, within {min_days} days")
        if op.has_certificate(app, thumb):
            return Outcome(changed=False, outputs=outputs, warnings=warns,
                           messages=[f"certificate {thumb} is on the application"])
        given_within(read_limits(conn.client, conn.facts, app), given)
    else:
        ledger = Ledger(ctx, folder)
        state = op.certificate_state(app, name, min_days, now)
        valid, old = state.valid, state.expiring

        def pfx_of(k: dict[str, Any]) -> Path | None:
            thumb = op.key_thumbprint(k) or ""
            path = ctx.private_path(rel(thumb, ".pfx")) if thumb else None
            return path if path is not None and path.is_file() else None

        mine = [k for k in valid if pfx_of(k) or ledger.is_stored(op.key_thumbprint(k) or "")]
        best = max(mine, key=lambda k: str(k.get("endDateTime") or "")) if mine else None
        if best is not None and not rotate:
            thumb = op.key_thumbprint(best) or ""
            pfx = pfx_of(best)
            cer, pw = (pfx.with_suffix(".cer"), pfx.with_name(pfx.name + PASSWORD_SUFFIX)) if pfx else (None, None)
            note = "" if pfx else f"; its private key was handed over in {ledger.stored_file(thumb)} (no longer there)"
            return handed_over(Outcome(
                changed=False, warnings=warns,
                outputs={"thumbprint": thumb or None, "expires": best.get("endDateTime"),
                         "pfx_file": str(pfx) if pfx else None,
                         "pfx_password_file": str(pw) if pw and pw.exists() else None,
                         "cert_file": str(cer) if cer and cer.exists() else None},
                messages=[f"certificate {name!r} ({thumb}) is valid until {best.get('endDateTime')}{note}"]),
                "certificate", str(pfx) if pfx else None, old)
        for k in valid:
            warns.append(f"certificate {name!r} ({op.key_thumbprint(k)}) is valid until {k.get('endDateTime')}, but "
                         "this machine never had its private key, so a new one is made; remove the old one once no "
                         "client uses it")
        limits = read_limits(conn.client, conn.facts, app)
        life, notes = within(limits, limits.certificate_lifetime, lifetime, min_days, "cert")
        if not ctx.apply:
            return Outcome(changed=True, warnings=warns, after={"certificate": name, "days": days_of(life)},
                           messages=[f"would generate a self-signed certificate {name!r} valid {days_of(life)} "
                                     f"days and upload its public part{why}", *notes])
        cert = generate_self_signed(text(inputs, "certificate_subject") or f"psrunner {name}",
                                    days=life / _dt.timedelta(days=1))
        thumb = cert.thumbprint
        outputs = {"thumbprint": thumb, "expires": iso(cert.not_after)}
    if not ctx.apply:
        return Outcome(changed=True, outputs=outputs, warnings=warns, after={"certificate": thumb},
                       messages=[f"would upload certificate {thumb} (valid until {iso(cert.not_after)}){why}"])
    keys = op.current_keys(conn.client, app, object_id)
    if given is None:
        outputs.update(_write_pfx(ctx, rel(thumb, ".pfx"), cert, password))
        ledger.record(thumb, outputs["pfx_file"])
    try:
        op.upload_certificate(conn.client, app, object_id, keys, cert, name)
    except GraphError as e:
        return policy_refused(e, "cert_lifetime_days")
    where = ""
    if given is None:
        where = f"; private key in {outputs['pfx_file']}" + (
            f", protected by the password in {outputs['pfx_password_file']}" if outputs.get("pfx_password_file")
            else ", protected by certificate_password")
    return handed_over(Outcome(
        changed=True, outputs=outputs, warnings=warns,
        before={"certificates": len(keys)}, after={"certificates": len(keys) + 1, "thumbprint": thumb},
        messages=[f"uploaded certificate {thumb} (valid until {iso(cert.not_after)}){where}", *notes]),
        "certificate", outputs.get("pfx_file"), old)


PASSWORD_SUFFIX = "-password.txt"


def _write_pfx(ctx: StageContext, rel: str, cert: Any, password: Secret | None) -> dict[str, str | None]:
    """The PFX of a generated certificate, protected by `password`, or by a generated one
    written beside it first (both 0600): a PFX never lies on disk without protection, nor
    without the password that opens it."""
    pw_file = None
    if password is None:
        password = Secret(_rand.token_urlsafe(24), "pfx password")
        pw_file = ctx.write_private_file(rel + PASSWORD_SUFFIX, password.reveal())
    pfx = ctx.write_private_file(rel, cert.to_pfx(password.reveal()))
    cer = ctx.write_private_file(rel.removesuffix(".pfx") + ".cer", cert.cert_pem())
    return {"pfx_file": str(pfx), "pfx_password_file": str(pw_file) if pw_file else None, "cert_file": str(cer)}


# --------------------------------------------------------------------------- graph.retire_credentials

def retire_credentials(ctx: StageContext, inputs: dict[str, Any]) -> Outcome:
    """The second half of a rotation.

    Without `retire`: hands the new credential over, action-required: enter it in the
    backup product, then run again with retire = true. With `retire`: removes the application's
    credentials of that kind that a newer one replaces and that are older than `grace_days`
    (graph.credentials.replaced); nothing when no newer one exists.

    inputs:  object_id (required), credential ("secret" | "certificate"), retire (bool),
             grace_days (default 7), secret_file / pfx_file (the new credential's file)
    outputs: retired [key ids], kept [key ids]"""
    from ..graph import credentials as op
    from ..graph.odata import now_utc

    conn = graph_target(ctx, inputs)
    kind = text(inputs, "credential", "secret")
    field = "passwordCredentials" if kind == "secret" else "keyCredentials"
    what = "client secret" if kind == "secret" else "certificate"
    grace = number(inputs, "grace_days", 7, 0, 3650)
    object_id = known_or_none(inputs.get("object_id"))
    if not flag(inputs, "retire"):
        new_file = known_or_none(inputs.get("secret_file" if kind == "secret" else "pfx_file"))
        where = f"from {new_file} (readable by you alone)" if new_file else "from the file the run above names"
        steps = [f"Take the new {what} {where}.",
                 f"Enter it in the backup product (its Microsoft 365 organization settings), replacing the old {what}.",
                 "Then run this runbook again with -p retire=true: it removes the older ones."]
        return Outcome(changed=False, status=Status.ACTION_REQUIRED,
                       action={"summary": f"Enter the new {what} in the backup product, then run with -p retire=true",
                               "steps": steps},
                       outputs={"headline": f"A new {what} is ready; enter it in the backup product, then run "
                                            f"again with -p retire=true."},
                       messages=[f"the new {what} waits to be entered in the backup product"])
    if offline(conn, ctx) or not object_id:
        return Outcome(changed=True, messages=[f"would remove the {what}s a newer one replaces"])
    app = _application(conn, str(object_id))
    creds = list(app.get(field) or [])
    old = op.replaced(creds, grace, now_utc())
    ids = [str(c.get("keyId")) for c in old]
    kept = [str(c.get("keyId")) for c in creds if c not in old]
    outputs = {"retired": ids if ctx.apply else [], "kept": kept}
    if not old:
        why = "no newer one replaces any" if len(creds) < 2 else f"none older than {grace} days is replaced"
        line = f"Nothing to retire: the application has {len(creds)} {what}(s); {why}."
        return Outcome(changed=False, outputs={**outputs, "headline": line}, messages=[line])
    if not ctx.apply:
        return Outcome(changed=True, outputs=outputs, before={"count": len(creds)}, after={"count": len(kept)},
                       messages=[f"would remove {len(ids)} {what}(s) replaced by a newer one: {', '.join(ids)}"])
    if kind == "secret":
        for key_id in ids:
            op.remove_password(conn.client, str(object_id), key_id)
    else:
        op.remove_keys(conn.client, app, str(object_id), set(ids))
    line = f"Removed {len(ids)} old {what}(s); {len(kept)} remain{'s' if len(kept) == 1 else ''}."
    return Outcome(changed=True, outputs={**outputs, "headline": line}, before={"count": len(creds)},
                   after={"count": len(kept)}, messages=[line])
