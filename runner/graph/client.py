"""Microsoft Graph over `requests`: one place for timeouts, retries, throttling, replication
lag, paging, `$batch`, error mapping and request counting.

Why each rule exists:
- Every call has a (connect, read) timeout, shortened to what is left of the stage deadline.
- 429 / 503 / 504 are retried honouring `Retry-After` (capped), with exponential backoff and
  jitter when the header is missing: Graph throttles per app and per tenant, and a fleet of
  clients that retry in step makes it worse.
- A connection that drops is retried at once only when replaying cannot duplicate anything
  (GET, PATCH, DELETE, idempotent upserts, or a POST that never left: connect errors). For a
  POST that may have been applied, the caller supplies `reconcile`, which re-reads the world
  and says whether the write happened; without it the error is raised with a hint that a
  re-run converges.
- Replication lag (no SLA is documented; minutes are seen in practice) is retried only for
  calls the caller marks `lag=True`, on the documented just-created errors, for a bounded
  total time (`RetryPolicy.lag_budget`, default 180 s).
- Counters (requests, writes, per route, token requests) are what reports and benchmarks read.
- Logs show method, path, status, request-id and milliseconds: never headers or bodies.
"""

from __future__ import annotations

import email.utils
import logging
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests

from ..errors import GraphError, Interrupted, StageTimeout

log = logging.getLogger("psrunner.graph")

WRITE_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})
RETRY_STATUSES = frozenset({429, 503, 504})
BATCH_LIMIT = 20          # documented maximum of requests in one JSON $batch

_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_KEY = re.compile(r"\((\w+)='[^']*'\)")


# --------------------------------------------------------------------------- HTTP session

class HttpSession(requests.Session):
    """A Session that sets `verify=` and `timeout=` on every request.

    Why per request: when REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE is set (common on corporate
    hosts, and on this build machine), requests ignores `Session.verify` for any request that
    does not pass `verify=` itself. Turning `trust_env` off would also drop proxy settings, so
    the bundle is injected here instead. msal gets this session as its `http_client`, so
    token requests obey the same rules and are counted through `on_request`.

    `own_retry_after`: for msal's session. msal replays a cached 429/5xx answer for the
    Retry-After period (5 s when absent) without asking again; the token source retries on
    its own schedule (honouring the header it reads from `last_retry_after`), so the header
    msal sees on an error is set to 0 and msal never serves a stale failure."""

    def __init__(self, *, ca_bundle: str | None = None,
                 timeout: tuple[float, float] = (10.0, 60.0),
                 on_request: Callable[[str, str], None] | None = None,
                 own_retry_after: bool = False) -> None:
        super().__init__()
        self.ca_bundle = str(ca_bundle) if ca_bundle else None
        if self.ca_bundle:
            self.verify = self.ca_bundle
        self.default_timeout = timeout
        self.on_request = on_request
        self.own_retry_after = own_retry_after
        self.last_retry_after: str | None = None
        self.last_status: int | None = None

    def request(self, method, url, *args, **kwargs):  # type: ignore[override]
        if self.ca_bundle and kwargs.get("verify") in (None, True):
            kwargs["verify"] = self.ca_bundle
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.default_timeout
        if self.on_request is not None:
            self.on_request(str(method).upper(), str(url))
        resp = super().request(method, url, *args, **kwargs)
        self.last_status = resp.status_code
        self.last_retry_after = resp.headers.get("Retry-After")
        if self.own_retry_after and (resp.status_code == 429 or resp.status_code >= 500):
            resp.headers["Retry-After"] = "0"
        return resp


# --------------------------------------------------------------------------- counters

def route_of(method: str, url: str) -> str:
    """`GET /servicePrincipals/{id}/appRoleAssignments`: ids and keys replaced so that routes
    group across objects (for reports and benchmarks)."""
    path = urlsplit(url).path if "://" in url else url.split("?", 1)[0]
    path = re.sub(r"^/(v1\.0|beta)(?=/|$)", "", path) or "/"
    path = _KEY.sub(lambda m: "(" + m.group(1) + "={" + m.group(1) + "})", path)
    path = _GUID.sub("{id}", path)
    return f"{method.upper()} {path}"


