"""Stage kinds for the Entra application's credentials: a client secret and a certificate.
A new credential is made only when none of ours is valid past the renewal horizon; its
secret half (the secret value, the PFX) goes to a 0600 file under the state directory, stable
across runs, and never to outputs, messages, logs or events. The Graph side (reading the
credentials, adding one) is runner/graph/credentials.py."""

from __future__ import annotations

import datetime as _dt
import re
from typing import Any

from ..errors import InputError, stage_input
from ..results import Outcome, Status
from ..values import as_secret, known_or_none
from .base import GraphTarget, StageContext
from .entra import flag, graph_target, number, offline, text


def _file_part(value: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", value)[:120] or "x"


def _private_dir(conn: GraphTarget, unique: str) -> str:
    return f"graph/{_file_part(conn.tenant.lower())}/{_file_part(unique)}"


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

    inputs:  object_id (required: ${stages.<application>.outputs.object_id}), unique_name (names
             the secret file; default the object id), secret_name (credential display name,
             default "psrunner"), secret_min_days (default 30), secret_lifetime_days (default
             180, at most 730: Entra allows two years), rotate (bool: make a new one even if a
             valid one exists)
    outputs: secret_file (0600 file holding the value, stable across runs), key_id, hint, expires"""
    from ..graph import credentials as op
    from ..graph.odata import iso, now_utc

    conn = graph_target(ctx, inputs)
    object_id = known_or_none(inputs.get("object_id"))
    name = text(inputs, "secret_name", "psrunner") or "psrunner"
    min_days, lifetime = check_secret_inputs(inputs)
    rotate = flag(inputs, "rotate", False)
    if offline(conn, ctx):
        return Outcome(changed=True, messages=[f"offline plan: not checked; would ensure client secret {name!r}"])
    folder = _private_dir(conn, text(inputs, "unique_name") or (str(object_id) if object_id else "new"))

    def rel(key_id: str) -> str:
        return f"{folder}/client-secret-{_file_part(name)}-{_file_part(key_id)}.txt"

    if not object_id:
        _need_object_id(ctx)
        return Outcome(changed=True, after={"secret": name},
                       messages=[f"would create client secret {name!r} valid {lifetime} days"])
    object_id = str(object_id)
    app = _application(conn, object_id)
    now = now_utc()
    state = op.secret_state(app, name, min_days, now)
    warns: list[str] = []
    best = state.best
    if best is not None and not rotate:
        path = ctx.private_path(rel(str(best.get("keyId"))))
        path = path if path.is_file() else None
        if path is None:
            warns.append(f"client secret {name!r} ({best.get('hint')}…) is valid until {best.get('endDateTime')}, "
                         "but its value is not on this machine (Graph shows it once, at creation); "
                         "set rotate = true to create a new one")
        return Outcome(changed=False, warnings=warns,
                       outputs={"key_id": best.get("keyId"), "hint": best.get("hint"),
                                "expires": best.get("endDateTime"), "secret_file": str(path) if path else None},
                       messages=[f"client secret {name!r} is valid until {best.get('endDateTime')} "
                                 f"(more than {min_days} days)"])
    end = now + _dt.timedelta(days=lifetime)
    for c in state.expiring:
        warns.append(f"client secret {name!r} {c.get('keyId')} expires {c.get('endDateTime')}: remove it once "
                     "clients use the new one")
    if not ctx.apply:
        return Outcome(changed=True, warnings=warns, before={"valid_secrets": len(state.valid)},
                       after={"secret": name, "expires": iso(end)},
                       messages=[f"would create client secret {name!r} valid until {iso(end)}"])
    cred, value, removed = op.add_password(conn.client, app, object_id, name, end)
    warns += [f"removed client secret {kid}, created by a request whose answer was lost" for kid in removed]
    key_id = str(cred.get("keyId"))
    file = ctx.write_private_file(rel(key_id), value.reveal())
    return Outcome(changed=True, warnings=warns,
                   outputs={"key_id": key_id, "hint": cred.get("hint"), "expires": cred.get("endDateTime"),
                            "secret_file": str(file)},
                   before={"valid_secrets": len(state.valid)},
                   after={"secret": name, "key_id": key_id, "expires": cred.get("endDateTime")},
                   messages=[f"created client secret {name!r} ({cred.get('hint')}…), valid until "
                             f"{cred.get('endDateTime')}; its value is in {file} (readable by you only)"])


# --------------------------------------------------------------------------- graph.certificate

def certificate(ctx: StageContext, inputs: dict[str, Any]) -> Outcome:
    """A certificate credential valid for more than `cert_min_days` is on the application.
    Without `certificate_path` a self-signed one is generated, its PFX written (0600) before
    its public part is uploaded, so a key never sits on the application without its private
    half on disk.

    inputs:  object_id (required), unique_name (names the files), certificate_path (use this
             PFX/PEM instead of generating one), certificate_password (Secret: opens the given
             file, and protects the generated PFX; without it the PFX is unprotected in a 0600
             file), certificate_name (display name, default "psrunner"), certificate_subject (CN
             of a generated certificate), cert_min_days (default 30), cert_lifetime_days
             (default 365), rotate (bool)
    outputs: thumbprint (SHA-1, upper-case hex as Windows shows it), expires, pfx_file, cert_file"""
    from ..graph import credentials as op
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
    folder = _private_dir(conn, text(inputs, "unique_name") or (str(object_id) if object_id else "new"))

    def rel(thumb: str, suffix: str) -> str:
        return f"{folder}/{_file_part(name)}-{thumb}{suffix}"

    if not given and lifetime <= min_days:
        raise InputError(f"cert_lifetime_days ({lifetime}) must exceed cert_min_days ({min_days})",
                         input="cert_lifetime_days")
    if not object_id:
        _need_object_id(ctx)
        what = f"upload certificate {given.thumbprint}" if given else \
            f"generate a self-signed certificate valid {lifetime} days and upload it"
        return Outcome(changed=True, outputs={"thumbprint": given.thumbprint} if given else {},
                       messages=[f"would {what} to the new application"])
    object_id = str(object_id)
    app = _application(conn, object_id)
    now = now_utc()
    warns: list[str] = []
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
    else:
        best = op.certificate_state(app, name, min_days, now).best
        if best is not None and not rotate:
            thumb = op.key_thumbprint(best) or ""
            pfx = ctx.private_path(rel(thumb, ".pfx")) if thumb else None
            pfx = pfx if pfx is not None and pfx.is_file() else None
            cer = pfx.with_suffix(".cer") if pfx else None
            if pfx is None:
                warns.append(f"certificate {name!r} ({thumb}) is valid until {best.get('endDateTime')}, but its "
                             "private key is not on this machine; set rotate = true to make a new one")
            return Outcome(changed=False, warnings=warns,
                           outputs={"thumbprint": thumb or None, "expires": best.get("endDateTime"),
                                    "pfx_file": str(pfx) if pfx else None,
                                    "cert_file": str(cer) if cer and cer.exists() else None},
                           messages=[f"certificate {name!r} ({thumb}) is valid until {best.get('endDateTime')}"])
        if not ctx.apply:
            return Outcome(changed=True, warnings=warns, after={"certificate": name, "days": lifetime},
                           messages=[f"would generate a self-signed certificate {name!r} valid {lifetime} "
                                     "days and upload its public part"])
        cert = generate_self_signed(text(inputs, "certificate_subject") or f"psrunner {name}", days=lifetime)
        thumb = cert.thumbprint
        outputs = {"thumbprint": thumb, "expires": iso(cert.not_after)}
    if not ctx.apply:
        return Outcome(changed=True, outputs=outputs, warnings=warns, after={"certificate": thumb},
                       messages=[f"would upload certificate {thumb} (valid until {iso(cert.not_after)})"])
    keys = op.current_keys(conn.client, app, object_id)
    if given is None:
        pfx = ctx.write_private_file(rel(thumb, ".pfx"), cert.to_pfx(password.reveal() if password else None))
        cer = ctx.write_private_file(rel(thumb, ".cer"), cert.cert_pem())
        outputs.update(pfx_file=str(pfx), cert_file=str(cer))
    op.upload_certificate(conn.client, app, object_id, keys, cert, name)
    return Outcome(changed=True, outputs=outputs, warnings=warns,
                   before={"certificates": len(keys)}, after={"certificates": len(keys) + 1, "thumbprint": thumb},
                   messages=[f"uploaded certificate {thumb} (valid until {iso(cert.not_after)})"
                             + (f"; private key in {outputs['pfx_file']}" if given is None else "")])


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
