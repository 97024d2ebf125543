"""The login side of the simulated tenant: what msal calls for an authority
`https://localhost:PORT/{tenant}` with instance discovery off.

- GET  /{tenant}/v2.0/.well-known/openid-configuration   (OpenID discovery)
- GET  /common/discovery/instance                         (instance discovery, if asked)
- GET  /{tenant}/discovery/v2.0/keys                      (JWKS of the token signer)
- POST /{tenant}/oauth2/v2.0/token      client_credentials (secret or certificate assertion),
                                        device_code, refresh_token
- POST /{tenant}/oauth2/v2.0/devicecode
- GET/POST /devicelogin                 a page where a person approves a device code
- GET/POST /{tenant}/oauth2/v2.0/authorize, grant_type=authorization_code, GET .../logout:
                                        web app sign-in (tenant_authorize)

Delegated grants need consent: a requested Graph permission the user never consented to is
refused with AADSTS65001 (consent_required), as Entra refuses it.

Errors have Entra's shape: {"error", "error_description": "AADSTSnnnn: ...", "error_codes",
"timestamp", "trace_id", "correlation_id", "error_uri"} with the status Entra uses (400, or
401 for invalid_client)."""

from __future__ import annotations

import base64
import datetime as _dt
import html
import time
import uuid
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote_plus, urlparse

from .tenant_authorize import WebSignIn
from .tenant_response import Response
from .tenant_state import (
    DEFAULT_USER_ROLE,
    FIRST_PARTY_PUBLIC_CLIENTS,
    RESOURCES,
    SHAREPOINT_APP_ID,
    is_guid,
)
from .tenant_tokens import (
    CLOCK_SKEW,
    RESERVED_SCOPES,
    RefreshGrant,
    TokenError,
    b64url_decode,
    client_info,
    missing_consent,
    new_uti,
    pairwise_subject,
    split_jwt,
    verify_assertion_signature,
)

if TYPE_CHECKING:  # pragma: no cover
    from .tenant import TenantSimulator

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