class GraphCounters:
    """Thread-safe request counters.

    requests: Graph HTTP requests (a $batch is one). writes: those with a write method (a
    $batch POST is one, whatever it holds), as the service sees them. write_operations: the
    writes asked for, counting each write inside a $batch (20 role assignments in one batch
    are 1 request, 1 write, 20 write operations). token_requests: sign-in requests (OpenID
    discovery, token, device code)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests = 0
        self.writes = 0
        self.write_operations = 0
        self.token_requests = 0
        self.by_route: Counter[str] = Counter()

    def add_request(self, route: str, method: str = "GET", write_operations: int = 0) -> None:
        with self._lock:
            self.requests += 1
            if method.upper() in WRITE_METHODS:
                self.writes += 1
            self.write_operations += write_operations
            self.by_route[route] += 1

    def add_token_request(self, route: str = "token") -> None:
        with self._lock:
            self.token_requests += 1
            self.by_route[route] += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"requests": self.requests, "writes": self.writes,
                    "write_operations": self.write_operations,
                    "token_requests": self.token_requests, "by_route": dict(self.by_route)}


# --------------------------------------------------------------------------- retry policy

@dataclass
class RetryPolicy:
    """How long to keep trying. Defaults suit a real tenant; tests shrink them."""
    max_attempts: int = 8            # per call, for throttling and transient errors
    retry_after_cap: float = 30.0    # never sleep longer than this for one Retry-After
    backoff_base: float = 1.0        # first backoff step (seconds) when no Retry-After
    backoff_cap: float = 30.0
    lag_budget: float = 180.0        # total seconds to wait out replication lag per call
    lag_base: float = 2.0
    lag_cap: float = 30.0

    def backoff(self, attempt: int, rng: random.Random | None = None,
                base: float | None = None, cap: float | None = None) -> float:
        """Exponential backoff with "equal jitter": a delay in [d/2, d] where
        d = min(cap, base * 2**attempt). Half is guaranteed (progress), half is random
        (clients spread out)."""
        base = self.backoff_base if base is None else base
        cap = self.backoff_cap if cap is None else cap
        d = min(cap, base * (2 ** max(0, attempt)))
        r = (rng or random).random()
        return d / 2 + r * d / 2

    def throttle_delay(self, attempt: int, retry_after: str | None,
                       rng: random.Random | None = None, now: float | None = None) -> float:
        ra = parse_retry_after(retry_after, now=now)
        if ra is None:
            return self.backoff(attempt, rng)
        return min(ra, self.retry_after_cap)

    def lag_delay(self, attempt: int, rng: random.Random | None = None) -> float:
        return self.backoff(attempt, rng, base=self.lag_base, cap=self.lag_cap)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a Retry-After header: delta-seconds or an HTTP-date. None when absent or
    unreadable (the caller then backs off on its own); never negative."""
    if value is None:
        return None
    value = str(value).strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    now = time.time() if now is None else now
    return max(0.0, when.timestamp() - now)


# --------------------------------------------------------------------------- errors

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


def is_replication_lag(status: int, body: Any) -> bool:
    """True for the documented errors of an object that exists but has not replicated yet."""
    code, message, details = error_parts(body)
    if code in _LAG_CODES:
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


# --------------------------------------------------------------------------- batch types

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


