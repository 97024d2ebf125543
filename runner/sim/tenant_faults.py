"""Switchable faults and request counting for the tenant simulator.

Faults are what make the simulator worth rehearsing against: Graph throttles (429 with
Retry-After, per sub-request inside $batch), returns 503/504 under load, drops connections
(before serving a request, or, with "drop-after", once the request is served: the write is
applied and its answer lost, the case where a blind replay duplicates things), answers so
late that the client's read timeout fires first ("read-timeout"), is far away ("latency"
per HTTP request, "item-latency" per $batch sub-request), and lags behind its own writes
(an app or service principal created a moment ago is not yet visible to the next call;
with "lag-local-tenant", an app-only caller creating the service principal of a lagging
application is refused with 403 "must be in the local tenant", as Graph does). A
`FaultPlan` holds the faults a test, a demo or an admin asked for; the HTTP layer consults
it for every request and every $batch sub-request. `parse_fault_spec` reads the one-line
form `psrunner sim serve --fault` and the control endpoint take.

`RequestCounter` counts what the server received, so benchmarks and tests can assert how
many requests a runbook costs and how many of them had to wait for one another
(`round_trips`)."""

from __future__ import annotations

import math
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

# Faults answered instead of the real response.
TERMINAL_KINDS = ("throttle", "unavailable", "gateway", "drop")
# Served (late, for "read-timeout"), then the connection is closed without the answer.
AFTER_KINDS = ("drop-after", "read-timeout")
LAG_KINDS = ("lag", "lag-local-tenant")
FAULT_KINDS = TERMINAL_KINDS + AFTER_KINDS + ("latency", "item-latency") + LAG_KINDS
# The names an admin types (`--fault 429:...`) for the kinds above.
KIND_ALIASES = {"429": "throttle", "503": "unavailable", "504": "gateway", "reset-before": "drop",
                "lag-403": "lag-local-tenant"}
DEFAULT_READ_TIMEOUT_HANG = 90.0   # longer than psrunner's (60 s) and requests' usual read timeouts
DEFAULT_LAG_LOOKUPS = 3


@dataclass
class Fault:
    """One fault rule. `count` is how many times it fires (None: until cleared); for "lag" it
    is how many created objects it delays."""

    kind: str
    method: str | None
    path: re.Pattern[str]
    count: int | None = 1
    retry_after: int = 1
    seconds: float = 0.0
    requests: int = 0
    fired: int = 0
    # set when the fault first fires: a test can wait for a request to be inside it (held by
    # a latency fault, say) rather than sleep and hope
    hit: threading.Event = field(default_factory=threading.Event, repr=False, compare=False)
    # set to end a latency fault's hold early (the held request is then served); cleared
    # faults and a stopping simulator release theirs
    release: threading.Event = field(default_factory=threading.Event, repr=False, compare=False)

    def describe(self) -> dict[str, Any]:
        """The rule as data (for the control endpoint and `sim serve`'s banner)."""
        out: dict[str, Any] = {"kind": self.kind, "method": self.method or "*", "path": self.path.pattern,
                               "count": self.count, "fired": self.fired}
        if self.kind in ("throttle", "unavailable"):
            out["retry_after"] = self.retry_after
        if self.seconds:
            out["seconds"] = self.seconds
        if self.requests:
            out["requests"] = self.requests
        return out

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and self.method != method.upper():
            return False
        return self.path.search(path) is not None

    @property
    def active(self) -> bool:
        return self.count is None or self.fired < self.count


