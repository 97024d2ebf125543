"""The Entra application: found by `uniqueName` (an immutable alternate key), never by
display name, so renaming it in the portal does not make a second one. It is created with the
documented upsert `PATCH /applications(uniqueName='x')` + `Prefer: create-if-missing`, which
is idempotent, so a dropped connection can be retried without risking a duplicate (unlike
`POST /applications`).

Read: facts.read_state. Decide: `decide` compares the application with the permissions it
should request (pure). Write: `create` or `update`. What a stage says about it is the stage's
business (runner.stages.entra)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..errors import GraphError
from .client import GraphClient
from .facts import Facts, read_state
from .odata import app_path

# A permission an application requests: (resource appId, app role or scope id, "Role" | "Scope").
Key = tuple[str, str, str]


def requested(rra: Iterable[dict[str, Any]] | None) -> list[Key]:
    """The permissions a requiredResourceAccess list requests, in its order."""
    out = []
    for entry in rra or []:
        res = str(entry.get("resourceAppId", "")).lower()
        for acc in entry.get("resourceAccess") or []:
            out.append((res, str(acc.get("id", "")).lower(), str(acc.get("type", "Role"))))
    return out


def required_resource_access(keys: Iterable[Key]) -> list[dict[str, Any]]:
    grouped: dict[str, list[dict[str, str]]] = {}
    for res, rid, typ in keys:
        grouped.setdefault(res, []).append({"id": rid, "type": typ})
    return [{"resourceAppId": k, "resourceAccess": v} for k, v in grouped.items()]


@dataclass
class AppDecision:
    """What converging an existing application takes."""
    existing: list[Key]
    missing: list[Key] = field(default_factory=list)     # wanted, not requested yet
    extras: list[Key] = field(default_factory=list)      # requested, not wanted
    remove: list[Key] = field(default_factory=list)      # extras to drop (remove_extras)
    rename_from: str | None = None                       # the display name to replace
    patch: dict[str, Any] = field(default_factory=dict)  # the PATCH body; {} when in place


def decide(app: dict[str, Any], desired: list[Key], display_name: str, *, remove_extras: bool) -> AppDecision:
    existing = requested(app.get("requiredResourceAccess"))
    have, want = set(existing), set(desired)
    d = AppDecision(existing=existing, missing=[k for k in desired if k not in have],
                    extras=[k for k in existing if k not in want])
    d.remove = d.extras if remove_extras else []
    if (app.get("displayName") or "") != display_name:
        d.rename_from = app.get("displayName")
        d.patch["displayName"] = display_name
    if d.missing or d.remove:
        keep = [k for k in existing if k not in set(d.remove)]
        d.patch["requiredResourceAccess"] = required_resource_access(keep + d.missing)
    return d


def create(client: GraphClient, facts: Facts, unique_name: str, display_name: str,
           desired: list[Key]) -> tuple[dict[str, Any], bool]:
    """Upsert the application; (the application, whether this call created it). A 204 means
    it existed after all (a racing run, or a replay after a dropped answer): read it back."""
    body = {"displayName": display_name, "requiredResourceAccess": required_resource_access(desired)}
    resp = client.patch(app_path(unique_name), json=body, headers={"Prefer": "create-if-missing"})
    if resp.status == 201 and isinstance(resp.body, dict) and resp.body.get("id"):
        app = {**body, "passwordCredentials": [], "keyCredentials": [], **resp.body}
        facts.created_apps.add(app["appId"])
        created = True
    else:
        facts.apps.pop(unique_name.lower(), None)
        # The upsert says it exists: a 404 now is replication lag, waited out like any other.
        found = read_state(client, facts, unique_name=unique_name, lag=True)
        if found is None:
            raise GraphError(f"application {unique_name} was upserted but cannot be read back",
                             status=resp.status, code=None, hint="re-run (re-running is safe)")
        app, created = found, False
    app.setdefault("uniqueName", unique_name)
    facts.apps[unique_name.lower()] = app
    return app, created


def update(client: GraphClient, app: dict[str, Any], patch: dict[str, Any]) -> None:
    client.patch(f"/applications/{app['id']}", json=patch)
    app.update(patch)
