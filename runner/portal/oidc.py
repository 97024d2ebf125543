"""Sign-in with Entra ID: the OpenID Connect authorization code flow with PKCE, through msal
(initiate_auth_code_flow, acquire_token_by_auth_code_flow), as a confidential web app.

msal makes the PKCE verifier and challenge (S256), `state` and `nonce`, and checks `state`
and `nonce` when it redeems the code. It does not check the ID token's signature: it trusts
the TLS connection it got the token on. The portal checks the token itself before it believes
a claim, as the OpenID Connect Core spec (3.1.3.7) asks of a client: the signature with a key
from the JWKS named by the tenant's discovery document, `iss` equal to the document's
issuer, `aud` equal to the portal's client id, `exp` / `iat` (five minutes of clock skew, as
Entra allows), `nonce` equal to the one this flow sent, and `tid` equal to the configured
tenant when it is given as an id. Roles are the token's `roles` claim: the app roles the
person is assigned on the portal's app registration (Microsoft identity platform docs,
"Add app roles to your application and receive them in the token").

Flows in progress are kept here, keyed by their `state`, not in the session cookie: the
answer from Entra is a cross-site navigation, on which a SameSite=Strict cookie is not sent.
A second cookie, SameSite=Lax and valid for ten minutes, binds the flow to the browser that
started it, so a sign-in cannot be completed in somebody else's browser (login CSRF)."""

from __future__ import annotations

import hashlib
import hmac
import secrets as _rand
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ..derive import GUID_RE
from ..errors import AuthError
from ..graph.http import HttpSession
from .config import EntraSetup
from .web import User

FLOW_LIFETIME = 600          # seconds a sign-in may take (Entra's codes live about as long)
MAX_FLOWS = 1000
METADATA_LIFETIME = 3600     # the discovery document and keys are read again after an hour
CLOCK_SKEW = 300


@dataclass
class _Flow:
    flow: dict[str, Any]
    binding: str            # sha256 of the browser's binding cookie
    return_to: str
    started: float


class EntraSignIn:
    def __init__(self, setup: EntraSetup, redirect_uri: str) -> None:
        self.setup, self.redirect_uri = setup, redirect_uri
        self.http = HttpSession(ca_bundle=setup.ca_bundle, timeout=(10.0, 30.0))
        self._flows: dict[str, _Flow] = {}
        self._lock = threading.Lock()
        self._app: Any = None
        self._meta: tuple[float, dict[str, Any], dict[str, Any]] | None = None

    def _msal(self) -> Any:
        if self._app is None:
            import msal
            from ..graph.auth import CLOUDS
            clouds = {urlsplit(c.authority_host).netloc for c in CLOUDS.values()}
            # instance discovery asks Microsoft about the authority: only for Microsoft's own
            self._app = msal.ConfidentialClientApplication(
                self.setup.client_id, client_credential=self.setup.client_secret.reveal(),
                authority=self.setup.authority, http_client=self.http,
                instance_discovery=urlsplit(self.setup.authority_host).netloc in clouds)
        return self._app

    def start(self, return_to: str) -> tuple[str, str]:
        """(the URL to send the browser to, the binding cookie's value)."""
        import warnings
        binding = _rand.token_urlsafe(32)
        with warnings.catch_warnings():      # msal suggests form_post; query keeps the answer a GET
            warnings.simplefilter("ignore", UserWarning)
            flow = self._msal().initiate_auth_code_flow([], redirect_uri=self.redirect_uri, response_mode="query")
        now = time.time()
        with self._lock:
            for key in [k for k, f in self._flows.items() if now - f.started > FLOW_LIFETIME]:
                del self._flows[key]
            if len(self._flows) >= MAX_FLOWS:
                self._flows.pop(next(iter(self._flows)))
            self._flows[flow["state"]] = _Flow(flow, _digest(binding), return_to, now)
        return flow["auth_uri"], binding

    def finish(self, answer: dict[str, str], binding: str | None) -> tuple[User, str]:
        """The signed-in person and where they were going; AuthError when anything is off."""
        with self._lock:
            pending = self._flows.pop(answer.get("state", ""), None)
        if pending is None or time.time() - pending.started > FLOW_LIFETIME:
            raise AuthError("this sign-in is unknown or took too long", hint="sign in again")
        if not binding or not hmac.compare_digest(pending.binding, _digest(binding)):
            raise AuthError("this sign-in was started in another browser", hint="sign in again from this one")
        if answer.get("error"):
            raise AuthError(f"Entra ID refused the sign-in: {answer.get('error_description') or answer['error']}")
        result = self._msal().acquire_token_by_auth_code_flow(pending.flow, answer)
        if "error" in result:
            raise AuthError(f"the sign-in could not be completed: {result.get('error_description') or result['error']}")
        # msal keeps the nonce it made in the flow and sends its SHA-256 (hex) as `nonce`, as the
        # OpenID Connect Core spec's nonce notes suggest: the token carries the digest
        sent = hashlib.sha256(str(pending.flow.get("nonce", "")).encode()).hexdigest()
        claims = self.validate(result.get("id_token", ""), sent)
        who = str(claims.get("name") or claims.get("preferred_username") or claims["oid"])
        roles = tuple(r for r in claims.get("roles", []) if isinstance(r, str))
        return User(f"entra:{claims['tid']}/{claims['oid']}", who, roles, "entra"), pending.return_to

    # -- the ID token -------------------------------------------------------------
    def validate(self, id_token: str, nonce: str) -> dict[str, Any]:
        import jwt
        try:
            header = jwt.get_unverified_header(id_token)
            meta, keys = self._metadata()
            key = keys.get(header.get("kid"))
            if key is None:                      # keys roll over: read them again once
                meta, keys = self._metadata(refresh=True)
                key = keys.get(header.get("kid"))
            if key is None:
                raise AuthError("the ID token is signed with a key the tenant does not publish")
            claims = jwt.decode(id_token, key=key, algorithms=["RS256"], audience=self.setup.client_id,
                                issuer=meta["issuer"], leeway=CLOCK_SKEW,
                                options={"require": ["exp", "iat", "iss", "aud", "oid", "tid"]})
        except jwt.PyJWTError as e:
            raise AuthError(f"the ID token does not validate: {e}") from None
        if not nonce or not hmac.compare_digest(str(claims.get("nonce", "")), nonce):
            raise AuthError("the ID token does not answer this sign-in (nonce)")
        if GUID_RE.match(self.setup.tenant) and claims["tid"].lower() != self.setup.tenant.lower():
            raise AuthError("the ID token comes from another tenant")
        return claims

    def _metadata(self, refresh: bool = False) -> tuple[dict[str, Any], dict[str, Any]]:
        import jwt
        if self._meta and not refresh and time.time() - self._meta[0] < METADATA_LIFETIME:
            return self._meta[1], self._meta[2]
        import requests
        try:
            doc = self.http.get(f"{self.setup.authority}/v2.0/.well-known/openid-configuration")
            doc.raise_for_status()
            meta = doc.json()
            jwks = self.http.get(meta["jwks_uri"])
            jwks.raise_for_status()
        except (requests.RequestException, ValueError, KeyError) as e:
            raise AuthError(f"the tenant's signing keys cannot be read: {type(e).__name__}",
                            hint="check entra.authority_host and the network to it") from None
        keys = {k.get("kid"): jwt.PyJWK(k, algorithm="RS256").key for k in jwks.json().get("keys", [])
                if k.get("kty") == "RSA"}
        self._meta = (time.time(), meta, keys)
        return meta, keys


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
