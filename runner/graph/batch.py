"""JSON `$batch`: up to 20 Graph requests in one POST, each answered on its own.

Items are split into batches that keep every dependsOn chain together (Graph rejects a
dependency on a request of another batch). The batches of one round go out together, at most
CONCURRENT at a time: they do not depend on one another, and waiting for each in turn would
cost one round trip per 20 items (46 admin consents: three instead of one). Graph's
throttling is per app and tenant whatever the concurrency, and a throttled item answers 429
with its own Retry-After, which the next round honours. Items answered 429 / 503 / 504 or 424 (a failed
dependency that may succeed next time), and with `lag` replication-lag errors, are sent again
in a later round; each round is one attempt of the client's retry loop (retry.py), so a
round waits for the longest Retry-After among its items. Other failures are returned for the
caller to judge."""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from ..errors import GraphError
from .http import WRITE_METHODS
from .responses import GraphResponse, graph_error, is_replication_lag, request_id_of
from .retry import LAG, THROTTLE, Again, RetryLoop

BATCH_LIMIT = 20          # documented maximum of requests in one JSON $batch
CONCURRENT = 4            # $batch requests of one round in flight at once
RETRY_STATUSES = frozenset({429, 503, 504})


@dataclass
class BatchRequest:
    id: str
    method: str
    url: str                               # relative to the version root: "/applications/{id}"
    body: Any = None
    headers: dict[str, str] | None = None
    depends_on: list[str] | None = None

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"id": self.id, "method": self.method.upper(), "url": self.url}
        headers = dict(self.headers or {})
        if self.body is not None:
            d["body"] = self.body
            headers.setdefault("Content-Type", "application/json")
        if headers:
            d["headers"] = headers
        if self.depends_on:
            d["dependsOn"] = list(self.depends_on)
        return d


def split_batches(items: Sequence[BatchRequest], limit: int = BATCH_LIMIT) -> list[list[BatchRequest]]:
    """Chunks of at most `limit`, keeping every dependsOn chain inside one chunk (Graph
    rejects a dependency on a request of another batch), in the original order."""
    ids = {it.id for it in items}
    if len(ids) != len(items):
        raise ValueError("batch request ids must be unique")
    parent = {it.id: it.id for it in items}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for it in items:
        for dep in it.depends_on or []:
            if dep not in ids:
                raise ValueError(f"batch request {it.id} depends on unknown id {dep}")
            parent[find(it.id)] = find(dep)
    groups: dict[str, list[BatchRequest]] = {}
    for it in items:
        groups.setdefault(find(it.id), []).append(it)
    chunks: list[list[BatchRequest]] = []
    current: list[BatchRequest] = []
    for group in groups.values():
        if len(group) > limit:
            raise ValueError(f"a dependsOn chain of {len(group)} requests exceeds the $batch limit of {limit}")
        if len(current) + len(group) > limit:
            chunks.append(current)
            current = []
        current.extend(group)
    if current:
        chunks.append(current)
    return chunks


def send_batch(request: Callable[..., GraphResponse], loop: RetryLoop, items: Sequence[BatchRequest], *,
               lag: bool = False, ok_if: Callable[[int, Any], bool] | None = None) -> dict[str, GraphResponse]:
    """Send `items` as JSON $batch requests (at most 20 each) through `request` (the client's
    one call) and return each item's own response by id; rounds are attempts of `loop`.
    `ok_if(status, body)` marks failures that mean "already done" (kept as returned).

    A batch is replayed whole after a dropped connection only because its callers send items
    that are safe to replay (reads, upserts, role assignments whose duplicate answer is
    recognised)."""
    results: dict[str, GraphResponse] = {}
    items = [BatchRequest(it.id, it.method, it.url, it.body, it.headers,
                          list(it.depends_on) if it.depends_on else None) for it in items]
    by_id = {it.id: it for it in items}
    order = {it.id: i for i, it in enumerate(items)}
    pending = list(items)

    def round_() -> dict[str, GraphResponse]:
        """Send what is pending; Again with what is left to send again."""
        nonlocal pending
        retry: list[BatchRequest] = []
        retry_after: list[str | None] = []
        last_err: GraphError | None = None
        lag_hit = False
        chunks = split_batches(pending)
        for chunk, resp in zip(chunks, _send_all(request, chunks), strict=True):
            answers = (resp.body or {}).get("responses") or [] if isinstance(resp.body, dict) else []
            seen = set()
            for a in answers:
                rid = str(a.get("id"))
                if rid not in by_id:
                    continue
                seen.add(rid)
                status = int(a.get("status") or 0)
                body = a.get("body")
                headers = {str(k): str(v) for k, v in (a.get("headers") or {}).items()}
                sub = GraphResponse(status, body, headers, request_id_of(headers, body))
                if sub.ok or (ok_if is not None and ok_if(status, body)):
                    results[rid] = sub
                elif status == 424 and any(d in results and not results[d].ok
                                           for d in by_id[rid].depends_on or []):
                    results[rid] = sub      # its dependency failed for good
                elif status in RETRY_STATUSES or status == 424:
                    retry.append(by_id[rid])
                    if status != 424:
                        retry_after.append(headers.get("Retry-After"))
                    last_err = graph_error(by_id[rid].method, by_id[rid].url, status, body, headers)
                elif lag and is_replication_lag(status, body):
                    retry.append(by_id[rid])
                    lag_hit = True
                    last_err = graph_error(by_id[rid].method, by_id[rid].url, status, body, headers)
                else:
                    results[rid] = sub
            for it in chunk:            # an item the service did not answer: send it again
                if it.id not in seen:
                    retry.append(it)
        if not retry:
            return results
        pending = sorted({it.id: it for it in retry}.values(), key=lambda it: order[it.id])
        # an item whose dependency already succeeded must not wait on it again
        for it in pending:
            if it.depends_on:
                it.depends_on = [d for d in it.depends_on if d not in results] or None
        err = last_err or GraphError("Graph $batch items were never answered", status=None, code="BatchIncomplete")
        raise Again(err, f"{len(retry)} batch item(s) to retry", kind=LAG if lag_hit else THROTTLE,
                    retry_after=retry_after)

    return loop.run(round_)


def _send_all(request: Callable[..., GraphResponse], chunks: list[list[BatchRequest]]) -> list[GraphResponse]:
    """Each chunk sent as one $batch POST, concurrently when there are several; the answers in
    the chunks' order. When one fails for good, the others are still waited for (nothing is
    left in flight), then the first failure is raised."""
    def send(chunk: list[BatchRequest]) -> GraphResponse:
        writes = sum(1 for it in chunk if it.method.upper() in WRITE_METHODS)
        return request("POST", "/$batch", json={"requests": [it.to_json() for it in chunk]},
                       idempotent=True, writes=writes)

    if len(chunks) == 1:
        return [send(chunks[0])]
    with ThreadPoolExecutor(max_workers=min(CONCURRENT, len(chunks)), thread_name_prefix="graph-batch") as pool:
        # each in a copy of this thread's context: the stage's deadline goes along (client.py)
        futures = [pool.submit(contextvars.copy_context().run, send, chunk) for chunk in chunks]
    return [f.result() for f in futures]
