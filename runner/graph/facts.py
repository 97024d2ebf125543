"""What this run has read or written in the tenant, kept per connector so that later stages do
not read it again (pyinfra's facts), and the reads that fill it.

Where `Facts` says an object was created by this run (so nothing can hang off it yet), the
operations skip the read; every write that follows such a skip is itself safe to repeat (an
upsert, or an assignment whose duplicate is recognised), so a wrong guess (another process
racing) still converges.

The reads a stage needs at once go out together, in one JSON `$batch` of GETs (a read, not a
write: Graph answers each on its own, and nothing in it changes the tenant). When an earlier
run left the application's ids behind (known_ids.py), the batch also reads its service
principal and app role assignments through them, so a converged run learns everything in one
round trip; what came through a remembered id is believed only when the application read
in the same batch agrees. When no earlier run left ids (most likely a first onboarding, which
will make a credential), the batch reads the tenant's default app management policy too, so
the credential stages need no round trip of their own to learn their limits
(app_policies.read_limits)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from .batch import BatchRequest
from .client import GraphClient
from .known_ids import KnownIds
from .odata import app_path, get_one, odata_key, one_or_none
from .permissions import Resolution, Wanted, resolve_permissions, resource_app_ids
from .responses import GraphResponse

APP_SELECT = ("id,appId,displayName,uniqueName,createdDateTime,requiredResourceAccess,passwordCredentials,"
              "keyCredentials")
SP_SELECT = "id,appId,displayName"
SP_RESOURCE_SELECT = "id,appId,displayName,appRoles"
ASSIGNMENT_SELECT = "id,appRoleId,resourceId"
DEFAULT_POLICY = "/policies/defaultAppManagementPolicy"   # Graph v1.0 "Get tenantAppManagementPolicy"


@dataclass
class Facts:
    """What this run has read or written through one connector."""
    apps: dict[str, dict[str, Any] | None] = field(default_factory=dict)    # uniqueName (lower) -> app
    sps: dict[str, dict[str, Any] | None] = field(default_factory=dict)     # appId -> our SP
    assignments: dict[str, list[dict[str, Any]]] = field(default_factory=dict)   # SP id -> its app role assignments
    resource_sps: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    created_apps: set[str] = field(default_factory=set)                     # appIds
    created_sps: set[str] = field(default_factory=set)                      # SP object ids
    app_limits: dict[str, Any] = field(default_factory=dict)                # object id or "new" -> Limits
    read_ahead: dict[str, GraphResponse] = field(default_factory=dict)      # path -> answer read in a batch before use
    known: KnownIds = field(default_factory=lambda: KnownIds(None))         # ids earlier runs left

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
                self.known.forget(k)
        sp = self.sps.pop(app_id, None)
        if sp:
            self.assignments.pop(sp.get("id"), None)

    def remember(self) -> None:
        """Leave the ids of every application this run found by uniqueName for the next run."""
        for name, app in self.apps.items():
            if app and not name.startswith("id:"):
                self.known.remember(name, app, self.sps.get(str(app.get("appId"))))


def _assignments_path(sp_id: str) -> str:
    return f"/servicePrincipals/{quote(sp_id, safe='')}/appRoleAssignments?$select={ASSIGNMENT_SELECT}"


def sp_path(app_id: str) -> str:
    """The service principal by its application's appId (an alternate key)."""
    return f"/servicePrincipals(appId='{odata_key(app_id)}')"


