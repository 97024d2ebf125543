"""Entra sign-in for web apps: the OpenID Connect authorization code flow with PKCE, as msal's
initiate_auth_code_flow / acquire_token_by_auth_code_flow drive it.

- GET /{tenant}/oauth2/v2.0/authorize   checks the request, then shows a sign-in page (plain
                                          HTML, no script): a person types or picks an account
                                          of the simulated tenant and its password, if it has one
- POST the same path                     signs that person in and redirects to the app's
                                          redirect URI with `code` and `state` (response_mode
                                          query, fragment or form_post)
- POST /{tenant}/oauth2/v2.0/token, grant_type=authorization_code: redeems the code once,
                                          checks the redirect URI, the client's secret or
                                          certificate (web redirect URIs) and the PKCE
                                          code_verifier, and answers access, refresh and ID
                                          token; the ID token echoes `nonce` and carries `roles`
- GET /{tenant}/oauth2/v2.0/logout      back to a registered post_logout_redirect_uri

Errors follow Entra's split: a request that cannot be answered safely (unknown client,
redirect URI not registered) is shown on the sign-in service's own page; anything else goes
back to the redirect URI as error / error_description / state. Codes and wording from
Microsoft's error code reference (entra-docs, reference-error-codes.md): 50011 redirect URI
mismatch, 700016 unknown client, 700054 response type not enabled, 50149 invalid
code_challenge_method, 501491 invalid code_challenge size, 501481 code_verifier does not
match, 54005 code already redeemed, 70008 code expired, 500112 reply address differs from
the one the code was issued to, 700025 public client presenting a secret, 50105 user not
assigned to an app that requires assignment, 50058 prompt=none without a session, 65001
consent missing.

Modelling choices: there is no browser session, so every sign-in shows the page and
prompt=none always answers login_required. Consent is not asked on the page: it is seeded
(`DeviceUser.scopes`, `TenantState.user_scopes`); OpenID Connect scopes need none. PKCE is
optional for web redirect URIs as in Entra, but when sent, its method must be S256: Entra
documents `plain` as allowed, and the simulator refuses it unless `allow_plain_pkce` is set,
so a client that would fall back to plain is caught here rather than in an audit."""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode

from .tenant_response import Response
from .tenant_state import is_guid
from .tenant_tokens import AuthCode, missing_consent

if TYPE_CHECKING:  # pragma: no cover
    from .tenant_login import LoginService

RESPONSE_MODES = ("query", "fragment", "form_post")
PKCE_VERIFIER = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")   # RFC 7636 section 4.1
S256_CHALLENGE = re.compile(r"^[A-Za-z0-9\-_]{43}$")        # base64url of a SHA-256 digest


class _Shown(Exception):
    """An error the sign-in service shows on its own page (no safe place to redirect to)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


class _Redirected(Exception):
    """An error sent back to the app's redirect URI."""

    def __init__(self, error: str, code: int, message: str) -> None:
        super().__init__(message)
        self.error, self.code, self.message = error, code, message


@dataclass
class _Request:
    params: dict[str, str]
    app: dict[str, Any]
    redirect_uri: str
    public: bool
    scopes: list[str]
    response_mode: str


def _redirect_kind(app: dict[str, Any], uri: str) -> str | None:
    """'web' (confidential), 'spa' or 'publicClient' (public) when `uri` is registered."""
    for kind in ("web", "spa", "publicClient"):
        if uri in ((app.get(kind) or {}).get("redirectUris") or []):
            return kind
    return None