# --------------------------------------------------------------------------- client

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
        self.deadline: float | None = None      # clock() value; set per stage by the connector
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

    def remaining(self) -> float | None:
        return None if self.deadline is None else self.deadline - self.clock()

    def _sleep(self, seconds: float, why: str, last_error: Exception | None) -> None:
        left = self.remaining()
        if left is not None and seconds > left:
            if last_error is not None:
                raise last_error
            raise StageTimeout(f"stage deadline reached while waiting ({why})")
        if seconds > 0:
            self.log.info("graph: waiting %.1f s (%s)", seconds, why)
        if self.wait(max(0.0, seconds)) or self.cancel.is_set():
            raise Interrupted("interrupted while waiting to retry a Graph call")

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

    # ---- the retry loop -------------------------------------------------------------

    def request(self, method: str, path: str, *, json: Any = None,
                params: Mapping[str, Any] | None = None, headers: Mapping[str, str] | None = None,
                lag: bool = False, idempotent: bool | None = None,
                reconcile: Reconcile | None = None, allow: Iterable[int] = (),
                writes: int | None = None) -> GraphResponse:
        """One Graph call with the retry rules of this module.

        `allow`: statuses returned to the caller instead of raised (e.g. 404 for a lookup).
        `lag`: retry replication-lag errors (for calls that follow a create).
        `idempotent`: replaying cannot duplicate (defaults to True for all but POST).
        `reconcile`: for a non-idempotent call whose outcome is unknown (dropped connection,
        504): returns the response to use when the write did happen, None when it did not."""
        method = method.upper()
        url = self.url(path)
        if idempotent is None:
            idempotent = method != "POST"
        if writes is None:
            writes = 1 if method in WRITE_METHODS else 0
        if writes and self.before_write is not None:
            self.before_write(method, urlsplit(url).path)
        allow = set(allow)
        attempt = 0
        lag_attempt = 0
        lag_waited = 0.0
        while True:
            attempt += 1
            try:
                resp = self._send(method, url, json=json, params=params, headers=headers, writes=writes)
            except requests.RequestException as e:
                never_sent = isinstance(e, requests.exceptions.ConnectTimeout) or _is_connect_refused(e)
                err = GraphError(f"Graph {method} {urlsplit(url).path} failed: {type(e).__name__}: "
                                 f"{_short(e)}", status=None, code=type(e).__name__, method=method,
                                 url=urlsplit(url).path,
                                 hint="check the network path to Microsoft Graph and re-run (re-running is safe)")
                if not (idempotent or never_sent):
                    if reconcile is None:
                        err.hint = ("the connection dropped after the request was sent, so it may "
                                    "have been applied; re-run to converge")
                        raise err from e
                    done = reconcile()
                    if done is not None:
                        return done
                if attempt >= self.policy.max_attempts:
                    raise err from e
                self._sleep(self.policy.backoff(attempt - 1, self.rng), f"{type(e).__name__}", err)
                continue
            if resp.ok or resp.status in allow:
                return resp
            err = graph_error(method, url, resp.status, resp.body, resp.headers)
            if resp.status in RETRY_STATUSES:
                if resp.status == 504 and not idempotent:
                    # A gateway timeout may hide an applied write: same rule as a drop.
                    if reconcile is None:
                        err.hint = "the gateway timed out, so the request may have been applied; re-run to converge"
                        raise err
                    done = reconcile()
                    if done is not None:
                        return done
                if attempt >= self.policy.max_attempts:
                    raise err
                delay = self.policy.throttle_delay(attempt - 1, resp.headers.get("Retry-After"), self.rng)
                self._sleep(delay, f"{resp.status} {err.code or ''}".strip(), err)
                continue
            if lag and is_replication_lag(resp.status, resp.body):
                delay = self.policy.lag_delay(lag_attempt, self.rng)
                lag_attempt += 1
                if lag_waited + delay > self.policy.lag_budget:
                    err.hint = (f"the object was still not replicated after {lag_waited:.0f} s "
                                f"(limit {self.policy.lag_budget:.0f} s): re-run later (re-running is safe)")
                    raise err
                lag_waited += delay
                attempt -= 1          # lag waits have their own budget
                self._sleep(delay, f"replication lag: {err.code}", err)
                continue
            raise err

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

    # ---- $batch ---------------------------------------------------------------------

    def batch(self, items: Sequence[BatchRequest], *, lag: bool = False,
              ok_if: Callable[[int, Any], bool] | None = None) -> dict[str, GraphResponse]:
        """Send `items` as JSON $batch requests (at most 20 each) and return each item's own
        response by id. Items answered 429/503/504 (and, with `lag`, replication-lag errors)
        are sent again in a later batch after the longest Retry-After among them; other
        failures are returned for the caller to judge (each item has its own status).
        `ok_if(status, body)` marks failures that mean "already done" (kept as returned).

        A batch is replayed whole after a dropped connection only because its callers send
        items that are safe to replay (reads, upserts, role assignments whose duplicate
        answer is recognised)."""
        results: dict[str, GraphResponse] = {}
        items = [BatchRequest(it.id, it.method, it.url, it.body, it.headers,
                              list(it.depends_on) if it.depends_on else None) for it in items]
        pending = list(items)
        by_id = {it.id: it for it in items}
        throttle_round = 0
        lag_round = 0
        lag_waited = 0.0
        while pending:
            retry: list[BatchRequest] = []
            delays: list[float] = []
            last_err: GraphError | None = None
            lag_hit = False
            for chunk in split_batches(pending):
                writes = sum(1 for it in chunk if it.method.upper() in WRITE_METHODS)
                resp = self.request("POST", "/$batch", json={"requests": [it.to_json() for it in chunk]},
                                    idempotent=True, writes=writes)
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
                            delays.append(self.policy.throttle_delay(throttle_round, headers.get("Retry-After"),
                                                                     self.rng))
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
                break
            if lag_hit:
                delay = self.policy.lag_delay(lag_round, self.rng)
                lag_round += 1
                if lag_waited + delay > self.policy.lag_budget:
                    assert last_err is not None
                    last_err.hint = (f"objects were still not replicated after {lag_waited:.0f} s: "
                                     "re-run later (re-running is safe)")
                    raise last_err
                lag_waited += delay
                delays.append(delay)
            else:
                throttle_round += 1
                if throttle_round >= self.policy.max_attempts:
                    raise last_err or GraphError("Graph $batch items were never answered", status=None,
                                                 code="BatchIncomplete")
            self._sleep(max(delays) if delays else self.policy.backoff(throttle_round, self.rng),
                        f"{len(retry)} batch item(s) to retry", last_err)
            order = {it.id: i for i, it in enumerate(items)}
            pending = sorted({it.id: it for it in retry}.values(), key=lambda it: order[it.id])
            # an item whose dependency already succeeded must not wait on it again
            for it in pending:
                if it.depends_on:
                    it.depends_on = [d for d in it.depends_on if d not in results] or None
        return results


def _is_connect_refused(e: BaseException) -> bool:
    """True when the request never reached the server (so even a POST may be replayed)."""
    seen = 0
    cur: BaseException | None = e
    while cur is not None and seen < 8:
        name = type(cur).__name__
        if name in ("NewConnectionError", "ConnectionRefusedError", "NameResolutionError"):
            return True
        nxt = getattr(cur, "reason", None)
        if isinstance(nxt, BaseException) and nxt is not cur:
            cur = nxt
        else:
            args = getattr(cur, "args", ())
            cur = args[0] if args and isinstance(args[0], BaseException) else (cur.__cause__ or cur.__context__)
        seen += 1
    return False


def _short(e: BaseException) -> str:
    text = str(e)
    return text if len(text) <= 200 else text[:200] + "…"
