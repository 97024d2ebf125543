"""Microsoft Graph JSON batching in the tenant simulator: POST /v1.0/$batch.

At most 20 sub-requests with unique ids; dependsOn orders them and a request whose
dependency failed gets 424; each sub-request is authorized with the batch's token and
answered on its own, and faults apply per sub-request (a 429 for one item while the others
succeed, as Graph throttles). The batch counts as one HTTP request; its items are counted
separately (RequestCounter.batch_items)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .tenant_response import GraphError, Response

if TYPE_CHECKING:  # pragma: no cover
    from .tenant_graph import Ctx, GraphService

MAX_BATCH = 20
# Consulted for each sub-request: (method, absolute path, headers) -> a fault response or None.
ItemFault = Callable[[str, str, dict[str, str]], "Response | None"]


def run_batch(graph: GraphService, ctx: Ctx, item_fault: ItemFault | None) -> Response:
    """POST /$batch: up to 20 sub-requests, run in dependsOn order, each answered on its own
    (its own status, headers, body; a failed dependency gives 424)."""
    try:
        payload = json.loads(ctx.body or b"null")
    except ValueError:
        payload = None
    reqs = payload.get("requests") if isinstance(payload, dict) else None
    if not isinstance(reqs, list) or not all(isinstance(r, dict) for r in reqs):
        raise GraphError(400, "BadRequest", "Invalid batch payload format.")
    if len(reqs) > MAX_BATCH:
        raise GraphError(400, "BadRequest", f"The number of requests in the batch ({len(reqs)}) exceeds the "
                         f"limit of {MAX_BATCH}.")
    ids = [str(r.get("id", "")) for r in reqs]
    if any(not i for i in ids) or len({i.lower() for i in ids}) != len(ids):
        raise GraphError(400, "BadRequest", "Every request in a batch needs a unique id.")
    for r in reqs:
        if not r.get("method") or not isinstance(r.get("url"), str):
            raise GraphError(400, "BadRequest", "Invalid batch payload format: method and url are required.")
        for d in r.get("dependsOn") or []:
            if str(d) not in ids:
                raise GraphError(400, "BadRequest", f"Request '{r['id']}' depends on unknown request '{d}'.")
    order = _batch_order(reqs)
    results: dict[str, dict[str, Any]] = {}
    counted: list[tuple[str, str]] = []
    assert ctx.caller is not None
    for r in order:
        rid = str(r["id"])
        method = str(r["method"]).upper()
        sub_path, sub_query = _batch_url(r["url"])
        counted.append((method, graph.sim.route_of(sub_path)))
        failed = [d for d in (r.get("dependsOn") or []) if results[str(d)]["status"] >= 400]
        if failed:
            resp = graph.error_response(424, "FailedDependency", "The request depends on a request that "
                                       "failed.", ctx.headers)
        else:
            resp = _batch_item(graph, ctx, r, method, sub_path, sub_query, item_fault)
        item: dict[str, Any] = {"id": rid, "status": resp.status,
                                "headers": {k: v for k, v in resp.headers.items()
                                            if k.lower() in ("retry-after", "location", "cache-control")}}
        if resp.body is not None:
            item["headers"]["Content-Type"] = resp.content_type
            item["body"] = resp.json_body()
        results[rid] = item
    graph.sim.requests.record_batch(counted)
    return graph.ok(200, {"responses": [results[str(r["id"])] for r in reqs]}, ctx.headers)

def _batch_order(reqs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_id = {str(r["id"]): r for r in reqs}
    done: set[str] = set()
    order: list[dict[str, Any]] = []
    visiting: set[str] = set()

    def visit(rid: str) -> None:
        if rid in done:
            return
        if rid in visiting:
            raise GraphError(400, "BadRequest", "Circular dependsOn in batch request.")
        visiting.add(rid)
        for d in by_id[rid].get("dependsOn") or []:
            visit(str(d))
        visiting.discard(rid)
        done.add(rid)
        order.append(by_id[rid])

    for r in reqs:
        visit(str(r["id"]))
    return order

def _batch_url(url: str) -> tuple[str, str]:
    if url.lower().startswith(("http://", "https://")):
        raise GraphError(400, "BadRequest", "Batch request urls must be relative, e.g. /applications.")
    parts = urlsplit("/" + url.lstrip("/"))
    return "/v1.0" + parts.path, parts.query

def _batch_item(graph: GraphService, ctx: Ctx, r: dict[str, Any], method: str, path: str, query: str,
                item_fault: ItemFault | None) -> Response:
    hdrs = {str(k).lower(): str(v) for k, v in (r.get("headers") or {}).items()}
    hdrs["host"] = ctx.headers.get("host", "")  # sub-requests answer under the batch's host name
    hdrs.setdefault("client-request-id", ctx.headers.get("client-request-id", ""))
    if not hdrs["client-request-id"]:
        del hdrs["client-request-id"]
    if item_fault is not None:
        faulted = item_fault(method, path, hdrs)
        if faulted is not None:
            return faulted
    body = r.get("body")
    if body is not None and "content-type" not in hdrs:
        return graph.error_response(400, "BadRequest", "A Content-Type header is required when a body is "
                                   "specified.", hdrs)
    raw = json.dumps(body).encode() if isinstance(body, (dict, list)) else (str(body).encode() if body else b"")
    return graph.handle(method, path, query, hdrs, raw, caller=ctx.caller, in_batch=True)
