"""Offboarding: deleting the application takes its service principal, app role assignments
and credentials with it. Deleted applications stay restorable for 30 days (deleted items)
unless purged, which frees the uniqueName at once.

Read: `read` (the application by uniqueName or appId, and its service principal). Write:
`delete`."""

from __future__ import annotations

from typing import Any

from ..errors import InputError
from .client import GraphClient
from .facts import Facts
from .odata import app_path, check_unique_name, get_one, odata_key


def read(client: GraphClient, *, unique_name: str | None = None,
         app_id: str | None = None) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(the application, its service principal); None where there is none."""
    if unique_name:
        path = app_path(check_unique_name(unique_name))
    elif app_id:
        path = f"/applications(appId='{odata_key(str(app_id))}')"
    else:
        raise InputError("remove_application needs unique_name or app_id", input="unique_name")
    app = get_one(client, f"{path}?$select=id,appId,displayName")
    if app is None:
        return None, None
    return app, get_one(client, f"/servicePrincipals(appId='{odata_key(app['appId'])}')?$select=id")


def delete(client: GraphClient, facts: Facts, app: dict[str, Any], *, purge: bool) -> None:
    client.delete(f"/applications/{app['id']}", allow=(404,))
    if purge:
        client.delete(f"/directory/deletedItems/{app['id']}", allow=(404,), lag=True)
    facts.forget_app(app["id"], app["appId"])
