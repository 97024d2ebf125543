"""HTTP for Graph and sign-in: a requests Session that always carries a timeout and the CA
bundle, and the request counters reports and benchmarks read."""

from __future__ import annotations

import re
import ssl
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import requests

from ..errors import TlsError, setting

WRITE_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})

_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_KEY = re.compile(r"\((\w+)='[^']*'\)")


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


def _tls_reason(e: BaseException) -> str:
    """The certificate problem behind a requests SSLError, in OpenSSL's words."""
    seen, stack = set(), [e]
    while stack:
        x = stack.pop()
        if x is None or id(x) in seen:
            continue
        seen.add(id(x))
        if isinstance(x, ssl.SSLCertVerificationError):
            return x.verify_message or x.reason or "certificate verify failed"
        if isinstance(x, ssl.SSLError) and x.reason:
            return str(x.reason)
        stack.extend([x.__cause__, x.__context__, getattr(x, "reason", None)])
        stack.extend(a for a in getattr(x, "args", ()) if isinstance(a, BaseException))
    return str(e)[:200]


def tls_error(e: BaseException, url: str, session: Any) -> TlsError | None:
    """A TlsError when `e` is a failed TLS handshake: never retried, since waiting does not
    change whose certificate answers; it names the CA bundle setting. None for other errors."""
    if not isinstance(e, requests.exceptions.SSLError):
        return None
    host = urlsplit(url).hostname or url
    ca = getattr(session, "ca_bundle", None)
    trusted = f"the CA bundle {ca} ({setting('ca_bundle')})" if ca else \
        f"this system's CAs (no {setting('ca_bundle')} given)"
    return TlsError(f"TLS: the certificate of {host} does not verify against {trusted}: {_tls_reason(e)}",
                    host=host, setting="ca_bundle",
                    hint=f"if a TLS-inspecting proxy is in the way, give its CA as a PEM file with "
                         f"{setting('ca_bundle', 'PATH')}; otherwise something on the network path is posing as "
                         f"{host}: do not work around it")


def unreachable(e: BaseException, connect_timeout: float) -> str | None:
    """Why no connection could be made at all, in plain words (the name does not resolve,
    the connection was refused, nothing answered within the connect timeout): the request
    never reached the server, so even a POST may be sent again. None when the connection was
    made and broke later, or for other errors."""
    if isinstance(e, requests.exceptions.ConnectTimeout):
        return f"no answer within {connect_timeout:g} s"
    if not isinstance(e, requests.exceptions.ConnectionError) or isinstance(e, requests.exceptions.SSLError):
        return None
    cur: BaseException | None = e
    for _ in range(8):          # requests' error -> urllib3's MaxRetryError -> its reason -> the OS error
        if cur is None:
            break
        name = type(cur).__name__
        if name == "NameResolutionError":
            return "its name does not resolve in DNS"
        if name == "ConnectionRefusedError":
            return "the connection was refused"
        if name == "NewConnectionError" and not isinstance(cur.__cause__ or cur.__context__, ConnectionRefusedError):
            return "no connection could be made"
        nxt = getattr(cur, "reason", None)
        if isinstance(nxt, BaseException) and nxt is not cur:
            cur = nxt
        else:
            args = getattr(cur, "args", ())
            cur = args[0] if args and isinstance(args[0], BaseException) else (cur.__cause__ or cur.__context__)
    return None


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

    requests: Graph HTTP requests (a $batch is one). writes: those that ask for a change (a
    $batch POST is one when it holds a write, none when it only reads). write_operations: the
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
            if method.upper() in WRITE_METHODS and write_operations:
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
