"""Microsoft Graph over `requests`: the client every Graph operation calls.

Why each rule exists:
- Every call has a (connect, read) timeout, shortened to what is left of the stage deadline.
- Every call is retried by the one loop of retry.py: throttling (429 / 503 / 504) honours
  Retry-After, replication lag is waited out only for calls marked `lag=True`.
- A connection that drops is retried at once only when replaying cannot duplicate anything
  (GET, PATCH, DELETE, idempotent upserts, or a POST that never left: connect errors). For a
  POST that may have been applied, the caller supplies `reconcile`, which re-reads the world
  and says whether the write happened; without it the error is raised with a hint that a
  re-run converges. A 504 on such a POST is treated the same way.
- The bearer token goes only to the client's own endpoint (a forged nextLink is refused).
- Counters (http.py) are what reports and benchmarks read; `$batch` is in batch.py, error
  bodies are read in responses.py.
- Logs show method, path, status, request-id and milliseconds: never headers or bodies.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextvars import ContextVar
from typing import Any
from urllib.parse import urlsplit

import requests

from ..errors import GraphError, Interrupted, StageTimeout
from .batch import BatchRequest, send_batch
from .http import WRITE_METHODS, GraphCounters, HttpSession, route_of, tls_error, unreachable
from .responses import GraphResponse, graph_error, is_replication_lag, request_id_of
from .retry import LAG, THROTTLE, Again, RetryLoop, RetryPolicy

log = logging.getLogger("psrunner.graph")

RETRY_STATUSES = frozenset({429, 503, 504})

Reconcile = Callable[[], "GraphResponse | None"]


class GraphClient:
    """A Microsoft Graph client bound to one endpoint and one token source.

    `token_provider()` returns a bearer token (msal caches it; calling it per request is
    cheap). `before_write(method, path)` runs before the first write of each request (the
    connector checks the token's rights there, so nothing is written without them)."""

    def __init__(self, endpoint: str, token_provider: Callable[[], str],
                 session: requests.Session | None = None, *,
                 timeout: tuple[float, float] = (10.0, 60.0),
                 policy: RetryPolicy | None = None,
                 counters: GraphCounters | None = None,
                 version: str = "v1.0",
                 before_write: Callable[[str, str], None] | None = None,
                 on_event: Callable[..., None] | None = None,
                 logger: logging.Logger | None = None,
                 rng: random.Random | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.version = version
        self.token_provider = token_provider
        self.session = session if session is not None else HttpSession(timeout=timeout)
        self.timeout = timeout
        self.policy = policy or RetryPolicy()
        self.counters = counters or GraphCounters()
        self.before_write = before_write
        self.on_event = on_event
        self.log = logger or log
        self.rng = rng or random.Random()
        self.clock = clock
        self.cancel = threading.Event()
        # the clock() value no call outlives, set per stage by the connector: per thread (and
        # the threads it hands work to, through contextvars), since stages may run alongside
        self._deadline: ContextVar[float | None] = ContextVar(f"graph-deadline-{id(self)}", default=None)
        # How waiting is done: returns True when interrupted. Tests replace it to record delays.
        self.wait: Callable[[float], bool] = self.cancel.wait
        self._origin = urlsplit(self.endpoint)[:2]

    # ---- plumbing -------------------------------------------------------------------

    @property
    def root(self) -> str:
        return f"{self.endpoint}/{self.version}"

    def url(self, path: str) -> str:
        if "://" in path:
            if urlsplit(path)[:2] != self._origin:
                # Never send the bearer token to another host (a forged nextLink, say).
                raise GraphError(f"refusing to follow a link to another host: {urlsplit(path).netloc}",
                                 status=None, code="ForeignLink", url=path)
            return path
        return self.root + (path if path.startswith("/") else "/" + path)

    def interrupt(self) -> None:
        """Stop retry loops now (Ctrl-C); may be called from another thread."""
        self.cancel.set()

    @property
    def deadline(self) -> float | None:
        return self._deadline.get()

    @deadline.setter
    def deadline(self, value: float | None) -> None:
        self._deadline.set(value)

    def remaining(self) -> float | None:
        return None if self.deadline is None else self.deadline - self.clock()

    def retry_loop(self) -> RetryLoop:
        """The retry loop for one call: this client's policy, deadline, interrupt and wait."""
        return RetryLoop(self.policy, wait=lambda s: self.wait(s), cancel=self.cancel,
                         remaining=self.remaining, rng=self.rng, log=self.log, name="graph")

    def _timeout(self) -> tuple[float, float]:
        left = self.remaining()
        if left is None:
            return self.timeout
        if left <= 0:
            raise StageTimeout("stage deadline reached before a Graph call")
        return (min(self.timeout[0], left), min(self.timeout[1], left))

    def _send(self, method: str, url: str, *, json: Any = None, params: Mapping[str, Any] | None = None,
              headers: Mapping[str, str] | None = None, writes: int = 0) -> GraphResponse:
        if self.cancel.is_set():
            raise Interrupted("interrupted before a Graph call")
        token = self.token_provider()
        h = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        if headers:
            h.update(headers)
        route = route_of(method, url)
        start = time.monotonic()
        self.counters.add_request(route, method, writes)
        try:
            resp = self.session.request(method, url, json=json, params=params, headers=h,
                                        timeout=self._timeout())
        except requests.RequestException as e:
            ms = int((time.monotonic() - start) * 1000)
            self.log.info("graph %s %s -> %s (%d ms)", method, urlsplit(url).path, type(e).__name__, ms)
            self._emit(method=method, route=route, status=None, error=type(e).__name__, ms=ms)
            raise
        ms = int((time.monotonic() - start) * 1000)
        try:
            body = resp.json() if resp.content else None
        except ValueError:
            body = resp.text
        rid = request_id_of(resp.headers, body)
        self.log.info("graph %s %s -> %d request-id=%s (%d ms)", method, urlsplit(url).path,
                      resp.status_code, rid, ms)
        self._emit(method=method, route=route, status=resp.status_code, request_id=rid, ms=ms)
        return GraphResponse(resp.status_code, body, dict(resp.headers), rid)

    def _emit(self, **data: Any) -> None:
        if self.on_event is not None:
            try:
                self.on_event("graph.request", **data)
            except Exception:  # pragma: no cover - an event sink must never break a call
                self.log.debug("graph: event sink failed", exc_info=True)

    # ---- one call ---------------------------------------------------------------------

    def request(self, method: str, path: str, *, json: Any = None,
                params: Mapping[str, Any] | None = None, headers: Mapping[str, str] | None = None,
                lag: bool = False, idempotent: bool | None = None,
                reconcile: Reconcile | None = None, allow: Iterable[int] = (),
                writes: int | None = None) -> GraphResponse:
        """One Graph call, retried by the rules of retry.py.

        `allow`: statuses returned to the caller instead of raised (e.g. 404 for a lookup).
        `lag`: retry replication-lag errors (for calls that follow a create).
        `idempotent`: replaying cannot duplicate (defaults to True for all but POST).
        `reconcile`: for a non-idempotent call whose outcome is unknown (dropped connection,
        504): returns the response to use when the write did happen, None when it did not."""
        method = method.upper()
        url = self.url(path)
        path_only = urlsplit(url).path
        if idempotent is None:
            idempotent = method != "POST"
        if writes is None:
            writes = 1 if method in WRITE_METHODS else 0
        if writes and self.before_write is not None:
            self.before_write(method, path_only)
        allow = set(allow)

        def settle(err: GraphError, lost: str) -> GraphResponse | None:
            """A write whose answer was lost may have been applied: reconcile says."""
            if reconcile is None:
                err.hint = f"{lost}, so the request may have been applied; re-run to converge"
                raise err
            return reconcile()

        def attempt() -> GraphResponse:
            try:
                resp = self._send(method, url, json=json, params=params, headers=headers, writes=writes)
            except requests.RequestException as e:
                tls = tls_error(e, url, self.session)
                if tls is not None:
                    raise tls from None
                never_sent = unreachable(e, self.timeout[0]) is not None
                err = GraphError(f"Graph {method} {path_only} failed: {type(e).__name__}: {_short(e)}",
                                 status=None, code=type(e).__name__, method=method, url=path_only,
                                 hint="check the network path to Microsoft Graph and re-run (re-running is safe)")
                if not (idempotent or never_sent):
                    done = settle(err, "the connection dropped after the request was sent")
                    if done is not None:
                        return done
                raise Again(err, type(e).__name__) from e
            if resp.ok or resp.status in allow:
                return resp
            err = graph_error(method, url, resp.status, resp.body, resp.headers)
            if resp.status in RETRY_STATUSES:
                if resp.status == 504 and not idempotent:
                    done = settle(err, "the gateway timed out")
                    if done is not None:
                        return done
                raise Again(err, f"{resp.status} {err.code or ''}".strip(), kind=THROTTLE,
                            retry_after=[resp.headers.get("Retry-After")])
            if lag and is_replication_lag(resp.status, resp.body):
                raise Again(err, f"replication lag: {err.code}", kind=LAG)
            raise err

        return self.retry_loop().run(attempt)

    def get(self, path: str, **kw: Any) -> GraphResponse:
        return self.request("GET", path, **kw)

    def post(self, path: str, json: Any = None, **kw: Any) -> GraphResponse:
        return self.request("POST", path, json=json, **kw)

    def patch(self, path: str, json: Any = None, **kw: Any) -> GraphResponse:
        return self.request("PATCH", path, json=json, **kw)

    def delete(self, path: str, **kw: Any) -> GraphResponse:
        return self.request("DELETE", path, **kw)

    def get_all(self, path: str, params: Mapping[str, Any] | None = None, *, lag: bool = False,
                max_pages: int = 1000) -> list[Any]:
        """Every item of a collection, following @odata.nextLink (same host only)."""
        items: list[Any] = []
        resp = self.get(path, params=params, lag=lag)
        for _ in range(max_pages):
            body = resp.body if isinstance(resp.body, dict) else {}
            items.extend(body.get("value") or [])
            nxt = body.get("@odata.nextLink")
            if not nxt:
                return items
            resp = self.get(nxt, lag=lag)
        raise GraphError(f"more than {max_pages} pages at {path}", status=None, code="TooManyPages")

    def batch(self, items: Sequence[BatchRequest], *, lag: bool = False,
              ok_if: Callable[[int, Any], bool] | None = None) -> dict[str, GraphResponse]:
        """Send `items` as JSON $batch requests: see batch.send_batch."""
        return send_batch(self.request, self.retry_loop(), items, lag=lag, ok_if=ok_if)


def _short(e: BaseException) -> str:
    text = str(e)
    return text if len(text) <= 200 else text[:200] + "…"