class WebSignIn:
    """The authorize endpoint, its page, code redemption and logout (see module docstring)."""

    code_lifetime = 600.0  # seconds an authorization code stays redeemable (Entra: about ten minutes)

    def __init__(self, login: LoginService) -> None:
        self.login = login
        self.sim = login.sim

    # ---- /authorize -----------------------------------------------------------------------
    def authorize(self, method: str, query: str, body: bytes, headers: dict[str, str]) -> Response:
        raw = query if method == "GET" else body.decode("utf-8", "replace")
        params = {k: v[0] for k, v in parse_qs(raw, keep_blank_values=True).items()}
        try:
            req = self._target(params)
        except _Shown as e:
            return self._error_page(e.code, e.message, headers)
        try:
            self._check(req)
            if req.params.get("prompt") == "none":
                raise _Redirected("login_required", 50058, "A silent sign-in request was sent but no user is "
                                  "signed in.")
            if method == "GET":
                return self._page(req, headers, login=params.get("login_hint", ""))
            return self._sign_in(req, params, headers)
        except _Redirected as e:
            error = self.login.error(400, e.error, e.code, e.message, headers).body
            return self._send(req, {"error": e.error, "error_description": error["error_description"],
                                    "error_uri": error["error_uri"], "state": req.params.get("state")})

    def _target(self, p: dict[str, str]) -> _Request:
        """The app and the redirect URI to answer; errors here cannot be redirected."""
        client_id = p.get("client_id", "")
        if not client_id:
            raise _Shown(900144, "The request body must contain the following parameter: 'client_id'.")
        app = self.sim.state.app_by_app_id(client_id) if is_guid(client_id) else None
        if app is None or not self.sim.state.visible(app["id"]):
            raise _Shown(700016, self.login.unknown_client_message(client_id))
        uri = p.get("redirect_uri", "")
        kind = _redirect_kind(app, uri)
        if kind is None:
            raise _Shown(50011, f"The redirect URI '{uri}' specified in the request does not match the redirect "
                                f"URIs configured for the application '{app['appId']}'. Make sure the redirect URI "
                                f"sent in the request matches one added to your application.")
        mode = p.get("response_mode") or "query"
        return _Request(p, app, uri, kind != "web", p.get("scope", "").split(),
                        mode if mode in RESPONSE_MODES else "query")

    def _check(self, req: _Request) -> None:
        """The rest of the request; errors here go back to the redirect URI."""
        p, mode = req.params, req.params.get("response_mode") or "query"
        if mode not in RESPONSE_MODES:
            raise _Redirected("invalid_request", 900144, f"The response_mode '{mode}' is not supported.")
        if p.get("response_type") != "code":
            raise _Redirected("unsupported_response_type", 700054,
                              f"response_type '{p.get('response_type', '')}' is not enabled for the application.")
        if not req.scopes:
            raise _Redirected("invalid_request", 900144, "The request body must contain the following parameter: "
                              "'scope'.")
        challenge = p.get("code_challenge")
        if challenge is not None:
            method = p.get("code_challenge_method") or "plain"   # RFC 7636: plain when absent
            allowed = ("S256", "plain") if self.sim.allow_plain_pkce else ("S256",)
            if method not in allowed:
                raise _Redirected("invalid_request", 50149, "Invalid Code_Challenge_method parameter: use S256.")
            if (method == "S256" and not S256_CHALLENGE.match(challenge)) or \
                    (method == "plain" and not PKCE_VERIFIER.match(challenge)):
                raise _Redirected("invalid_request", 501491, "Invalid size of Code_Challenge parameter.")

    def _sign_in(self, req: _Request, form: dict[str, str], headers: dict[str, str]) -> Response:
        st = self.sim.state
        login = (form.get("pick") or form.get("login") or "").strip()
        user = st.user_by_upn(login) if login else None
        if user is None:
            return self._page(req, headers, login=login, note="AADSTS50034: We found no account with that user "
                              "name in this tenant. Check it, or pick one of the accounts below.")
        if not st.check_user_password(user, form.get("passwd", "")):
            return self._page(req, headers, login=login,
                              note="AADSTS50126: Your account or password is incorrect.")
        sp = st.sp_by_app_id(req.app["appId"])
        if sp is not None and sp.get("appRoleAssignmentRequired") and not any(
                a["resourceId"] == sp["id"] for a in st.assignments_of(user["id"])):
            return self._error_page(50105, f"Your administrator has configured the application "
                                           f"{req.app['displayName']} ('{req.app['appId']}') to block users unless "
                                           f"they are specifically granted ('assigned') access to the application. "
                                           f"The signed in user '{user['userPrincipalName']}' is blocked because "
                                           f"they are not a direct member of a group with access, nor had access "
                                           f"directly assigned by an administrator.", headers)
        if missing_consent(req.scopes, st.user_scopes.get(user["id"], [])):
            raise _Redirected("consent_required", 65001,
                              self.login.consent_message(req.app["appId"], req.app["displayName"]))
        p = req.params
        code = self.sim.grants.new_auth_code(AuthCode(
            client_id=req.app["appId"], user_id=user["id"], redirect_uri=req.redirect_uri, scope=req.scopes,
            nonce=p.get("nonce"), code_challenge=p.get("code_challenge"),
            challenge_method=p.get("code_challenge_method") or "plain", public=req.public,
            expires_at=time.time() + self.code_lifetime))
        session = base64.urlsafe_b64encode(hashlib.sha256(code.encode()).digest()[:16]).decode().rstrip("=")
        return self._send(req, {"code": code, "state": p.get("state"), "session_state": session})

    # ---- pages and redirects --------------------------------------------------------------
    def _send(self, req: _Request, values: dict[str, str | None]) -> Response:
        values = {k: v for k, v in values.items() if v is not None}
        if req.response_mode == "form_post":
            fields = "".join(f"<input type='hidden' name='{html.escape(k)}' value='{html.escape(v)}'>"
                             for k, v in values.items())
            return _html(200, "Continue to the application",
                         f"<form method='post' action='{html.escape(req.redirect_uri)}'>{fields}"
                         f"<p>Signed in.</p><button>Continue</button></form>")
        sep = "#" if req.response_mode == "fragment" else ("&" if "?" in req.redirect_uri else "?")
        return Response(302, None, headers={"Location": req.redirect_uri + sep + urlencode(values),
                                            "Cache-Control": "no-store"})

    def _page(self, req: _Request, headers: dict[str, str], *, login: str = "", note: str = "") -> Response:
        action = f"{self.sim.origin_for(headers)}/{self.sim.tenant_id}/oauth2/v2.0/authorize"
        hidden = "".join(f"<input type='hidden' name='{html.escape(k)}' value='{html.escape(v)}'>"
                         for k, v in req.params.items() if k not in ("login", "passwd", "pick"))
        accounts = "".join(f"<button name='pick' value='{html.escape(u['userPrincipalName'])}'>"
                           f"{html.escape(u['userPrincipalName'])}</button> "
                           for u in list(self.sim.state.users.values()))
        body = (f"<h1>Sign in</h1><p>to continue to <b>{html.escape(req.app['displayName'])}</b> "
                f"(simulated tenant {html.escape(self.sim.tenant_domain)})</p>"
                f"<form method='post' action='{html.escape(action)}'>{hidden}"
                f"<p><label>Email or user name <input name='login' value='{html.escape(login)}' autofocus></label></p>"
                f"<p><label>Password <input name='passwd' type='password'></label></p>"
                f"<p><button name='action' value='signin'>Sign in</button></p>"
                f"<p>Or pick an account of this tenant: {accounts}</p></form>"
                + (f"<p role='alert'>{html.escape(note)}</p>" if note else ""))
        return _html(200, "Sign in to your account", body)

    def _error_page(self, code: int, message: str, headers: dict[str, str]) -> Response:
        trace = self.login.error(400, "invalid_request", code, message, headers).body["error_description"]
        return _html(400, "Sign in to your account",
                     f"<h1>Sorry, but we're having trouble signing you in.</h1><p>{html.escape(trace)}</p>")

    # ---- the authorization_code grant -----------------------------------------------------
    def redeem(self, form: dict[str, str], headers: dict[str, str]) -> Response:
        st, login, client_id = self.sim.state, self.login, form["client_id"]
        app = st.app_by_app_id(client_id) if is_guid(client_id) else None
        if app is None:
            return login.error(400, "unauthorized_client", 700016, login.unknown_client_message(client_id), headers)
        grant = self.sim.grants.auth_code(form.get("code", ""))
        if grant is None or grant.client_id.lower() != client_id.lower():
            return login.error(400, "invalid_grant", 9002313, "Invalid request. Request is malformed or invalid.",
                               headers)
        if grant.redeemed:
            return login.error(400, "invalid_grant", 54005, "OAuth2 Authorization code was already redeemed, please "
                               "retry with a new valid code or use an existing refresh token.", headers)
        if time.time() > grant.expires_at:
            return login.error(400, "invalid_grant", 70008, "The provided authorization code or refresh token has "
                               "expired due to inactivity. Send a new interactive authorization request for this "
                               "user and resource.", headers)
        if form.get("redirect_uri") != grant.redirect_uri:
            return login.error(400, "invalid_grant", 500112, f"The reply address '{form.get('redirect_uri', '')}' "
                               f"does not match the reply address '{grant.redirect_uri}' provided when requesting "
                               f"Authorization code.", headers)
        if grant.public:
            if form.get("client_secret") or form.get("client_assertion"):
                return login.error(401, "invalid_client", 700025, "Client is public so neither 'client_assertion' "
                                   "nor 'client_secret' should be presented.", headers)
        else:
            acr = login.authenticate_client(app, form, headers)
            if isinstance(acr, Response):
                return acr
        if grant.code_challenge is not None and not _verifier_matches(form.get("code_verifier", ""), grant):
            return login.error(400, "invalid_grant", 501481, "The Code_Verifier does not match the code_challenge "
                               "supplied in the authorization request.", headers)
        with st.lock:
            if grant.redeemed:  # a concurrent redemption won
                return login.error(400, "invalid_grant", 54005, "OAuth2 Authorization code was already redeemed.",
                                   headers)
            grant.redeemed = True
        return login.delegated_tokens(client_id, grant.user_id, grant.scope, headers, nonce=grant.nonce)

    # ---- /logout --------------------------------------------------------------------------
    def logout(self, q: dict[str, str]) -> Response:
        target = q.get("post_logout_redirect_uri", "")
        registered = any(_redirect_kind(app, target) or target == (app.get("web") or {}).get("logoutUrl")
                         for app in list(self.sim.state.applications.values())) if target else False
        if registered:
            sep = "&" if "?" in target else "?"
            state = f"{sep}{urlencode({'state': q['state']})}" if q.get("state") else ""
            return Response(302, None, headers={"Location": target + state})
        return _html(200, "Signed out", "<h1>You signed out of your account</h1><p>You can close this window.</p>")


def _verifier_matches(verifier: str, grant: AuthCode) -> bool:
    if not PKCE_VERIFIER.match(verifier):
        return False
    if grant.challenge_method == "S256":
        computed = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    else:
        computed = verifier
    return hmac.compare_digest(computed, grant.code_challenge or "")


def _html(status: int, title: str, body: str) -> Response:
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head>"
            f"<body style='font-family:sans-serif;max-width:36em;margin:3em auto'>{body}</body></html>")
    return Response(status, page, headers={"Cache-Control": "no-store"}, content_type="text/html; charset=utf-8")
