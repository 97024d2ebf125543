"""The response value the tenant simulator's handlers return, independent of the HTTP server
so the same handler serves a top-level request and a $batch sub-request, and the Graph error
they raise."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

GRAPH_JSON = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"


@dataclass
class Response:
    status: int
    body: Any = None                 # dict/list (sent as JSON), str/bytes (sent as is), None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json; charset=utf-8"
    drop: bool = False               # close the connection without answering

    def payload(self) -> bytes:
        if self.body is None:
            return b""
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode()
        return json.dumps(self.body, separators=(",", ":")).encode()

    def json_body(self) -> Any:
        """The body as JSON data (for $batch sub-responses)."""
        if self.body is None or isinstance(self.body, (dict, list)):
            return self.body
        raw = self.body.decode() if isinstance(self.body, bytes) else self.body
        try:
            return json.loads(raw)
        except ValueError:
            return raw


class GraphError(Exception):
    """A Graph error answer: status, code, message (and optional details / headers)."""

    def __init__(self, status: int, code: str, message: str, details: list[dict[str, Any]] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.details, self.headers = details, headers or {}
