"""Stage kinds for the Entra application (Microsoft Graph). Each reads first, writes only
when `ctx.apply` and only what differs, and returns outputs for later stages.

Every kind takes `target` (the runbook target name; default: the stage's `target`, else
"tenant"). An input that refers to an earlier stage's output arrives in plan mode as an
Unknown when that stage would create the object; the kind then reports what it would do.

graph.preflight  (preflight)
  inputs:  profile (str, default "m365-backup"), permissions (list of "API: Permission"),
           consent (bool, default true: also check the rights to grant admin consent)
  outputs: tenant_id, identity, sign_in ("delegated" | "app-only"), auth, rights
           {scopes, roles, wids, directory_roles}
  Signs in, checks the token grants what the run needs (AuthError naming what is missing,
  before any write), and reports platform notices for the profile as warnings.

graph.application  (application)
  inputs:  display_name (required), unique_name (default: display_name as a slug; the
           immutable identity of the app: keep it stable), profile (default "m365-backup"),
           permissions (extra "API: Permission" lines), remove_extras (bool, default false)
  outputs: app_id, object_id, display_name, unique_name, permissions (n requested),
           extras (requested but not in the profile)

graph.service_principal  (service_principal)
  inputs:  app_id (required: ${stages.<application>.outputs.app_id}), display_name
  outputs: sp_id, app_id

graph.consent  (consent)
  inputs:  sp_id (required: ${stages.<service_principal>.outputs.sp_id}), profile, permissions
           (the same as the application stage's)
  outputs: granted (n in place), added (n this run), missing (list of "API: Permission" not
           granted), permissions [{resource, permission, id, state}] with state one of
           granted | added | would-grant | unavailable | failed

graph.secret  (client_secret)
  inputs:  object_id (required: ${stages.<application>.outputs.object_id}), unique_name (names
           the secret file; default the object id), secret_name (credential display name,
           default "psrunner"), secret_min_days (default 30), secret_lifetime_days (default
           180, at most 730), rotate (bool: make a new one even if a valid one exists)
  outputs: secret_file (0600 file holding the value, stable across runs), key_id, hint, expires
  The secret value goes to the file only: never to outputs, messages, logs or events.

graph.certificate  (certificate)
  inputs:  object_id (required), unique_name (names the files), certificate_path (use this
           PFX/PEM instead of generating one), certificate_password (Secret: opens the given
           file, and protects the generated PFX; without it the PFX is unprotected in a 0600
           file), certificate_name (display name, default "psrunner"), certificate_subject (CN
           of a generated certificate), cert_min_days (default 30), cert_lifetime_days
           (default 365), rotate (bool)
  outputs: thumbprint (SHA-1, upper-case hex as Windows shows it), expires, pfx_file, cert_file

graph.remove_application  (remove_application)
  inputs:  unique_name or app_id, purge (bool, default false: also delete it from deleted
           items, which frees the uniqueName at once)
  outputs: removed (bool), app_id, object_id
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..results import Outcome
from ..values import as_bool, as_int, as_secret, as_text, known_or_none
from .base import GraphTarget, StageContext

DEFAULT_PROFILE = "m365-backup"


# --------------------------------------------------------------------------- helpers

def _connector(ctx: StageContext, inputs: dict[str, Any]) -> GraphTarget:
    conn: GraphTarget = ctx.target(inputs.get("target") or ctx.stage.target or "tenant")
    conn.begin_stage(ctx.deadline)
    return conn


def _bool(inputs: dict[str, Any], key: str, default: bool = False) -> bool:
    return as_bool(inputs.get(key, default), key)


def _int(inputs: dict[str, Any], key: str, default: int, lo: int = 0, hi: int = 100000) -> int:
    return as_int(inputs.get(key, default), key, lo=lo, hi=hi)


def _str(inputs: dict[str, Any], key: str, default: str | None = None, required: bool = False) -> str | None:
    """Text input; an Unknown counts as not given (plan mode: not there yet)."""
    return as_text(known_or_none(inputs.get(key)), key, required=required) or default


def _wanted(inputs: dict[str, Any]) -> tuple[list, list[str]]:
    from ..graph.permissions import wanted_for

    profile = inputs.get("profile", DEFAULT_PROFILE)
    return wanted_for(profile or "none", inputs.get("permissions") or [])


def slug(text: str) -> str:
    s = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return s[:120] or "app"


def _file_part(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", text)[:120] or "x"


def _private_dir(conn: GraphTarget, unique: str) -> str:
    return f"graph/{_file_part(conn.tenant.lower())}/{_file_part(unique)}"


def _offline(conn: GraphTarget, ctx: StageContext) -> bool:
    if conn.offline:
        if ctx.apply:
            raise InputError("offline: a graph target marked offline can only be planned", input="offline",
                             hint="remove offline = true from the target to run")
        return True
    return False


# --------------------------------------------------------------------------- notices

def profile_notices(wanted: list) -> list[str]:
    from ..graph.permissions import EXCHANGE_APP_ID, SHAREPOINT_APP_ID

    out = []
    if any(w.resource_app_id == EXCHANGE_APP_ID and w.permission == "full_access_as_app" for w in wanted):
        out.append("Exchange Online full_access_as_app is an EWS permission: EWS is being switched off in "
                   "Exchange Online from 2026-10-01 (blocked unless the tenant allow-lists the app) and shut "
                   "down on 2027-04-01; plan to move the product to Microsoft Graph mail/calendar APIs")
    if any(w.resource_app_id == SHAREPOINT_APP_ID for w in wanted):
        out.append("SharePoint Online refuses app-only tokens obtained with a client secret: the application "
                   "needs a certificate credential for its SharePoint permissions to work")
    return out


# --------------------------------------------------------------------------- kinds

def preflight(ctx: StageContext, inputs: dict[str, Any]) -> Outcome:
    from ..graph.permissions import GRAPH_APP_ID

    wanted, _ = _wanted(inputs)          # the profile's corrections are the application stage's to tell
    warns: list[str] = []
    conn = _connector(ctx, inputs)
    notices = profile_notices(wanted)
    if _offline(conn, ctx):
        return Outcome(changed=False, warnings=warns + notices,
                       outputs={"sign_in": "offline", "tenant_id": None, "identity": None},
                       messages=["offline plan: not signed in; rights not checked"])
    consent = _bool(inputs, "consent", True)
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


def application(ctx: StageContext, inputs: dict[str, Any]) -> Outcome:
    from ..graph.apps import check_unique_name, ensure_application
    from ..graph.permissions import resolve

    display_name = _str(inputs, "display_name", required=True)
    assert display_name is not None
    unique_name = check_unique_name(_str(inputs, "unique_name") or slug(display_name))
    wanted, warns = _wanted(inputs)
    remove_extras = _bool(inputs, "remove_extras", False)
    conn = _connector(ctx, inputs)
    if _offline(conn, ctx):
        res = resolve(wanted, None)
        return Outcome(changed=True, warnings=warns,
                       outputs={"unique_name": unique_name, "display_name": display_name,
                                "permissions": len(res.items)},
                       messages=[f"offline plan: not checked; would ensure application {display_name!r} "
                                 f"(uniqueName {unique_name}) requesting {len(res.items)} application permissions"])
    return ensure_application(conn.client, unique_name=unique_name, display_name=display_name, wanted=wanted,
                              apply=ctx.apply, facts=conn.facts, remove_extras=remove_extras, warnings=warns)


def service_principal(ctx: StageContext, inputs: dict[str, Any]) -> Outcome:
    from ..graph.apps import ensure_service_principal

    conn = _connector(ctx, inputs)
    app_id = known_or_none(inputs.get("app_id"))
    if _offline(conn, ctx):
        return Outcome(changed=True, messages=["offline plan: not checked; would ensure the service principal"])
    if app_id is None and ctx.apply:
        raise InputError("app_id: required", input="app_id",
                         hint="pass ${stages.<application stage>.outputs.app_id}")
    return ensure_service_principal(conn.client, app_id=app_id, apply=ctx.apply, facts=conn.facts,
                                    display_name=_str(inputs, "display_name"))


def consent(ctx: StageContext, inputs: dict[str, Any]) -> Outcome:
    from ..graph.apps import (
        ensure_admin_consent,
        needs_graph_role_grant,
        resolve_runtime,
    )
    from ..graph.permissions import resolve

    wanted, _ = _wanted(inputs)          # its warnings are the application stage's to tell
    conn = _connector(ctx, inputs)
    sp_id = known_or_none(inputs.get("sp_id"))
    if _offline(conn, ctx):
        res = resolve(wanted, None)
        return Outcome(changed=True,
                       outputs={"granted": 0, "missing": [r.label for r in res.items]},
                       messages=[f"offline plan: not checked; would grant admin consent for {len(res.items)} "
                                 "application permissions"])
    if sp_id is None and ctx.apply:
        raise InputError("sp_id: required", input="sp_id",
                         hint="pass ${stages.<service principal stage>.outputs.sp_id}")
    resolution = resolve_runtime(conn.client, conn.facts, wanted)
    # Rights first, in plan and in apply alike: a plan that cannot be applied should say so.
    conn.require(manage_apps=False, grant_roles=True, grant_graph_roles=needs_graph_role_grant(resolution))
    return ensure_admin_consent(conn.client, sp_id=sp_id, resolution=resolution, apply=ctx.apply,
                                facts=conn.facts)


def client_secret(ctx: StageContext, inputs: dict[str, Any]) -> Outcome:
    from ..graph.apps import SecretStore, ensure_client_secret

    conn = _connector(ctx, inputs)
    object_id = known_or_none(inputs.get("object_id"))
    name = _str(inputs, "secret_name", "psrunner") or "psrunner"
    min_days = _int(inputs, "secret_min_days", 30, 0, 729)
    lifetime = _int(inputs, "secret_lifetime_days", 180, 1, 730)
    rotate = _bool(inputs, "rotate", False)
    if _offline(conn, ctx):
        return Outcome(changed=True, messages=[f"offline plan: not checked; would ensure client secret {name!r}"])
    unique = _str(inputs, "unique_name") or (str(object_id) if object_id else "new")
    folder = _private_dir(conn, unique)

    def rel(key_id: str) -> str:
        return f"{folder}/client-secret-{_file_part(name)}-{_file_part(key_id)}.txt"

    def find(key_id: str) -> Path | None:
        p = ctx.private_path(rel(key_id))
        return p if p.is_file() else None

    def save(key_id: str, text: str) -> Path:
        return ctx.write_private_file(rel(key_id), text)

    return ensure_client_secret(conn.client, object_id=object_id, apply=ctx.apply, store=SecretStore(find, save),
                                name=name, min_days=min_days, lifetime_days=lifetime, rotate=rotate,
                                facts=conn.facts)


def certificate(ctx: StageContext, inputs: dict[str, Any]) -> Outcome:
    from ..graph.apps import CertStore, ensure_certificate
    from ..graph.certs import load_certificate

    conn = _connector(ctx, inputs)
    object_id = known_or_none(inputs.get("object_id"))
    name = _str(inputs, "certificate_name", "psrunner") or "psrunner"
    min_days = _int(inputs, "cert_min_days", 30, 0, 3650)
    lifetime = _int(inputs, "cert_lifetime_days", 365, 1, 3650)
    rotate = _bool(inputs, "rotate", False)
    password = as_secret(inputs.get("certificate_password"), "certificate_password")
    path = _str(inputs, "certificate_path")
    material = load_certificate(path, password, input_name="certificate_path") if path else None
    if _offline(conn, ctx):
        return Outcome(changed=True, outputs={"thumbprint": material.thumbprint} if material else {},
                       messages=["offline plan: not checked; would ensure a certificate credential"])
    unique = _str(inputs, "unique_name") or (str(object_id) if object_id else "new")
    folder = _private_dir(conn, unique)

    def find(thumb: str) -> Path | None:
        p = ctx.private_path(f"{folder}/{_file_part(name)}-{thumb}.pfx")
        return p if p.is_file() else None

    def save(thumb: str, pfx: bytes, cert_pem: str) -> tuple[Path, Path]:
        pfx_path = ctx.write_private_file(f"{folder}/{_file_part(name)}-{thumb}.pfx", pfx)
        cert_path = ctx.write_private_file(f"{folder}/{_file_part(name)}-{thumb}.cer", cert_pem)
        return pfx_path, cert_path

    return ensure_certificate(conn.client, object_id=object_id, apply=ctx.apply, store=CertStore(find, save),
                              name=name, subject=_str(inputs, "certificate_subject"), min_days=min_days,
                              lifetime_days=lifetime, certificate=material,
                              pfx_password=password.reveal() if password else None, rotate=rotate,
                              facts=conn.facts, given_path=path)


def remove_application(ctx: StageContext, inputs: dict[str, Any]) -> Outcome:
    from ..graph.apps import remove_application as remove

    conn = _connector(ctx, inputs)
    unique_name = _str(inputs, "unique_name")
    app_id = _str(inputs, "app_id")
    if not unique_name and not app_id:
        raise InputError("remove_application needs unique_name or app_id", input="unique_name")
    if _offline(conn, ctx):
        return Outcome(changed=True, messages=["offline plan: not checked; would remove the application if present"])
    return remove(conn.client, apply=ctx.apply, unique_name=unique_name, app_id=app_id,
                  purge=_bool(inputs, "purge", False), facts=conn.facts)
