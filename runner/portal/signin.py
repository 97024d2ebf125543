"""Signing in and out: the one-time link printed at start, local accounts, Entra ID.

Every way in ends the same: a new session (a new id: an id known before sign-in is never
promoted, so it cannot be fixed by somebody else), a `sign-in` line in the audit log, and the
person on their way. Failed attempts are counted per account and per address
(web.RateLimiter) and refused for a while past the limit, with Retry-After."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from ..errors import AuthError
from .accounts import authenticate, known
from .app import Portal, ip_of, signed_in
from .web import User, csrf_ok


def _next(request: Request, value: Any = None) -> str:
    """Where to go after signing in: a path of the portal, never another site."""
    target = str(value if value is not None else request.query_params.get("next", "/"))
    return target if target.startswith("/") and not target.startswith("//") and "\\" not in target else "/"


def routes(portal: Portal) -> list[Route]:

    def welcome(request: Request, user: User, target: str, *, cross_site: bool = False) -> Response:
        old = portal.session(request)
        if old is not None:
            portal.sessions.end(old.sid)
        session = portal.sessions.new(user)
        portal.audit.write("sign-in", who=user, ip=ip_of(request), detail=f"via {user.via}")
        if cross_site:
            # the answer to a cross-site navigation: a redirect from here would still count as
            # cross-site and the browser would hold back the new SameSite=Strict cookie; a page
            # of our own that moves on makes the next request same-site
            resp: Response = portal.render("signed_in.html", request, session, target=target)
        else:
            resp = RedirectResponse(target, status_code=303)
        portal.set_session(resp, session)
        return resp

    def too_many(request: Request, key: str) -> Response | None:
        wait = max(portal.by_ip.retry_after("ip:" + ip_of(request)), portal.by_name.retry_after(key) if key else 0)
        if not wait:
            return None
        resp = portal.refuse(request, None, 429, f"too many failed sign-ins; try again in {wait} seconds",
                             account=key[5:] or None)
        resp.headers["Retry-After"] = str(wait)
        return resp

    def failed(request: Request, key: str, why: str) -> None:
        portal.by_ip.fail("ip:" + ip_of(request))
        if key:
            portal.by_name.fail(key)
        portal.audit.write("sign-in-refused", ip=ip_of(request), detail=why)

    async def signin_page(request: Request) -> Response:
        session = portal.session(request) or portal.sessions.new()
        resp = portal.render("signin.html", request, session, title="Sign in", next=_next(request),
                             entra=portal.config.entra is not None, accounts=portal.config.accounts is not None,
                             link=portal.config.link_roles is not None, error="")
        portal.set_session(resp, session)
        return resp

    async def signin_account(request: Request) -> Response:
        session = portal.session(request)
        form = await request.form()
        if portal.config.accounts is None:
            return portal.refuse(request, session, 404, "this portal has no local accounts")
        if not csrf_ok(session, form.get("csrf")):
            return portal.refuse(request, session, 403, "this form is stale (CSRF check); reload the page and try again")
        name = str(form.get("name", "")).strip()
        key = "name:" + name.lower()
        blocked = too_many(request, key)
        if blocked is not None:
            return blocked
        password = str(form.get("password", ""))       # a guess: compared, never kept (accounts.py)
        account = await run_in_threadpool(authenticate, portal.config.accounts, name, password) if password else None
        if account is None:
            # a name is echoed only when it is an account's: people type passwords into name fields
            failed(request, key, f"wrong password for {name!r}" if known(portal.config.accounts, name)
                   else "an account name that does not exist")
            return portal.render("signin.html", request, session, status=401, title="Sign in", next=_next(request, form.get("next")),
                                 entra=portal.config.entra is not None, accounts=True,
                                 link=portal.config.link_roles is not None, error="The name or the password is wrong.")
        portal.by_name.clear(key)
        return welcome(request, User(f"local:{account.name}", account.display, account.roles, "account"),
                       _next(request, form.get("next")))

    async def signin_link(request: Request) -> Response:
        blocked = too_many(request, "")
        if blocked is not None:
            return blocked
        if not portal.take_link(request.query_params.get("token", "")):
            failed(request, "", "a one-time link that is wrong or already used")
            return portal.refuse(request, None, 403, "this sign-in link is wrong or was used already; "
                                                    "restart `psrunner serve` for a new one", audit=False)
        return welcome(request, portal.link_user(), "/")

    async def entra_start(request: Request) -> Response:
        if portal.entra is None:
            return portal.refuse(request, portal.session(request), 404, "this portal does not sign in with Entra ID")
        blocked = too_many(request, "")
        if blocked is not None:
            return blocked
        portal.by_ip.fail("ip:" + ip_of(request))     # each start counts: flows are kept until answered
        try:
            url, binding = await run_in_threadpool(portal.entra.start, _next(request))
        except Exception as e:          # msal reads the tenant's metadata first: it may be unreachable
            return portal.refuse(request, None, 502, f"Entra ID cannot be reached ({type(e).__name__}); "
                                                    "try again, or tell whoever runs the portal", audit=False)
        resp = RedirectResponse(url, status_code=303)
        resp.set_cookie(portal.binding_cookie, binding, max_age=600, httponly=True, secure=portal.config.secure,
                        samesite="lax", path="/auth/")
        return resp

    async def entra_callback(request: Request) -> Response:
        if portal.entra is None:
            return portal.refuse(request, None, 404, "this portal does not sign in with Entra ID")
        answer = dict(request.query_params)
        try:
            user, target = await run_in_threadpool(portal.entra.finish, answer, request.cookies.get(portal.binding_cookie))
        except AuthError as e:
            failed(request, "", e.message)
            return portal.render("error.html", request, None, status=401, title="Sign-in failed",
                                 message=e.message + " (" + (e.hint or "sign in again") + ")")
        portal.by_ip.clear("ip:" + ip_of(request))
        resp = welcome(request, user, target, cross_site=True)
        resp.delete_cookie(portal.binding_cookie, path="/auth/", secure=portal.config.secure, httponly=True,
                           samesite="lax")
        return resp

    @signed_in(portal)
    async def signout(request: Request, session) -> Response:
        portal.sessions.end(session.sid)
        portal.audit.write("sign-out", who=session.user, ip=ip_of(request))
        resp = RedirectResponse("/signin", status_code=303)
        resp.delete_cookie(portal.session_cookie, path="/", secure=portal.config.secure, httponly=True,
                           samesite="strict")
        return resp

    return [Route("/signin", signin_page, methods=["GET"]), Route("/signin", signin_account, methods=["POST"]),
            Route("/signin/link", signin_link, methods=["GET"]), Route("/auth/entra", entra_start, methods=["GET"]),
            Route("/auth/callback", entra_callback, methods=["GET"]), Route("/signout", signout, methods=["POST"])]
