"""What keeps the portal's web side honest: server-side sessions, CSRF tokens, sign-in rate
limits and the security headers on every answer.

Sessions live in the server's memory; the browser holds only a random session id in a
cookie that is HttpOnly and SameSite=Strict, and Secure with the `__Host-` prefix whenever
the portal is reached over HTTPS. The one exception is the plain-HTTP default on a loopback
address: there the cookie is not marked Secure, because Safari (WebKit bug 281149) drops
Secure cookies set over http even from localhost, where Chromium and Firefox keep them, and
traffic to 127.0.0.1 never leaves the machine. The server refuses plain HTTP on any other
address unless a TLS proxy in front is declared (config.py).

A restart forgets every session (people sign in again) and every request still waiting
(desk.py). Every state change is a POST carrying the session's CSRF token; SameSite=Strict
and an Origin check stand behind it."""

from __future__ import annotations

import hmac
import secrets as _rand
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

SESSION_IDLE = 60 * 60           # seconds without a request before a session ends
SESSION_MAX = 10 * 60 * 60       # seconds a session lasts at most (a working day)
MAX_SESSIONS = 10_000            # anonymous sessions beyond this push out the oldest

# Content-Security-Policy: scripts and styles only from the portal's own files (no inline
# script, no inline style, nothing from elsewhere), no frames, forms only to the portal.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")


@dataclass(frozen=True)
class User:
    """A signed-in person. `id` is stable across sign-ins: `entra:<tid>/<oid>`,
    `local:<account>` or `operator:<os user>` (the one-time link)."""
    id: str
    name: str
    roles: tuple[str, ...]
    via: str                      # entra | account | link


@dataclass
class Session:
    sid: str
    csrf: str
    user: User | None = None
    created: float = field(default_factory=time.time)
    seen: float = field(default_factory=time.time)


class SessionStore:
    def __init__(self, idle: float = SESSION_IDLE, longest: float = SESSION_MAX) -> None:
        self._sessions: OrderedDict[str, Session] = OrderedDict()
        self._lock = threading.Lock()
        self.idle, self.longest = idle, longest

    def new(self, user: User | None = None) -> Session:
        s = Session(sid=_rand.token_urlsafe(32), csrf=_rand.token_urlsafe(32), user=user)
        with self._lock:
            self._sessions[s.sid] = s
            while len(self._sessions) > MAX_SESSIONS:
                self._sessions.popitem(last=False)
        return s

    def get(self, sid: str | None) -> Session | None:
        if not sid:
            return None
        now = time.time()
        with self._lock:
            s = self._sessions.get(sid)
            if s is None:
                return None
            if now - s.seen > self.idle or now - s.created > self.longest:
                del self._sessions[sid]
                return None
            s.seen = now
            self._sessions.move_to_end(sid)
            return s

    def end(self, sid: str) -> None:
        with self._lock:
            self._sessions.pop(sid, None)


def csrf_ok(session: Session | None, token: Any) -> bool:
    return session is not None and isinstance(token, str) and hmac.compare_digest(session.csrf, token)


class RateLimiter:
    """At most `limit` failures per key in a sliding `window` of seconds. A key over the
    limit is refused until its oldest failure leaves the window (OWASP Authentication Cheat
    Sheet: throttle per account and per source address)."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit, self.window = limit, window
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def retry_after(self, key: str) -> int:
        """Seconds until `key` may try again; 0 when it may now."""
        now = time.monotonic()
        with self._lock:
            q = self._hits.get(key)
            while q and now - q[0] > self.window:
                q.popleft()
            if q is not None and not q:
                del self._hits[key]
            if q and len(q) >= self.limit:
                return max(1, int(self.window - (now - q[0])) + 1)
        return 0

    def fail(self, key: str) -> None:
        with self._lock:
            self._hits.setdefault(key, deque()).append(time.monotonic())

    def clear(self, key: str) -> None:
        with self._lock:
            self._hits.pop(key, None)


def security_headers(secure: bool) -> dict[str, str]:
    headers = {
        "Content-Security-Policy": CSP,
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        # same-origin, not no-referrer: with no-referrer a browser sends "Origin: null" on a form
        # POST (Fetch spec, "append a request Origin header"), and the Origin check would fail
        "Referrer-Policy": "same-origin",
        "Cross-Origin-Opener-Policy": "same-origin",
        "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
    }
    if secure:
        headers["Strict-Transport-Security"] = "max-age=31536000"
    return headers


def cookie_name(secure: bool, base: str = "psrunner") -> str:
    """`__Host-` asks the browser to keep the cookie to this host, path /, over HTTPS only."""
    return f"__Host-{base}" if secure else base


class SecurityHeaders:
    """ASGI middleware: the security headers (security_headers above) on every HTTP answer."""

    def __init__(self, app: Any, secure: bool) -> None:
        self.app = app
        self.headers = [(k.lower().encode(), v.encode()) for k, v in security_headers(secure).items()]

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                names = {k for k, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [h for h in self.headers if h[0] not in names]
            await send(message)
        await self.app(scope, receive, send_with_headers)
