"""The portal as an ASGI application (Starlette): what every page shares, and the routes.

`Portal` holds the parts (configuration, catalog, sessions, audit log, desk, rate limits,
Entra sign-in) and what every route needs (`signed_in`, rendering, refusing);
server.create_app wires the routes of signin.py, pages.py and live.py to it. Pages are Jinja2
templates with autoescaping; the only script is static/portal.js, served from the package."""

from __future__ import annotations

import getpass
import hmac
import os
import secrets as _rand
import threading
from functools import wraps
from pathlib import Path
from typing import Any, Awaitable, Callable, Mapping

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from .. import api
from ..catalog import Entry
from ..errors import InputError
from ..executor import Executor, ThreadExecutor
from ..rundir import default_state_dir
from ..runbook import Runbook
from .audit import AuditLog
from .config import PortalConfig
from .desk import Desk
from .forms import shown
from .policy import Grant
from .web import RateLimiter, Session, SessionStore, User, cookie_name, csrf_ok

HERE = Path(__file__).parent


class Portal:
    """Everything the routes share. `base_url` is what browsers use to reach the portal
    (known once the server has its port)."""

    def __init__(self, config: PortalConfig, *, environ: Mapping[str, str] | None = None,
                 executor: Executor | None = None) -> None:
        import jinja2
        self.config = config
        self.environ = os.environ if environ is None else environ
        self.state_dir = Path(config.state_dir) if config.state_dir else default_state_dir()
        self.catalog = api.catalog(config.runbook_dirs)
        self.sessions = SessionStore()
        self.audit = AuditLog(self.state_dir / "portal" / "audit.jsonl")
        self.executor = executor or _executor(config)
        self.desk = Desk(self.executor, self.audit, config.policy, self.state_dir)
        self.by_name = RateLimiter(5, 300)       # failed sign-ins per account, per 5 minutes
        self.by_ip = RateLimiter(20, 300)        # and per address
        self.link_token = _rand.token_urlsafe(32) if config.link_roles is not None else None
        self.base_url = config.base_url()
        self._entra: Any = None
        self._books: dict[str, tuple[float, Runbook]] = {}
        self._lock = threading.Lock()
        self.templates = jinja2.Environment(loader=jinja2.FileSystemLoader(str(HERE / "templates")),
                                            autoescape=True, undefined=jinja2.StrictUndefined)
        self.templates.filters["shown"] = shown
        self.session_cookie = cookie_name(config.secure)
        self.binding_cookie = cookie_name(config.secure, "psrunner-signin")

    # -- sign-in ---------------------------------------------------------------
    @property
    def entra(self) -> Any:
        if self._entra is None and self.config.entra is not None:
            from .oidc import EntraSignIn
            self._entra = EntraSignIn(self.config.entra, self.base_url + "/auth/callback")
        return self._entra

    def link_user(self) -> User:
        who = getpass.getuser()
        return User(f"operator:{who}", f"{who} (this machine)", tuple(self.config.link_roles or ()), "link")

    def take_link(self, token: str) -> bool:
        """The one-time link works once."""
        with self._lock:
            ok = bool(self.link_token) and hmac.compare_digest(self.link_token or "", token)
            if ok:
                self.link_token = None
        return ok

    # -- runbooks --------------------------------------------------------------
    def runbook(self, entry: Entry) -> Runbook:
        """The runbook of a catalog entry, loaded again when its file changed."""
        path = entry.path
        mtime = 0.0 if path.startswith("builtin:") else Path(path).stat().st_mtime
        with self._lock:
            hit = self._books.get(path)
        if hit and hit[0] == mtime:
            return hit[1]
        rb = self.catalog.load(entry.name)
        with self._lock:
            self._books[path] = (mtime, rb)
        return rb

    def granted(self, user: User, name: str) -> tuple[Runbook, Grant] | None:
        """The runbook `name` and the person's grant of it; None when they may not run it."""
        grant = self.config.policy.grant(user.roles, name)
        if grant is None:
            return None
        try:
            entry = self.catalog.find(name)
        except InputError:
            return None
        return self.runbook(entry), grant

    def visible(self, user: User) -> list[tuple[Entry, Runbook, Grant]]:
        out = []
        for entry in self.catalog.entries():
            grant = self.config.policy.grant(user.roles, entry.name)
            if grant is not None and not entry.error:
                out.append((entry, self.runbook(entry), grant))
        return out

    def check(self) -> None:
        """At start: the policy names runbooks and parameters that exist, and what the server
        holds for a runbook are its parameters."""
        names = [e.name for e in self.catalog.entries()]
        self.config.policy.check_runbooks(self.catalog.load, names)
        for name, setup in self.config.runbooks.items():
            if name not in names:
                raise InputError(f"{self.config.source}: runbooks.{name}: no runbook named {name!r}",
                                 input=f"runbooks.{name}")
            rb = self.catalog.load(name)
            for pname in list(setup.params) + list(setup.secret_files):
                if pname not in rb.params:
                    raise InputError(f"{self.config.source}: runbooks.{name}: {name} has no parameter {pname!r}",
                                     input=f"runbooks.{name}", hint="its parameters: " + ", ".join(rb.params))

    # -- answering ---------------------------------------------------------------
    def session(self, request: Request) -> Session | None:
        return self.sessions.get(request.cookies.get(self.session_cookie))

    def set_session(self, response: Response, session: Session) -> None:
        response.set_cookie(self.session_cookie, session.sid, httponly=True, secure=self.config.secure,
                            samesite="strict", path="/")

    def render(self, template: str, request: Request, session: Session | None, status: int = 200,
               **ctx: Any) -> HTMLResponse:
        user = session.user if session else None
        policy = self.config.policy
        ctx.update(user=user, csrf=session.csrf if session else "", path=request.url.path,
                   can_audit=bool(user) and policy.can(user.roles, "audit"),
                   waiting_count=len(self.desk.waiting_for(user)) if user else 0)
        html = self.templates.get_template(template).render(**ctx)
        return HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})

    def refuse(self, http: Request, session: Session | None, status: int, message: str, *,
               audit: bool = True, **fields: Any) -> HTMLResponse:
        """An error page; written to the audit log as a refusal unless `audit` is false."""
        if audit:
            self.audit.write("refused", who=session.user if session else None, ip=ip_of(http),
                             detail=message, path=http.url.path, status=status, **fields)
        return self.render("error.html", http, session, status=status, title="Not allowed" if status == 403
                           else "Something is not right", message=message)


