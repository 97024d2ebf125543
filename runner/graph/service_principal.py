"""The application's service principal: the object admin consent is granted to.

Read: `read`, by the application's appId (skipped when this run created the application
moments ago: it cannot have one yet). Write: `upsert`, the documented
`PATCH /servicePrincipals(appId='x')` + `Prefer: create-if-missing`, idempotent."""

from __future__ import annotations

from typing import Any

from ..errors import GraphError
from .client import GraphClient
from .facts import SP_SELECT, Facts, sp_path
from .odata import get_one


def read(client: GraphClient, facts: Facts, app_id: str, *, apply: bool) -> dict[str, Any] | None:
    if app_id in facts.sps:
        return facts.sps[app_id]
    if apply and app_id in facts.created_apps:
        return None         # created by this run moments ago: it cannot have a service principal yet
    sp = get_one(client, f"{sp_path(app_id)}?$select={SP_SELECT}")
    facts.sps[app_id] = sp
    return sp


def upsert(client: GraphClient, facts: Facts, app_id: str, display_name: str | None) -> tuple[dict[str, Any], bool]:
    """(the service principal, whether this call created it)."""
    body: dict[str, Any] = {"displayName": display_name} if display_name else {}
    # lag=True: right after the application is created, this upsert can fail with
    # NoBackingApplicationObject (or, app-only, 403 "... must be in the local tenant") until the
    # application has replicated.
    resp = client.patch(sp_path(app_id), json=body, headers={"Prefer": "create-if-missing"}, lag=True)
    if resp.status == 201 and isinstance(resp.body, dict) and resp.body.get("id"):
        sp, created = resp.body, True
        facts.created_sps.add(sp["id"])
    else:
        found = get_one(client, f"{sp_path(app_id)}?$select={SP_SELECT}", lag=True)    # it exists: 404 is lag
        if found is None:
            raise GraphError(f"service principal of {app_id} was upserted but cannot be read back",
                             status=resp.status, code=None, hint="re-run (re-running is safe)")
        sp, created = found, False
    facts.sps[app_id] = sp
    return sp, created
