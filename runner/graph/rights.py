"""What a Graph access token grants, read before any write: who signed in, with which
delegated scopes (`scp`), application roles (`roles`) and directory roles (`wids`), and what
is missing for the work asked, each named so a person can act on it.

Granting Microsoft Graph app roles to a service principal needs, for a delegated caller,
AppRoleAssignment.ReadWrite.All and the Privileged Role Administrator or Global
Administrator role (Microsoft Graph permissions reference, "Grant an appRoleAssignment to a
service principal")."""

from __future__ import annotations

import base64
import json
from typing import Any

from ..errors import AuthError, setting

PRIVILEGED_ROLE_ADMINISTRATOR = "e8611ab8-c189-46e8-94e1-60213ab1f814"
GLOBAL_ADMINISTRATOR = "62e90394-69f5-4237-9190-012177145e10"
ROLE_NAMES = {PRIVILEGED_ROLE_ADMINISTRATOR: "Privileged Role Administrator",
              GLOBAL_ADMINISTRATOR: "Global Administrator"}

APPLICATION_RW = "Application.ReadWrite.All"
APP_ROLE_ASSIGNMENT_RW = "AppRoleAssignment.ReadWrite.All"
DELEGATED_SCOPES = (APPLICATION_RW, APP_ROLE_ASSIGNMENT_RW)


def decode_claims(token: str) -> dict[str, Any]:
    """The payload of a JWT access token (no signature check: the token came straight from
    the token service over TLS, and Graph checks it; here it only tells us what was granted)."""
    try:
        payload = token.split(".")[1]
        payload += "=" * (-len(payload) % 4)
        data = json.loads(base64.urlsafe_b64decode(payload.encode()))
    except (IndexError, ValueError):
        raise AuthError("the access token is not a JWT: cannot read what it grants",
                        hint=f"check that {setting('authority_host')} and {setting('graph_endpoint')} point at "
                             "Microsoft Entra ID and Graph") from None
    return data if isinstance(data, dict) else {}


def describe(claims: dict[str, Any]) -> dict[str, Any]:
    """Who signed in and with what rights, for preflight outputs and the report."""
    delegated = "scp" in claims
    scopes = sorted(str(claims.get("scp", "")).split()) if delegated else []
    roles = sorted(claims.get("roles") or [])
    wids = list(claims.get("wids") or [])
    if delegated:
        identity = claims.get("upn") or claims.get("preferred_username") or claims.get("unique_name") or claims.get("oid")
    else:
        name = claims.get("app_displayname")
        appid = claims.get("appid") or claims.get("azp")
        identity = f"{name} ({appid})" if name else appid
    return {
        "sign_in": "delegated" if delegated else "app-only",
        "tenant_id": claims.get("tid"),
        "identity": identity,
        "client_id": claims.get("appid") or claims.get("azp"),
        "scopes": scopes,
        "roles": roles,
        "wids": wids,
        "directory_roles": [ROLE_NAMES[w] for w in wids if w in ROLE_NAMES],
    }


def missing_rights(claims: dict[str, Any], *, manage_apps: bool = True,
                   grant_roles: bool = True, grant_graph_roles: bool = True) -> list[str]:
    """What the token lacks for the work asked, each as a line a person can act on.

    manage_apps: create/update applications and service principals, add credentials.
    grant_roles: create app role assignments (admin consent for application permissions).
    grant_graph_roles: grant *Microsoft Graph* app roles, which needs a privileged directory
    role for a delegated caller."""
    missing: list[str] = []
    if "scp" in claims:
        scp = set(str(claims.get("scp", "")).split())
        need = ([APPLICATION_RW] if manage_apps or grant_roles else []) + ([APP_ROLE_ASSIGNMENT_RW] if grant_roles else [])
        for s in need:
            if s not in scp:
                missing.append(f"delegated permission {s} (scp)")
        if grant_roles and grant_graph_roles:
            wids = set(claims.get("wids") or [])
            if not wids & {PRIVILEGED_ROLE_ADMINISTRATOR, GLOBAL_ADMINISTRATOR}:
                missing.append("directory role Privileged Role Administrator or Global Administrator (wids)")
    else:
        roles = set(claims.get("roles") or [])
        need = ([APPLICATION_RW] if manage_apps or grant_roles else []) + ([APP_ROLE_ASSIGNMENT_RW] if grant_roles else [])
        for r in need:
            if r not in roles:
                missing.append(f"application permission {r} (roles)")
    return missing


def require_rights(claims: dict[str, Any], **what: bool) -> None:
    missing = missing_rights(claims, **what)
    if not missing:
        return
    who = describe(claims)
    if who["sign_in"] == "delegated":
        hint = ("sign in as an administrator who holds the Privileged Role Administrator (or Global "
                "Administrator) role and consent to Application.ReadWrite.All and "
                "AppRoleAssignment.ReadWrite.All for the sign-in client")
    else:
        hint = ("grant the signing-in application the application permissions "
                "Application.ReadWrite.All and AppRoleAssignment.ReadWrite.All (with admin consent)")
    raise AuthError(f"{who['identity'] or 'the signed-in identity'} lacks: " + "; ".join(missing)
                    + " (nothing was changed)", missing=missing, hint=hint)