def _executor(config: PortalConfig) -> Executor:
    """Where the portal's plans and runs execute: its own threads, or Celery workers when the
    configuration names a broker (workers that share the portal's state folder, so it follows
    their progress, and read the server's secret files or environment by reference)."""
    if config.broker:
        from ..fleet.celery_app import CeleryExecutor
        return CeleryExecutor(config.broker)
    return ThreadExecutor(config.workers)


def ip_of(request: Request) -> str:
    return request.client.host if request.client else "?"


Handler = Callable[..., Awaitable[Response]]


def signed_in(portal: Portal) -> Callable[[Handler], Handler]:
    """Pages for signed-in people: others go to the sign-in page (or get 401 for a POST)."""
    def deco(fn: Handler) -> Handler:
        @wraps(fn)
        async def wrapper(request: Request) -> Response:
            s = portal.session(request)
            if s is None or s.user is None:
                if request.method == "GET" and "text/event-stream" not in request.headers.get("accept", ""):
                    return RedirectResponse("/signin?next=" + _quote(request.url.path), status_code=303)
                return portal.refuse(request, s, 401, "sign in first", audit=request.method == "POST")
            if request.method == "POST":
                form = await request.form()
                if not csrf_ok(s, form.get("csrf")) or not _same_origin(portal, request):
                    return portal.refuse(request, s, 403, "this form is stale or was not sent by the portal "
                                                          "(CSRF check); reload the page and try again")
                request.state.form = form
            return await fn(request, s)
        return wrapper
    return deco


def _same_origin(portal: Portal, request: Request) -> bool:
    """A browser says where a POST comes from; one from another site is refused (with the
    CSRF token, belt and braces). Requests without Origin (old browsers, tests) pass on the token."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    own = {portal.base_url.rstrip("/"), f"{request.url.scheme}://{request.url.netloc}"}
    return origin.rstrip("/") in own


def _quote(path: str) -> str:
    from urllib.parse import quote
    return quote(path, safe="/")


__all__ = ["Portal", "ip_of", "signed_in"]
