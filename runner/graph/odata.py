"""Small pieces every Entra operation shares: OData key literals, the application's
alternate-key path, Graph timestamps, and a read that treats "not found" as None."""

from __future__ import annotations

import datetime as _dt
import re
from typing import Any
from urllib.parse import quote

from ..errors import InputError
from .client import GraphClient
from .responses import GraphResponse, graph_error

UNIQUE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._~-]{0,119}$")


def odata_key(value: str) -> str:
    """A string literal for an OData key segment: quotes doubled, then URL-encoded."""
    return quote(value.replace("'", "''"), safe="")


def check_unique_name(unique_name: str) -> str:
    if not isinstance(unique_name, str) or not UNIQUE_NAME_RE.match(unique_name):
        raise InputError(f"unique_name: {unique_name!r} is not a valid unique name", input="unique_name",
                         hint="use letters, digits and . _ ~ - (up to 120 characters), e.g. 'contoso-backup'")
    return unique_name


def app_path(unique_name: str) -> str:
    """The application by its immutable alternate key, `uniqueName`."""
    return f"/applications(uniqueName='{odata_key(unique_name)}')"


def now_utc() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc)


def iso(dt: _dt.datetime) -> str:
    return dt.astimezone(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: Any) -> _dt.datetime | None:
    """A Graph timestamp ("2027-05-01T12:00:00Z", up to 7 fractional digits) as aware UTC."""
    if not value or not isinstance(value, str):
        return None
    v = value.strip()
    if v.endswith("Z"):
        v = v[:-1] + "+00:00"
    v = re.sub(r"\.(\d+)", lambda m: "." + m.group(1)[:6].ljust(6, "0"), v, count=1)
    try:
        dt = _dt.datetime.fromisoformat(v)
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=_dt.timezone.utc)


def _not_found(resp: GraphResponse) -> bool:
    code = (resp.body or {}).get("error", {}).get("code") if isinstance(resp.body, dict) else None
    return resp.status == 404 and code in (None, "Request_ResourceNotFound", "ResourceNotFound", "NotFound")


def one_or_none(resp: GraphResponse, path: str) -> dict[str, Any] | None:
    """The object an answer carries, or None when Graph says it does not exist; any other
    failure (another 404 included) is an error."""
    if resp.status == 404 and _not_found(resp):
        return None
    if not resp.ok:
        raise graph_error("GET", path, resp.status, resp.body, resp.headers)
    return resp.body if isinstance(resp.body, dict) else None


def get_one(client: GraphClient, path: str, *, lag: bool = False) -> dict[str, Any] | None:
    """One object, or None when Graph says it does not exist (any other 404 is an error).
    With `lag`, the object is known to exist (an upsert said so): a 404 is replication lag,
    waited out within the lag budget."""
    return one_or_none(client.get(path, allow=() if lag else (404,), lag=lag), path)