def read_state(client: GraphClient, facts: Facts, *, unique_name: str | None = None,
               resources: Iterable[str] = (), lag: bool = False, policy: bool = False) -> dict[str, Any] | None:
    """Read the application (by uniqueName) unless this run already knows it, and the resource
    service principals not yet known (one filtered list: `appId in (...)`), in one request.
    Returns the application or None. With `policy`, an application no earlier run left ids
    for brings the tenant's default app management policy along (kept in `facts.read_ahead`).

    With `lag`, the application is known to exist (an upsert said so): it is read on its own,
    and not finding it is replication lag, waited out within the lag budget."""
    key = unique_name.lower() if unique_name else None
    reads: dict[str, str] = {}
    hint: dict[str, str] = {}
    if key is not None and key not in facts.apps:
        path = f"{app_path(unique_name)}?$select={APP_SELECT}"  # type: ignore[arg-type]
        if lag:
            facts.apps[key] = _with_lists(get_one(client, path, lag=True))
        else:
            reads["app"] = path
            hint = facts.known.get(key)
            if hint.get("app_id") and hint["app_id"] not in facts.sps:
                reads["sp"] = f"{sp_path(hint['app_id'])}?$select={SP_SELECT}"
                if hint.get("sp_id"):
                    reads["assignments"] = _assignments_path(hint["sp_id"])
            elif policy and DEFAULT_POLICY not in facts.read_ahead:
                reads["policy"] = DEFAULT_POLICY
    res_ids = [r for r in dict.fromkeys(resources) if r not in facts.resource_sps]
    if res_ids:
        flt = "appId in (" + ",".join(f"'{odata_key(r)}'" for r in res_ids) + ")"
        # Spaces as %20, not "+": OData services do not all read "+" as a space in $filter.
        reads["resources"] = (f"/servicePrincipals?$filter={quote(flt, safe=chr(39) + '(),%')}"
                              f"&$select={SP_RESOURCE_SELECT}")
    answers = read_together(client, reads)
    if "policy" in answers:
        facts.read_ahead[DEFAULT_POLICY] = answers["policy"]
    if "app" in answers:
        app = facts.apps[key] = _with_lists(one_or_none(answers["app"], reads["app"]))  # type: ignore[index]
        # believe what the remembered ids read only when the application is still the same one
        if app is not None and str(app.get("appId", "")).lower() == hint.get("app_id") and "sp" in answers:
            sp = one_or_none(answers["sp"], reads["sp"])
            facts.sps[str(app["appId"])] = sp
            if sp is not None and str(sp.get("id", "")).lower() == hint.get("sp_id") and "assignments" in answers:
                facts.assignments[str(sp["id"])] = _all_items(client, answers["assignments"], reads["assignments"])
    if "resources" in answers:
        by_app = {str(sp.get("appId", "")).lower(): sp
                  for sp in _all_items(client, answers["resources"], reads["resources"])}
        for rid in res_ids:
            facts.resource_sps[rid] = by_app.get(rid.lower())
    return facts.apps.get(key) if key is not None else None


def _with_lists(app: dict[str, Any] | None) -> dict[str, Any] | None:
    """An application with the lists Graph leaves out when they are empty."""
    if app is not None:
        for name in ("passwordCredentials", "keyCredentials", "requiredResourceAccess"):
            app.setdefault(name, [])
    return app


def read_together(client: GraphClient, reads: dict[str, str]) -> dict[str, GraphResponse]:
    """Each GET of `reads` ({name: path}) answered: one request whatever their number (a
    plain GET for one, a `$batch` for more)."""
    if len(reads) == 1:
        (name, path), = reads.items()
        return {name: client.get(path, allow=(404,))}
    if not reads:
        return {}
    answers = client.batch([BatchRequest(name, "GET", path) for name, path in reads.items()])
    return {name: answers[name] for name in reads if name in answers}


def _all_items(client: GraphClient, resp: GraphResponse, path: str) -> list[dict[str, Any]]:
    """The items of a collection answer, following its nextLink (same host only)."""
    body = one_or_none(resp, path) or {}
    items = list(body.get("value") or [])
    nxt = body.get("@odata.nextLink")
    return items + (client.get_all(nxt) if nxt else [])


def resolve_runtime(client: GraphClient, facts: Facts, wanted: list[Wanted]) -> Resolution:
    """The wanted permissions resolved to the app role ids the tenant's resources define."""
    read_state(client, facts, resources=resource_app_ids(wanted))
    return resolve_permissions(wanted, facts.resource_sps)


def read_app_by_object_id(client: GraphClient, facts: Facts, object_id: str) -> dict[str, Any] | None:
    app = facts.app_by_object_id(object_id)
    if app is not None:
        return app
    app = _with_lists(get_one(client, f"/applications/{quote(object_id, safe='')}?$select={APP_SELECT}"))
    if app is not None:
        if app.get("uniqueName"):
            facts.apps[str(app["uniqueName"]).lower()] = app
        else:
            facts.apps[f"id:{object_id}"] = app
    return app
