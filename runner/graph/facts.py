"""What this run has read or written in the tenant, kept per connector so that later stages do
not read it again (pyinfra's facts), and the reads that fill it.

Where `Facts` says an object was created by this run (so nothing can hang off it yet), the
operations skip the read; every write that follows such a skip is itself safe to repeat (an
upsert, or an assignment whose duplicate is recognised), so a wrong guess (another process
racing) still converges."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from .client import GraphClient
from .odata import app_path, get_one, odata_key
from .permissions import Resolution, Wanted, resolve_permissions, resource_app_ids

APP_SELECT = ("id,appId,displayName,uniqueName,createdDateTime,requiredResourceAccess,passwordCredentials,"
              "keyCredentials")
SP_RESOURCE_SELECT = "id,appId,displayName,appRoles"


@dataclass
class Facts:
    """What this run has read or written through one connector."""
    apps: dict[str, dict[str, Any] | None] = field(default_factory=dict)    # uniqueName (lower) -> app
    sps: dict[str, dict[str, Any] | None] = field(default_factory=dict)     # appId -> our SP
    resource_sps: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    created_apps: set[str] = field(default_factory=set)                     # appIds
    created_sps: set[str] = field(default_factory=set)                      # SP object ids
    app_limits: dict[str, Any] = field(default_factory=dict)                # object id or "new" -> Limits

    def app_by_object_id(self, object_id: str) -> dict[str, Any] | None:
        for a in self.apps.values():
            if a and a.get("id") == object_id:
                return a
        return None

    def forget_app(self, object_id: str, app_id: str) -> None:
        """The application is gone (removed by this run)."""
        for k, v in list(self.apps.items()):
            if v and v.get("id") == object_id:
                self.apps[k] = None
        self.sps.pop(app_id, None)


def read_state(client: GraphClient, facts: Facts, *, unique_name: str | None = None,
               resources: Iterable[str] = (), lag: bool = False) -> dict[str, Any] | None:
    """Read the application (by uniqueName) unless this run already knows it, and the resource
    service principals not yet known, all of them in one filtered list request. Returns the
    application or None.

    Why a filtered list and not a $batch of lookups: a $batch is a POST, and a run that finds
    everything in place should send no write-shaped request at all; `appId in (...)` costs
    the same single round trip. With `lag`, the application is known to exist (an upsert said
    so): not finding it is replication lag, waited out within the lag budget."""
    key = unique_name.lower() if unique_name else None
    if key is not None and key not in facts.apps:
        app = get_one(client, f"{app_path(unique_name)}?$select={APP_SELECT}", lag=lag)  # type: ignore[arg-type]
        if app is not None:
            app.setdefault("passwordCredentials", [])
            app.setdefault("keyCredentials", [])
            app.setdefault("requiredResourceAccess", [])
        facts.apps[key] = app
    res_ids = [r for r in dict.fromkeys(resources) if r not in facts.resource_sps]
    if res_ids:
        flt = "appId in (" + ",".join(f"'{odata_key(r)}'" for r in res_ids) + ")"
        # Spaces as %20, not "+": OData services do not all read "+" as a space in $filter.
        found = client.get_all(f"/servicePrincipals?$filter={quote(flt, safe=chr(39) + '(),%')}"
                               f"&$select={SP_RESOURCE_SELECT}")
        by_app = {str(sp.get("appId", "")).lower(): sp for sp in found}
        for rid in res_ids:
            facts.resource_sps[rid] = by_app.get(rid.lower())
    return facts.apps.get(key) if key is not None else None


def resolve_runtime(client: GraphClient, facts: Facts, wanted: list[Wanted]) -> Resolution:
    """The wanted permissions resolved to the app role ids the tenant's resources define."""
    read_state(client, facts, resources=resource_app_ids(wanted))
    return resolve_permissions(wanted, facts.resource_sps)


def read_app_by_object_id(client: GraphClient, facts: Facts, object_id: str) -> dict[str, Any] | None:
    app = facts.app_by_object_id(object_id)
    if app is not None:
        return app
    app = get_one(client, f"/applications/{quote(object_id, safe='')}?$select={APP_SELECT}")
    if app is not None:
        app.setdefault("passwordCredentials", [])
        app.setdefault("keyCredentials", [])
        if app.get("uniqueName"):
            facts.apps[str(app["uniqueName"]).lower()] = app
        else:
            facts.apps[f"id:{object_id}"] = app
    return app
