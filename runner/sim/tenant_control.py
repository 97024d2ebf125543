"""The tenant simulator's control endpoint, under /_sim on the simulator's own port, so an
admin rehearsing an outage (`psrunner sim serve`) and tests driving a real psrunner process
can arm faults and read the counters while the simulator runs:

    GET    /_sim/faults           the armed fault rules, with how often each fired
    POST   /_sim/faults           arm faults: a JSON body {"faults": ["429:GET:/v1\\.0/applications$:2"]}
                                  or plain text, one KIND[=VALUE]:METHOD:PATH[:COUNT] a line
    DELETE /_sim/faults           disarm them all
    GET    /_sim/requests         the request counters (RequestCounter.snapshot), round trips
                                  included, plus those of any registered `sources` (e.g. the
                                  WSMan simulator's requests per action under "wsman")
    DELETE /_sim/requests         reset the counters

A fault line is read by tenant_faults.parse_fault_spec, the parser `--fault` uses; a line it
refuses is answered 400 with the reason, and nothing of that body is armed. Control requests
are never counted, faulted or held by latency. Like the simulator, the endpoint trusts
whoever reaches its loopback port: it is a rehearsal tool, not a service."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .tenant_faults import parse_fault_spec
from .tenant_response import Response

if TYPE_CHECKING:  # pragma: no cover
    from .tenant import TenantSimulator

CONTROL_PREFIX = "/_sim"


class ControlEndpoint:
    def __init__(self, sim: TenantSimulator) -> None:
        self.sim = sim
        self.sources: dict[str, Callable[[], dict[str, Any]]] = {}

    def handle(self, method: str, path: str, query: str, body: bytes) -> Response:
        what = path[len(CONTROL_PREFIX):].strip("/")
        if what == "faults":
            if method == "GET":
                return Response(200, {"faults": [f.describe() for f in self.sim.faults.rules]})
            if method == "POST":
                return self._arm(body)
            if method == "DELETE":
                self.sim.faults.clear()
                return Response(204)
        elif what == "requests":
            if method == "GET":
                out: dict[str, Any] = {"tenant": self.sim.requests.snapshot()}
                out.update({name: read() for name, read in self.sources.items()})
                return Response(200, out)
            if method == "DELETE":
                self.sim.requests.reset()
                return Response(204)
        else:
            return Response(404, {"error": f"no control resource {path!r}; use {CONTROL_PREFIX}/faults "
                                           f"or {CONTROL_PREFIX}/requests"})
        return Response(405, {"error": f"{method} is not supported on {path}"})

    def _arm(self, body: bytes) -> Response:
        text = body.decode("utf-8", "replace").strip()
        if text.startswith("{"):
            try:
                specs = json.loads(text).get("faults")
            except (ValueError, AttributeError):
                specs = None
            if not isinstance(specs, list) or not all(isinstance(x, str) for x in specs):
                return Response(400, {"error": 'expected {"faults": ["KIND[=VALUE]:METHOD:PATH[:COUNT]", ...]}'})
        else:
            specs = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
        parsed = []
        for spec in specs:
            try:
                parsed.append(parse_fault_spec(spec))
            except ValueError as e:
                return Response(400, {"error": f"fault {spec!r}: {e}"})
        added = [self.sim.faults.add(**args).describe() for args in parsed]
        return Response(201, {"added": added})