class LoginService:
    def __init__(self, sim: TenantSimulator) -> None:
        self.sim = sim
        self.web = WebSignIn(self)

    # ---- helpers ------------------------------------------------------------------------
    def _tenant_ok(self, segment: str) -> bool:
        s = segment.lower()
        return s in (self.sim.tenant_id.lower(), self.sim.tenant_domain.lower())

    def error(self, status: int, error: str, code: int, message: str, headers: dict[str, str],
              suberror: str | None = None) -> Response:
        trace = str(uuid.uuid4())
        corr = headers.get("client-request-id") or str(uuid.uuid4())
        ts = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")
        body = {
            "error": error,
            "error_description": f"AADSTS{code}: {message} Trace ID: {trace} Correlation ID: {corr} Timestamp: {ts}",
            "error_codes": [code],
            "timestamp": ts,
            "trace_id": trace,
            "correlation_id": corr,
            "error_uri": f"{self.sim.origin_for(headers)}/error?code={code}",
        }
        if suberror:
            body["suberror"] = suberror
        return Response(status, body, headers={"x-ms-request-id": trace})

    def openid_configuration(self, origin: str) -> dict[str, Any]:
        """The discovery document, its endpoints under `origin` (the host the client used)."""
        base, tid = origin, self.sim.tenant_id
        return {
            "token_endpoint": f"{base}/{tid}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
            "jwks_uri": f"{base}/{tid}/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": f"{base}/{tid}/v2.0",
            "request_uri_parameter_supported": False,
            "userinfo_endpoint": f"{base}/oidc/userinfo",
            "authorization_endpoint": f"{base}/{tid}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{base}/{tid}/oauth2/v2.0/devicecode",
            "http_logout_supported": True,
            "frontchannel_logout_supported": True,
            "end_session_endpoint": f"{base}/{tid}/oauth2/v2.0/logout",
            "claims_supported": ["sub", "iss", "cloud_instance_name", "cloud_instance_host_name",
                                 "cloud_graph_host_name", "msgraph_host", "aud", "exp", "iat",
                                 "auth_time", "acr", "nonce", "preferred_username", "name", "tid",
                                 "ver", "at_hash", "c_hash", "email"],
            "kerberos_endpoint": f"{base}/{tid}/kerberos",
            "tenant_region_scope": "NA",
            "cloud_instance_name": "microsoftonline.com",
            "cloud_graph_host_name": "graph.windows.net",
            "msgraph_host": "graph.microsoft.com",
            "rbac_url": "https://pas.windows.net",
        }

    # ---- dispatch -----------------------------------------------------------------------
    def handle(self, method: str, path: str, query: str, headers: dict[str, str], body: bytes) -> Response:
        parts = [p for p in path.split("/") if p]
        q = {k: v[0] for k, v in parse_qs(query).items()}
        origin = self.sim.origin_for(headers)
        if parts == ["common", "discovery", "instance"] and method == "GET":
            return self._instance_discovery(q, origin)
        if parts and parts[0] == "devicelogin":
            return self._device_login_page(method, body)
        if len(parts) >= 2 and not self._tenant_ok(parts[0]):
            if parts[0].lower() in ("common", "organizations", "consumers"):
                return self.error(400, "invalid_request", 50194,
                                  f"Application is not configured as a multi-tenant application; use the "
                                  f"tenant-specific endpoint {origin}/{self.sim.tenant_id}.", headers)
            return self.error(400, "invalid_tenant", 90002,
                              f"Tenant '{parts[0]}' not found. Check to make sure you have the correct tenant ID "
                              f"and are signing into the correct cloud.", headers)
        rest = parts[1:]
        if method == "GET" and rest == ["v2.0", ".well-known", "openid-configuration"]:
            return Response(200, self.openid_configuration(origin))
        if method == "GET" and rest == ["discovery", "v2.0", "keys"]:
            return Response(200, self.sim.signer.jwks())
        if method == "POST" and rest == ["oauth2", "v2.0", "token"]:
            return self._token(headers, body)
        if method == "POST" and rest == ["oauth2", "v2.0", "devicecode"]:
            return self._devicecode(headers, body)
        if rest == ["oauth2", "v2.0", "authorize"] and method in ("GET", "POST"):
            return self.web.authorize(method, query, body, headers)
        if rest == ["oauth2", "v2.0", "logout"] and method == "GET":
            return self.web.logout(q)
        return Response(404, {"error": "not_found", "error_description": f"No login endpoint at {path}."})

    def _instance_discovery(self, q: dict[str, str], origin: str) -> Response:
        host = urlparse(origin).netloc
        auth = q.get("authorization_endpoint", "")
        segs = [p for p in urlparse(auth).path.split("/") if p]
        tenant = segs[0] if segs else self.sim.tenant_id
        return Response(200, {
            "tenant_discovery_endpoint": f"{origin}/{tenant}/v2.0/.well-known/openid-configuration",
            "api-version": q.get("api-version", "1.1"),
            "metadata": [{"preferred_network": host, "preferred_cache": host, "aliases": [host]}],
        })

    # ---- resource and client ------------------------------------------------------------
    def resource_for(self, scopes: list[str]) -> tuple[dict[str, Any] | None, str, list[str]]:
        """(resource service principal, audience, short scope names) for requested scopes."""
        state = self.sim.state
        resource_uri = None
        short: list[str] = []
        for s in scopes:
            if s.lower() in RESERVED_SCOPES:
                continue
            if "/" in s and not s.startswith("/"):
                uri, _, name = s.rpartition("/")
                resource_uri = resource_uri or uri
                short.append(name)
            else:
                resource_uri = resource_uri or "https://graph.microsoft.com"
                short.append(s)
        if resource_uri is None:
            resource_uri = "https://graph.microsoft.com"
        uri = resource_uri.rstrip("/")
        if uri.lower() == f"https://{state.sharepoint_host}".lower():
            return state.sp_by_app_id(SHAREPOINT_APP_ID), uri, short
        for app_id, (_, uris) in RESOURCES.items():
            if uri.lower() == app_id or uri.lower() in (u.rstrip("/").lower() for u in uris):
                return state.sp_by_app_id(app_id), uri, short
        sp = state.sp_by_app_id(uri) if is_guid(uri) else None
        if sp is None:
            sp = next((s for s in state.service_principals.values()
                       if uri.lower() in (n.rstrip("/").lower() for n in s.get("servicePrincipalNames", []))), None)
        return sp, uri, short

    def _public_client(self, client_id: str) -> tuple[str | None, dict[str, Any] | None]:
        """(display name, app) when client_id may run public-client flows; (None, app) when
        it is a confidential app; (None, None) when unknown."""
        if client_id.lower() in FIRST_PARTY_PUBLIC_CLIENTS:
            return FIRST_PARTY_PUBLIC_CLIENTS[client_id.lower()], None
        app = self.sim.state.app_by_app_id(client_id) if is_guid(client_id) else None
        if app is not None and app.get("isFallbackPublicClient"):
            return app["displayName"], app
        return None, app

    def unknown_client_message(self, client_id: str) -> str:
        return (f"Application with identifier '{client_id}' was not found in the directory "
                f"'{self.sim.tenant_domain.split('.')[0].capitalize()}'. This can happen if the application "
                f"has not been installed by the administrator of the tenant or consented to by any user "
                f"in the tenant. You may have sent your authentication request to the wrong tenant.")

    def _unknown_client(self, client_id: str, headers: dict[str, str]) -> Response:
        return self.error(400, "unauthorized_client", 700016, self.unknown_client_message(client_id), headers)

    # ---- token endpoint -----------------------------------------------------------------
    def _token(self, headers: dict[str, str], body: bytes) -> Response:
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()}
        basic = headers.get("authorization", "")
        if basic[:6].lower() == "basic ":  # client_secret_basic
            try:
                cid, _, secret = base64.b64decode(basic[6:].strip()).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return self.error(401, "invalid_client", 7000215, "Invalid client secret provided.", headers)
            form.setdefault("client_id", unquote_plus(cid))
            form.setdefault("client_secret", unquote_plus(secret))
        grant = form.get("grant_type", "")
        client_id = form.get("client_id", "")
        if not client_id:
            return self.error(400, "invalid_request", 900144,
                              "The request body must contain the following parameter: 'client_id'.", headers)
        if grant == "client_credentials":
            return self._client_credentials(form, headers)
        if grant == DEVICE_GRANT:
            return self._device_code_grant(form, headers)
        if grant == "refresh_token":
            return self._refresh_grant(form, headers)
        if grant == "authorization_code":
            return self.web.redeem(form, headers)
        if not grant:
            return self.error(400, "invalid_request", 900144,
                              "The request body must contain the following parameter: 'grant_type'.", headers)
        return self.error(400, "unsupported_grant_type", 70003,
                          f"The app requested an unsupported grant type '{grant}'.", headers)

    def authenticate_client(self, app: dict[str, Any], form: dict[str, str],
                            headers: dict[str, str]) -> Response | str:
        """The client's proof of identity: "2" (certificate assertion) or "1" (secret) as
        appidacr, or the error Entra answers (worded for client credentials or, for the
        other grants, as a missing parameter)."""
        client_id = form["client_id"]
        if form.get("client_assertion"):
            if form.get("client_assertion_type") != JWT_BEARER:
                return self.error(400, "invalid_request", 50027,
                                  "Invalid client_assertion_type; expected " + JWT_BEARER + ".", headers)
            problem = self._check_assertion(app, form["client_assertion"], self.sim.origin_for(headers))
            if problem is not None:
                return self.error(401, "invalid_client", problem.code or 700027, problem.reason, headers)
            return "2"
        if form.get("client_secret"):
            if not self.sim.state.check_secret(app, form["client_secret"]):
                return self.error(401, "invalid_client", 7000215,
                                  "Invalid client secret provided. Ensure the secret being sent in the request is "
                                  f"the client secret value, not the client secret ID, for a secret added to app "
                                  f"'{client_id}'.", headers)
            return "1"
        if form.get("grant_type") == "client_credentials":
            return self.error(401, "invalid_client", 7000216, "'client_assertion', 'client_secret' or 'request' "
                              "is required for the 'client_credentials' grant type.", headers)
        return self.error(401, "invalid_client", 7000218, "The request body must contain the following parameter: "
                          "'client_assertion' or 'client_secret'.", headers)

    def _client_credentials(self, form: dict[str, str], headers: dict[str, str]) -> Response:
        state, client_id = self.sim.state, form["client_id"]
        app = state.app_by_app_id(client_id) if is_guid(client_id) else None
        if app is None or not state.visible(app["id"]):  # a just-created app may not have reached the STS
            return self._unknown_client(client_id, headers)
        acr = self.authenticate_client(app, form, headers)
        if isinstance(acr, Response):
            return acr
        sp = state.sp_by_app_id(client_id)
        if sp is None:
            return self.error(400, "invalid_client", 7000229,
                              f"The client application {client_id} is missing service principal in the tenant "
                              f"{self.sim.tenant_id}.", headers)
        scopes = form.get("scope", "").split()
        real = [s for s in scopes if s.lower() not in RESERVED_SCOPES]
        if len(real) != 1 or not real[0].endswith("/.default"):
            return self.error(400, "invalid_scope", 1002012,
                              f"The provided value for scope {form.get('scope', '')} is not valid. Client credential "
                              f"flows must have a scope value with /.default suffixed to the resource identifier "
                              f"(application ID URI).", headers)
        resource, aud, _ = self.resource_for(real)
        if resource is None:
            return self._invalid_resource(real[0], headers)
        now = int(time.time())
        roles = state.role_values(sp["id"], resource["id"])
        claims: dict[str, Any] = {
            "aud": aud, "iss": f"https://sts.windows.net/{self.sim.tenant_id}/",
            "iat": now, "nbf": now, "exp": now + self.sim.token_lifetime,
            "aio": new_uti(), "app_displayname": app["displayName"], "appid": client_id,
            "appidacr": acr, "idp": f"https://sts.windows.net/{self.sim.tenant_id}/", "idtyp": "app",
            "oid": sp["id"], "rh": new_uti(), "sub": sp["id"], "tenant_region_scope": "NA",
            "tid": self.sim.tenant_id, "uti": new_uti(), "ver": "1.0",
        }
        if roles:
            claims["roles"] = roles
        wids = sorted(state.directory_roles.get(sp["id"], set()))
        if wids:
            claims["wids"] = wids
        token = self.sim.signer.sign(claims)
        return Response(200, {"token_type": "Bearer", "expires_in": self.sim.token_lifetime,
                              "ext_expires_in": self.sim.token_lifetime, "access_token": token},
                        headers={"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"})

    def _invalid_resource(self, scope: str, headers: dict[str, str]) -> Response:
        resource = scope.rsplit("/", 1)[0]
        return self.error(400, "invalid_resource", 500011,
                          f"The resource principal named {resource} was not found in the tenant named "
                          f"{self.sim.tenant_domain.split('.')[0].capitalize()}. This can happen if the application "
                          f"has not been installed by the administrator of the tenant or consented to by any user "
                          f"in the tenant. You might have sent your authentication request to the wrong tenant.",
                          headers)

    def _check_assertion(self, app: dict[str, Any], assertion: str, origin: str) -> TokenError | None:
        """Validate a client assertion JWT: registered certificate (x5t#S256 or x5t header),
        signature, iss/sub, audience (the token endpoint, under the name the client used or
        base_url) and time window."""
        try:
            header, claims, signing_input, sig = split_jwt(assertion)
        except TokenError as e:
            return TokenError("JWT token is invalid or malformed. " + e.reason, 50027)
        key = None
        try:
            if header.get("x5t#S256"):
                key = self.sim.state.find_key(app, sha256=b64url_decode(header["x5t#S256"]))
            elif header.get("x5t"):
                key = self.sim.state.find_key(app, sha1=b64url_decode(header["x5t"]))
            else:
                return TokenError("Client assertion contains neither x5t nor x5t#S256 header.", 700027)
        except (ValueError, TypeError):  # binascii.Error is a ValueError
            return TokenError("Client assertion contains an invalid thumbprint header.", 700027)
        if key is None:
            return TokenError("The certificate with identifier used to sign the client assertion is not registered "
                              f"on application. [Reason - The key was not found., Thumbprint of key used by client: "
                              f"'{header.get('x5t#S256') or header.get('x5t')}']", 700027)
        if not verify_assertion_signature(key.public_key, str(header.get("alg")), signing_input, sig):
            return TokenError("Client assertion failed signature validation.", 700027)
        if key.not_after <= _dt.datetime.now(_dt.timezone.utc):
            return TokenError("The certificate used to sign the client assertion has expired.", 700027)
        cid = app["appId"]
        if claims.get("iss") != cid or claims.get("sub") != cid:
            return TokenError("Client assertion audience and issuer claims must be the client id.", 50027)
        base = origin
        tenants = (self.sim.tenant_id, self.sim.tenant_domain)
        allowed = {f"{b}/{t}/oauth2/{v}token" for b in {origin, self.sim.base_url} for t in tenants for v in ("v2.0/", "")}
        allowed |= {f"{b}/{self.sim.tenant_id}/v2.0" for b in {origin, self.sim.base_url}}
        aud = claims.get("aud")
        auds = aud if isinstance(aud, list) else [aud]
        if not any(isinstance(a, str) and a.rstrip("/") in {x.rstrip("/") for x in allowed} for a in auds):
            return TokenError(f"Assertion audience claim does not match the required value. The audience in the "
                              f"assertion was '{aud}' and the expected audience is '{base}/{self.sim.tenant_id}/"
                              f"oauth2/v2.0/token'.", 50013)
        now = time.time()
        try:
            exp = float(claims["exp"])
        except (KeyError, TypeError, ValueError):
            return TokenError("Client assertion has no valid 'exp' claim.", 700024)
        nbf = float(claims.get("nbf", claims.get("iat", now)))
        if exp < now - CLOCK_SKEW or nbf > now + CLOCK_SKEW:
            return TokenError("Client assertion is not within its valid time range.", 700024)
        return None

    # ---- device code --------------------------------------------------------------------
    def _devicecode(self, headers: dict[str, str], body: bytes) -> Response:
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
        client_id = form.get("client_id", "")
        name, app = self._public_client(client_id)
        if name is None:
            if app is None:
                return self._unknown_client(client_id, headers)
            return self.error(401, "invalid_client", 7000218,
                              "The request body must contain the following parameter: 'client_assertion' or "
                              "'client_secret'.", headers)
        scopes = form.get("scope", "").split()
        resource, _, _ = self.resource_for(scopes)
        if resource is None:
            return self._invalid_resource(next((s for s in scopes if "/" in s), "?"), headers)
        dc = self.sim.grants.new_device_code(client_id, scopes, self.sim.device_code_expires_in,
                                             self.sim.device_code_interval)
        uri = f"{self.sim.origin_for(headers)}/devicelogin"
        return Response(200, {
            "user_code": dc.user_code,
            "device_code": dc.device_code,
            "verification_uri": uri,
            "expires_in": self.sim.device_code_expires_in,
            "interval": dc.interval,
            "message": f"To sign in, use a web browser to open the page {uri} and enter the code "
                       f"{dc.user_code} to authenticate.",
        })

    def _device_code_grant(self, form: dict[str, str], headers: dict[str, str]) -> Response:
        dc = self.sim.grants.device_code(form.get("device_code", ""))
        if dc is None or dc.client_id.lower() != form["client_id"].lower():
            return self.error(400, "invalid_grant", 70000,
                              "The provided value for the input parameter 'device_code' is not valid.", headers)
        if time.time() > dc.expires_at:
            return self.error(400, "expired_token", 70020,
                              "The provided value for the input parameter 'device_code' is not valid. "
                              "This device code has expired.", headers)
        with self.sim.state.lock:
            dc.polls += 1
            if dc.state == "pending" and self.sim.device_auto_approve and dc.polls > self.sim.device_pending_polls:
                dc.state, dc.user_id = "approved", self.sim.device_user.object_id
            state, user_id = dc.state, dc.user_id
            if state == "approved":
                dc.state = "redeemed"
        if state == "pending":
            return self.error(400, "authorization_pending", 70016,
                              "OAuth 2.0 device flow error. Authorization is pending. Continue polling.", headers)
        if state == "declined":
            return self.error(400, "authorization_declined", 70000,
                              "The user denied the authorization request.", headers)
        if state == "redeemed":
            return self.error(400, "invalid_grant", 54005, "OAuth2 Authorization code was already redeemed, "
                              "please retry with a new valid code or use an existing refresh token.", headers)
        assert user_id is not None
        return self.delegated_tokens(dc.client_id, user_id, dc.scope, headers)

    def _refresh_grant(self, form: dict[str, str], headers: dict[str, str]) -> Response:
        grant = self.sim.grants.redeem_refresh_token(form.get("refresh_token", ""))
        if grant is None or grant.client_id.lower() != form["client_id"].lower():
            return self.error(400, "invalid_grant", 9002313, "Invalid request. Request is malformed or invalid.", headers)
        if grant.user_id not in self.sim.state.users:
            return self.error(400, "invalid_grant", 50034, "The user account does not exist in the directory.", headers)
        scopes = form.get("scope", "").split() or grant.scope
        return self.delegated_tokens(grant.client_id, grant.user_id, scopes, headers)

    def delegated_tokens(self, client_id: str, user_id: str, scopes: list[str], headers: dict[str, str],
                         nonce: str | None = None) -> Response:
        """Access, refresh and ID token for a user signed in to `client_id`; the ID token
        carries `nonce` when the sign-in request had one, and `roles`: the app roles the
        user is assigned on the client's service principal."""
        state = self.sim.state
        resource, aud, _ = self.resource_for(scopes)
        if resource is None:
            return self._invalid_resource(next((s for s in scopes if "/" in s), "?"), headers)
        user = state.users[user_id]
        granted = list(state.user_scopes.get(user_id, []))
        name, app = self._public_client(client_id)
        name = name or (app or {}).get("displayName") or client_id
        if missing_consent(scopes, granted):
            return self._consent_required(client_id, name, headers)
        wids = sorted(set(state.directory_roles.get(user_id, set())) | {DEFAULT_USER_ROLE})
        now = int(time.time())
        claims: dict[str, Any] = {
            "aud": aud, "iss": f"https://sts.windows.net/{self.sim.tenant_id}/",
            "iat": now, "nbf": now, "exp": now + self.sim.token_lifetime,
            "acr": "1", "aio": new_uti(), "amr": ["pwd", "mfa"], "app_displayname": name,
            "appid": client_id, "appidacr": "0", "idtyp": "user", "ipaddr": "127.0.0.1",
            "name": user["displayName"], "oid": user_id, "platf": "14", "rh": new_uti(),
            "scp": " ".join(granted), "sub": new_uti(), "tenant_region_scope": "NA",
            "tid": self.sim.tenant_id, "unique_name": user["userPrincipalName"],
            "upn": user["userPrincipalName"], "uti": new_uti(), "ver": "1.0", "wids": wids,
        }
        if not self.sim.wids_in_user_tokens:
            del claims["wids"]
        access = self.sim.signer.sign(claims)
        id_claims: dict[str, Any] = {
            "aud": client_id, "iss": f"{self.sim.origin_for(headers)}/{self.sim.tenant_id}/v2.0",
            "iat": now, "nbf": now, "exp": now + 3600, "name": user["displayName"], "oid": user_id,
            "preferred_username": user["userPrincipalName"], "rh": new_uti(), "sub": pairwise_subject(user_id, client_id),
            "tid": self.sim.tenant_id, "uti": new_uti(), "ver": "2.0",
        }
        if nonce is not None:
            id_claims["nonce"] = nonce
        client_sp = state.sp_by_app_id(client_id)
        roles = state.role_values(user_id, client_sp["id"]) if client_sp is not None else []
        if roles:
            id_claims["roles"] = roles
        id_token = self.sim.signer.sign(id_claims)
        refresh = self.sim.grants.new_refresh_token(RefreshGrant(client_id, user_id, scopes))
        prefix = aud.rstrip("/") + "/" if aud.startswith("http") else ""
        # Entra echoes a requested "<resource>/.default" next to the scopes it expands to,
        # which is what lets msal find the token in its cache on the next silent call.
        echoed = [s for s in scopes if s.lower() in RESERVED_SCOPES or s.endswith("/.default")]
        scope_out = " ".join([prefix + s for s in granted] + echoed)
        return Response(200, {
            "token_type": "Bearer", "scope": scope_out, "expires_in": self.sim.token_lifetime,
            "ext_expires_in": self.sim.token_lifetime, "access_token": access,
            "refresh_token": refresh, "id_token": id_token,
            "client_info": client_info(user_id, self.sim.tenant_id),
        }, headers={"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"})

    @staticmethod
    def consent_message(client_id: str, name: str) -> str:
        return (f"The user or administrator has not consented to use the application with ID '{client_id}' named "
                f"'{name}'. Send an interactive authorization request for this user and resource.")

    def _consent_required(self, client_id: str, name: str, headers: dict[str, str]) -> Response:
        # Entra's answer when a delegated grant asks for permissions nobody consented to
        # (the body azure-docs #39189 and oauth2-microsoft #31 quote: invalid_grant,
        # AADSTS65001, suberror consent_required).
        return self.error(400, "invalid_grant", 65001, self.consent_message(client_id, name), headers,
                          suberror="consent_required")

    # ---- a page to approve a device code by hand ----------------------------------------
    def _device_login_page(self, method: str, body: bytes) -> Response:
        note = ""
        if method == "POST":
            form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
            ok = self.sim.approve_device_code(form.get("code", ""), decline=form.get("action") == "decline")
            note = "Done: return to your terminal." if ok else "That code is unknown or has expired."
        user = html.escape(self.sim.device_user.upn)
        page = (
            "<!doctype html><html><head><meta charset='utf-8'><title>psrunner simulator sign-in</title></head>"
            "<body style='font-family:sans-serif;max-width:32em;margin:3em auto'>"
            "<h1>Enter code</h1><p>Simulated tenant " + html.escape(self.sim.tenant_domain) + ". You sign in as <b>"
            + user + "</b>.</p><form method='post'><input name='code' autofocus>"
            "<button name='action' value='approve'>Approve</button> "
            "<button name='action' value='decline'>Decline</button></form><p>" + html.escape(note)
            + "</p></body></html>")
        return Response(200, page, content_type="text/html; charset=utf-8")
