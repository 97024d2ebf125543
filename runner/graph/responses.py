"""What Graph answers, read one way: the response, its error code, message and request id,
and the few answers that need recognising (replication lag, an assignment that exists)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ..errors import GraphError


@dataclass
class GraphResponse:
    status: int
    body: Any
    headers: Mapping[str, str] = field(default_factory=dict)
    request_id: str | None = None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def error_parts(body: Any) -> tuple[str | None, str, list[str]]:
    """(code, message, detail codes) of a Graph error body. Detail codes come from
    `error.details[].code` and `error.innerError.code`, where Graph puts sub-codes such as
    NoBackingApplicationObject."""
    err = body.get("error") if isinstance(body, dict) else None
    if not isinstance(err, dict):
        return None, (body if isinstance(body, str) else "") or "", []
    code = err.get("code")
    message = err.get("message") or ""
    if isinstance(message, dict):          # the old AAD Graph shape {"lang", "value"}
        message = message.get("value", "")
    details: list[str] = []
    for d in err.get("details") or []:
        if isinstance(d, dict) and d.get("code"):
            details.append(str(d["code"]))
    inner = err.get("innerError") or err.get("innererror")
    if isinstance(inner, dict) and inner.get("code"):
        details.append(str(inner["code"]))
    return code, str(message), details


def request_id_of(headers: Mapping[str, str] | None, body: Any = None) -> str | None:
    if headers:
        for k in ("request-id", "Request-Id", "client-request-id"):
            if headers.get(k):
                return headers[k]
    if isinstance(body, dict):
        inner = (body.get("error") or {}).get("innerError") if isinstance(body.get("error"), dict) else None
        if isinstance(inner, dict):
            return inner.get("request-id")
    return None


# The one message Graph gives without a distinguishing code. "Not a valid reference update"
# comes back as a generic 400 Request_BadRequest (the same code as real input errors and as
# "permission being assigned already exists"), so the code alone cannot identify it. It is
# matched as the whole message, case-insensitively, not as a substring, so that no other
# Request_BadRequest is mistaken for lag.
_LAG_MESSAGES = ("not a valid reference update",)
_LAG_CODES = frozenset({"Request_ResourceNotFound"})
_LAG_DETAIL_CODES = frozenset({"NoBackingApplicationObject"})
# What an app-only caller creating the service principal of an application made moments ago
# gets before the application has replicated: a 403 with a code that otherwise means a missing
# right, told apart by its fixed words (quoted in azure-cli #28009, azure-powershell #29530,
# terraform-provider-azuread #504; the service writes "must in").
_LAG_403 = re.compile(r"backing application of the service principal being created must(?: be)? in the local tenant",
                      re.IGNORECASE)


def is_replication_lag(status: int, body: Any) -> bool:
    """True for the documented errors of an object that exists but has not replicated yet."""
    code, message, details = error_parts(body)
    if code in _LAG_CODES:
        return True
    if status == 403 and code == "Authorization_RequestDenied" and _LAG_403.search(message):
        return True
    if code == "Request_BadRequest":
        if _LAG_DETAIL_CODES.intersection(details):
            return True
        if "NoBackingApplicationObject" in message:
            return True
        if message.strip().rstrip(".").strip().lower() in _LAG_MESSAGES:
            return True
    return False


# "Permission being assigned already exists on the object": a 400 Request_BadRequest that
# means the assignment is there (a racing run, or a replay after a dropped response). Graph
# gives no distinct code, so the message is matched narrowly, on its fixed leading words.
_ALREADY_EXISTS = re.compile(r"^\s*permission being assigned already exists", re.IGNORECASE)


def is_already_assigned(status: int, body: Any) -> bool:
    code, message, _ = error_parts(body)
    return status == 400 and code == "Request_BadRequest" and bool(_ALREADY_EXISTS.match(message))


def _hint_for(status: int | None, code: str | None) -> str | None:
    if status == 403 or code == "Authorization_RequestDenied":
        return ("the signed-in identity lacks a right for this call: check its permissions "
                "(Application.ReadWrite.All, AppRoleAssignment.ReadWrite.All) and directory role")
    if status == 401:
        return "the access token was refused: sign in again (delete the token cache) and re-run"
    if status == 429 or status in (503, 504):
        return "Microsoft Graph stayed busy through all retries: wait a few minutes and re-run (re-running is safe)"
    if code in _LAG_CODES:
        return "a just-created object did not replicate in time: re-run (re-running is safe)"
    return None


def graph_error(method: str, url: str, status: int | None, body: Any,
                headers: Mapping[str, str] | None = None, note: str = "") -> GraphError:
    code, message, _ = error_parts(body)
    rid = request_id_of(headers, body)
    path = urlsplit(url).path if "://" in url else url
    text = f"Graph {method} {path} failed: {status} {code or ''} {message}".rstrip()
    if note:
        text += f" ({note})"
    return GraphError(text, status=status, code=code, request_id=rid, method=method,
                      url=path, hint=_hint_for(status, code))