class FaultPlan:
    """The faults currently armed. Thread-safe; rules fire in the order they were added."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(self, kind: str, method: str | None = "POST", path: str = r".*", count: int | None = 1,
            retry_after: int = 1, seconds: float = 0.0, requests: int = 0) -> Fault:
        """Arm a fault.

        kind: one of FAULT_KINDS or KIND_ALIASES. "drop-after", "read-timeout" and "latency"
        match whole HTTP requests ($batch included, never a $batch sub-request);
        "item-latency" only $batch sub-requests; the status kinds and "drop" both. method:
        HTTP method to match ("*" or None: any). path: a regular expression searched in the
        request path (no query string), e.g. r"/v1.0/applications$" or
        r"/oauth2/v2.0/token". For $batch sub-requests the path is the sub-request's
        absolute path ("/v1.0/servicePrincipals/...").
        retry_after: seconds sent in Retry-After (throttle, unavailable). seconds: delay for
        "latency"/"item-latency"; the hang before serving for "read-timeout" (default
        DEFAULT_READ_TIMEOUT_HANG); lag duration for the lag kinds. requests: for the lag
        kinds, how many lookups of the new object fail before it becomes visible."""
        kind = KIND_ALIASES.get(kind, kind)
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; use one of {', '.join(FAULT_KINDS)}")
        if count is not None and count < 1:
            raise ValueError("fault count must be >= 1 (or None for no limit)")
        if kind in LAG_KINDS and requests <= 0 and seconds <= 0:
            raise ValueError(f"a {kind!r} fault needs requests > 0 or seconds > 0")
        if kind in ("latency", "item-latency") and seconds <= 0:
            raise ValueError(f"a {kind!r} fault needs seconds > 0")
        if kind == "read-timeout" and seconds <= 0:
            seconds = DEFAULT_READ_TIMEOUT_HANG
        m = None if method in (None, "*") else method.upper()
        fault = Fault(kind=kind, method=m, path=re.compile(path), count=count,
                      retry_after=int(retry_after), seconds=float(seconds), requests=int(requests))
        with self._lock:
            self._faults.append(fault)
        return fault

    def add_spec(self, spec: str) -> Fault:
        """Arm a fault written as `parse_fault_spec` reads it."""
        return self.add(**parse_fault_spec(spec))

    def clear(self, kinds: tuple[str, ...] | None = None) -> None:
        """Disarm every fault, or only those of `kinds`."""
        with self._lock:
            gone = [f for f in self._faults if kinds is None or f.kind in kinds]
            self._faults[:] = [f for f in self._faults if not (kinds is None or f.kind in kinds)]
        for f in gone:
            f.release.set()

    @property
    def rules(self) -> list[Fault]:
        """Every rule armed since the last clear, fired out or not."""
        with self._lock:
            return list(self._faults)

    @property
    def pending(self) -> list[Fault]:
        """Faults that can still fire."""
        with self._lock:
            return [f for f in self._faults if f.active]

    def take(self, method: str, path: str, kinds: tuple[str, ...]) -> Fault | None:
        """The first armed fault of one of `kinds` matching the request; consumes one firing."""
        with self._lock:
            for f in self._faults:
                if f.kind in kinds and f.active and f.matches(method, path):
                    f.fired += 1
                    f.hit.set()
                    return f
        return None


SPEC_FORM = "KIND[=VALUE]:METHOD:PATH[:COUNT]"
SPEC_KINDS = ("429", "503", "504", "reset-before", "drop-after", "read-timeout", "latency", "item-latency",
              "lag", "lag-403")
HTTP_METHODS = ("GET", "POST", "PATCH", "DELETE", "PUT", "*")


def parse_fault_spec(spec: str) -> dict[str, Any]:
    r"""Read one fault written as KIND[=VALUE]:METHOD:PATH[:COUNT] into FaultPlan.add's
    keyword arguments; ValueError says which part is wrong and what it may be.

    KIND is one of SPEC_KINDS (or a FaultPlan kind). VALUE: for 429/503 the Retry-After
    seconds (default 1); for latency/item-latency the delay in seconds (required); for
    read-timeout the hang in seconds (default DEFAULT_READ_TIMEOUT_HANG); for lag/lag-403
    how many lookups miss the new object (default 3), or a duration such as `1.5s`.
    METHOD is an HTTP method or `*`. PATH is a regular expression searched in the request
    path, e.g. `/v1\.0/applications$`; it may contain `:`. COUNT is how many times the
    fault fires (default 1), `*` for every time. Examples: `429=2:GET:/servicePrincipals:3`,
    `latency=0.05:*:.*:*`, `drop-after:POST:/addPassword$`, `lag-403:POST:/v1\.0/applications$`."""
    text = spec.strip()
    parts = text.split(":")
    if len(parts) < 3 or not parts[0]:
        raise ValueError(f"expected {SPEC_FORM}, e.g. 429:GET:/v1\\.0/applications$:2")
    head, method = parts[0], parts[1].strip().upper()
    rest = parts[2:]
    count: int | None = 1
    if len(rest) > 1 and (rest[-1].strip().isdigit() or rest[-1].strip() == "*"):
        last = rest.pop().strip()
        count = None if last == "*" else int(last)
        if count == 0:
            raise ValueError("COUNT must be 1 or more, or * for every request")
    path = ":".join(rest)
    kind_name, has_value, value = head.strip().lower().partition("=")
    kind = KIND_ALIASES.get(kind_name, kind_name)
    if kind not in FAULT_KINDS:
        raise ValueError(f"unknown KIND {kind_name!r}; use one of {', '.join(SPEC_KINDS)}")
    if method not in HTTP_METHODS:
        raise ValueError(f"METHOD {parts[1]!r} is not one of {', '.join(HTTP_METHODS)}")
    if not path:
        raise ValueError("PATH is empty; use .* for every path")
    try:
        re.compile(path)
    except re.error as e:
        raise ValueError(f"PATH {path!r} is not a regular expression: {e}") from None
    args: dict[str, Any] = {"kind": kind, "method": method, "path": path, "count": count}
    if not has_value:
        if kind in ("latency", "item-latency"):
            raise ValueError(f"{kind_name} needs its delay in seconds, e.g. {kind_name}=0.05")
        if kind in LAG_KINDS:
            args["requests"] = DEFAULT_LAG_LOOKUPS
        return args
    if kind in ("throttle", "unavailable"):
        args["retry_after"] = _number(value, kind_name, "Retry-After seconds", integer=True, allow_zero=True)
    elif kind in ("latency", "item-latency", "read-timeout"):
        args["seconds"] = _number(value, kind_name, "seconds")
    elif kind in LAG_KINDS:
        if value.strip().lower().endswith("s"):
            args["seconds"] = _number(value.strip()[:-1], kind_name, "a duration such as 1.5s")
        else:
            args["requests"] = _number(value, kind_name, "lookups (or a duration such as 1.5s)", integer=True)
    else:
        raise ValueError(f"{kind_name} takes no =VALUE")
    return args


def _number(text: str, kind: str, what: str, *, integer: bool = False, allow_zero: bool = False) -> Any:
    try:
        value = int(text) if integer else float(text)
    except ValueError:
        value = -1
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{kind}={text}: VALUE must be {what}, a number above 0")
    return value


def _new_counts() -> dict[str, int]:
    return {"total": 0, "token": 0, "login": 0, "graph": 0, "writes": 0, "batch": 0,
            "batch_items": 0, "batch_item_writes": 0, "faults": 0}


WRITE_METHODS = frozenset({"POST", "PATCH", "DELETE", "PUT"})


class RequestCounter:
    """Counts every HTTP request the simulator received, including ones answered with an
    injected fault or an error.

    total: every request. token: POSTs to the token endpoint. login: every login-side request
    (discovery, token, device code). graph: Graph requests ($batch counts as one).
    writes: Graph POST/PATCH/DELETE/PUT (login-side POSTs are not writes; a $batch POST is
    when one of its requests writes, not when they all read).
    batch / batch_items / batch_item_writes: $batch requests and their sub-requests.
    faults: injected faults that fired (terminal or latency).

    round_trips: how many requests had to wait for one another, from when each was served.
    Every request has a lifetime on the server's monotonic clock, from the moment its
    request line was read to the moment its answer was written (or its connection dropped).
    `round_trips` is the length of the longest chain of requests in which each one started
    only after the previous one had ended: requests whose lifetimes overlap were in flight
    together and count once, so N requests sent one after another count N, and N sent
    concurrently count 1. It is computed greedily (sort by end time; take a request when it
    starts at or after the end of the last one taken), which gives the longest such chain.
    Overlap is seen only where lifetimes really overlap: the simulator answers in well under
    a millisecond, so concurrent requests may be served one after the other and counted as
    sequential. Measure round trips with a latency fault armed (`set_latency` on the
    simulator): it holds every request for that long and makes concurrency visible."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = _new_counts()
        self._routes: Counter[str] = Counter()
        self._batch_routes: Counter[str] = Counter()
        self._faults: Counter[str] = Counter()
        self._lifetimes: list[tuple[float, float]] = []
        self._epoch = time.monotonic()  # requests started before the last reset() are not counted
        self._idle = threading.Condition()
        self._in_flight = 0

    def record(self, method: str, route: str, *, login: bool = False, token: bool = False) -> None:
        with self._lock:
            c = self._counts
            c["total"] += 1
            if login:
                c["login"] += 1
                if token:
                    c["token"] += 1
            else:
                c["graph"] += 1
                if method.upper() in WRITE_METHODS:
                    c["writes"] += 1
            self._routes[f"{method.upper()} {route}"] += 1

    def record_batch(self, items: list[tuple[str, str]]) -> None:
        """One $batch request's sub-requests as (method, route) pairs."""
        with self._lock:
            self._counts["batch"] += 1
            if not any(method.upper() in WRITE_METHODS for method, _ in items):
                self._counts["writes"] -= 1     # counted as a write when it arrived, before it was read
            for method, route in items:
                self._counts["batch_items"] += 1
                if method.upper() in WRITE_METHODS:
                    self._counts["batch_item_writes"] += 1
                self._batch_routes[f"{method.upper()} {route}"] += 1

    def begin(self) -> None:
        """A request is being served (ended by record_lifetime)."""
        with self._idle:
            self._in_flight += 1

    def record_lifetime(self, start: float, end: float) -> None:
        """When one request was served (time.monotonic() at its start and end)."""
        with self._lock:
            if start >= self._epoch:  # a request still in flight at reset() belongs to the old count
                self._lifetimes.append((start, end))
        with self._idle:
            self._in_flight = max(0, self._in_flight - 1)
            self._idle.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no request is being served: a request held by a latency or read-timeout
        fault has been applied (its client may be long gone). False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._in_flight == 0, timeout)

    def round_trips(self, since: float = 0.0) -> int:
        """Sequential round trips (see the class docstring) among the requests that started
        at or after `since` (a time.monotonic() value, e.g. a snapshot's "clock")."""
        with self._lock:
            spans = sorted((e, s) for s, e in self._lifetimes if s >= since)
        chain, last_end = 0, float("-inf")
        for end, start in spans:
            if start >= last_end:
                chain, last_end = chain + 1, end
        return chain

    def record_fault(self, kind: str) -> None:
        with self._lock:
            self._counts["faults"] += 1
            self._faults[kind] += 1

    def __getattr__(self, name: str) -> int:
        counts = self.__dict__.get("_counts")
        if counts is not None and name in counts:
            with self.__dict__["_lock"]:
                return counts[name]
        raise AttributeError(name)

    def by_route(self, include_batch_items: bool = False) -> dict[str, int]:
        """"METHOD /normalized/path" -> count; ids and keys are replaced by {id} / {key}.
        With include_batch_items, $batch sub-requests are added in as well."""
        with self._lock:
            routes = Counter(self._routes)
            if include_batch_items:
                routes.update(self._batch_routes)
            return dict(routes)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            snap: dict[str, Any] = dict(self._counts)
            snap["by_route"] = dict(self._routes)
            snap["batch_by_route"] = dict(self._batch_routes)
            snap["fault_kinds"] = dict(self._faults)
            snap["at"] = time.time()
            snap["clock"] = time.monotonic()
        snap["round_trips"] = self.round_trips()
        return snap

    def reset(self) -> None:
        with self._lock:
            self._counts = _new_counts()
            self._routes.clear()
            self._batch_routes.clear()
            self._faults.clear()
            self._lifetimes.clear()
            self._epoch = time.monotonic()


@dataclass
class LagState:
    """How long a just-created object stays invisible: until `until` (epoch seconds) and/or
    for `remaining` more lookups. `local_tenant`: while it lags, an app-only caller creating
    its service principal is refused with 403 "must be in the local tenant" rather than 400
    NoBackingApplicationObject (both are what Graph answers during replication)."""

    until: float = 0.0
    remaining: int = 0
    local_tenant: bool = False
    created: float = field(default_factory=time.time)

    def observe(self) -> bool:
        """Record one lookup; True when the object is visible now (the lag is over)."""
        time_over = self.until <= 0 or time.time() >= self.until
        count_over = self.remaining <= 0
        if time_over and count_over:
            return True
        if self.remaining > 0:
            self.remaining -= 1
        return False
