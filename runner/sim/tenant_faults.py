"""Switchable faults and request counting for the tenant simulator.

Faults are what make the simulator worth rehearsing against: Graph throttles (429 with
Retry-After, per sub-request inside $batch), returns 503/504 under load, drops connections
(before serving a request, or, with "drop-after", once the request is served: the write is
applied and its answer lost, the case where a blind replay duplicates things), and lags
behind its own writes (an app or service principal created a moment ago is not yet visible
to the next call). A `FaultPlan` holds the faults a test or a demo asked for; the
HTTP layer consults it for every request and every $batch sub-request.

`RequestCounter` counts what the server received, so benchmarks and tests can assert how
many round trips a runbook costs."""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

# Faults answered instead of the real response.
TERMINAL_KINDS = ("throttle", "unavailable", "gateway", "drop")
# Served normally, then the connection is closed without the answer (the write happened).
AFTER_KINDS = ("drop-after",)
FAULT_KINDS = TERMINAL_KINDS + AFTER_KINDS + ("latency", "lag")


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

        kind: one of FAULT_KINDS ("drop-after" matches the whole request, $batch included,
        never a $batch sub-request). method: HTTP method to match ("*" or None: any). path: a
        regular expression searched in the request path (no query string), e.g.
        r"/v1.0/applications$" or r"/oauth2/v2.0/token". For $batch sub-requests the path is
        the sub-request's absolute path ("/v1.0/servicePrincipals/...").
        retry_after: seconds sent in Retry-After (throttle, unavailable). seconds: delay for
        "latency"; lag duration for "lag". requests: for "lag", how many lookups of the new
        object fail before it becomes visible."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; use one of {', '.join(FAULT_KINDS)}")
        if count is not None and count < 1:
            raise ValueError("fault count must be >= 1 (or None for no limit)")
        if kind == "lag" and requests <= 0 and seconds <= 0:
            raise ValueError("a 'lag' fault needs requests > 0 or seconds > 0")
        if kind == "latency" and seconds <= 0:
            raise ValueError("a 'latency' fault needs seconds > 0")
        m = None if method in (None, "*") else method.upper()
        fault = Fault(kind=kind, method=m, path=re.compile(path), count=count,
                      retry_after=int(retry_after), seconds=float(seconds), requests=int(requests))
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

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
                    return f
        return None


def _new_counts() -> dict[str, int]:
    return {"total": 0, "token": 0, "login": 0, "graph": 0, "writes": 0, "batch": 0,
            "batch_items": 0, "batch_item_writes": 0, "faults": 0}


WRITE_METHODS = frozenset({"POST", "PATCH", "DELETE", "PUT"})


class RequestCounter:
    """Counts every HTTP request the simulator received, including ones answered with an
    injected fault or an error.

    total: every request. token: POSTs to the token endpoint. login: every login-side request
    (discovery, token, device code). graph: Graph requests ($batch counts as one).
    writes: Graph POST/PATCH/DELETE/PUT (login-side POSTs are not writes; a $batch POST is).
    batch / batch_items / batch_item_writes: $batch requests and their sub-requests.
    faults: injected faults that fired (terminal or latency)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = _new_counts()
        self._routes: Counter[str] = Counter()
        self._batch_routes: Counter[str] = Counter()
        self._faults: Counter[str] = Counter()

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
            for method, route in items:
                self._counts["batch_items"] += 1
                if method.upper() in WRITE_METHODS:
                    self._counts["batch_item_writes"] += 1
                self._batch_routes[f"{method.upper()} {route}"] += 1

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
            return snap

    def reset(self) -> None:
        with self._lock:
            self._counts = _new_counts()
            self._routes.clear()
            self._batch_routes.clear()
            self._faults.clear()


@dataclass
class LagState:
    """How long a just-created object stays invisible: until `until` (epoch seconds) and/or
    for `remaining` more lookups."""

    until: float = 0.0
    remaining: int = 0
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
