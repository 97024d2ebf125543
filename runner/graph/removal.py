"""Offboarding: deleting the application takes its service principal, app role assignments
and credentials with it. Deleted applications stay restorable for 30 days (deleted items)
unless purged, which frees the uniqueName at once.

Read: `read` (the application by uniqueName or appId, and its service principal). Write:
`delete` (and forget the ids kept for the next run)."""

from __future__ import annotations

from typing import Any

from ..errors import InputError
from .client import GraphClient
from .facts import SP_SELECT, Facts, read_state, sp_path
from .odata import check_unique_name, get_one, odata_key


def read(client: GraphClient, facts: Facts, *, unique_name: str | None = None,
         app_id: str | None = None) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(the application, its service principal); None where there is none. By uniqueName,
    both come in one request when an earlier run left the application's ids (facts.read_state)."""
    if unique_name:
        app = read_state(client, facts, unique_name=check_unique_name(unique_name))
    elif app_id:
        app = get_one(client, f"/applications(appId='{odata_key(str(app_id))}')?$select=id,appId,displayName")
    else:
        raise InputError("remove_application needs unique_name or app_id", input="unique_name")
    if app is None:
        return None, None
    if app["appId"] not in facts.sps:
        facts.sps[app["appId"]] = get_one(client, f"{sp_path(app['appId'])}?$select={SP_SELECT}")
    return app, facts.sps[app["appId"]]


def delete(client: GraphClient, facts: Facts, app: dict[str, Any], *, purge: bool) -> None:
    client.delete(f"/applications/{app['id']}", allow=(404,))
    if purge:
        client.delete(f"/directory/deletedItems/{app['id']}", allow=(404,), lag=True)
    facts.forget_app(app["id"], app["appId"])
