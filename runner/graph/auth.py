"""Sign-in to Microsoft Entra ID with msal (what the token grants is read in rights.py).

Three ways to sign in:
- `device-code` (interactive admins): msal's device code flow; the code and URL go to STDERR
  through a callback. The token cache (msal.SerializableTokenCache) is kept in a 0600 file
  and reused, so a second run with a cached account signs in silently.
- `certificate` (unattended runs, the recommended way): client credentials with a
  certificate, PEM (key + certificate) or PFX (+ optional password), given to msal as a
  `client_credential` dict so it signs the assertion and sends the certificate chain.
- `secret`: client credentials with a client secret. Weaker: a secret is a bearer password
  that can be copied anywhere, and SharePoint refuses app-only tokens obtained with one.

Sovereign clouds map to (authority host, Graph endpoint); `authority_host` and
`graph_endpoint` override them (the tenant simulator). The token *scope* keeps the cloud's
Graph resource (`https://graph.microsoft.com/.default` in the global cloud) even when the
endpoint is overridden, as it is what the token service issues tokens for.

Nothing here touches the network until the first token is asked for: msal builds its
application object (which fetches OpenID metadata) lazily."""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

from ..errors import AuthError, InputError, Interrupted, RunnerError, Unavailable, setting
from ..secrets import Secret, is_private, redact, register, write_private
from .http import HttpSession, tls_error, unreachable
from .http_cache import HttpCache, cache_file
from .retry import THROTTLE, UNREACHABLE, Again, RetryLoop, RetryPolicy
from .rights import DELEGATED_SCOPES, decode_claims

log = logging.getLogger("psrunner.graph.auth")

# Microsoft Graph Command Line Tools: a Microsoft first-party public client present in every
# tenant, used by Connect-MgGraph. Device-code sign-in uses it unless client_id is given.
DEFAULT_PUBLIC_CLIENT_ID = "14d82eec-204b-4c2f-b7e8-296a70dab67e"

SIGN_IN_KINDS = ("device-code", "certificate", "secret")


@dataclass(frozen=True)
class Cloud:
    name: str
    authority_host: str
    graph_endpoint: str


CLOUDS: dict[str, Cloud] = {c.name: c for c in [
    Cloud("global", "https://login.microsoftonline.com", "https://graph.microsoft.com"),
    Cloud("usgov", "https://login.microsoftonline.us", "https://graph.microsoft.us"),        # GCC High (L4)
    Cloud("usgovdod", "https://login.microsoftonline.us", "https://dod-graph.microsoft.us"),  # DoD (L5)
    Cloud("china", "https://login.chinacloudapi.cn", "https://microsoftgraph.chinacloudapi.cn"),  # 21Vianet
]}
_PUBLIC_AUTHORITY_HOSTS = {urlsplit(c.authority_host).netloc for c in CLOUDS.values()}


def cloud_named(name: str | None) -> Cloud:
    key = (name or "global").strip().lower()
    if key not in CLOUDS:
        raise InputError(f"cloud: unknown cloud {name!r}", input="cloud",
                         hint="use one of: " + ", ".join(CLOUDS))
    return CLOUDS[key]


# --------------------------------------------------------------------------- settings

def _stderr_prompt(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass
class SignInSettings:
    tenant: str
    kind: str = "device-code"
    cloud: Cloud = field(default_factory=lambda: CLOUDS["global"])
    client_id: str | None = None
    authority_host: str | None = None          # overrides cloud.authority_host
    certificate: Path | None = None
    certificate_password: Secret | None = None
    client_secret: Secret | None = None
    token_cache: Path | None = None
    http_cache: Path | None = None             # folder for msal's discovery answers (http_cache.py)
    interactive: bool = True
    prompt: Callable[[str], None] = _stderr_prompt

    def __post_init__(self) -> None:
        if not self.tenant or not str(self.tenant).strip():
            raise InputError("tenant: missing", input="tenant",
                             hint="give the tenant domain (contoso.onmicrosoft.com) or its id (GUID)")
        if self.kind not in SIGN_IN_KINDS:
            raise InputError(f"auth: unknown sign-in {self.kind!r}", input="auth",
                             hint="use one of: " + ", ".join(SIGN_IN_KINDS))
        if self.kind == "device-code":
            self.client_id = self.client_id or DEFAULT_PUBLIC_CLIENT_ID
        elif not self.client_id:
            how = "a certificate" if self.kind == "certificate" else "a client secret"
            raise InputError(f"client_id: required to sign in with {how} ({self.kind} sign-in)", input="client_id",
                             hint="give the application (client) id of the operator app that signs in")
        if self.kind == "certificate" and not self.certificate:
            raise InputError("certificate: required to sign in with a certificate (certificate sign-in)",
                             input="certificate",
                             hint="give the path of a PFX or PEM file holding the certificate and key")
        if self.kind == "secret" and not self.client_secret:
            raise InputError("client_secret: required to sign in with a client secret (secret sign-in)",
                             input="client_secret",
                             hint="pass the secret from an environment variable or a prompt, never on the command line")

    @property
    def authority(self) -> str:
        host = (self.authority_host or self.cloud.authority_host).rstrip("/")
        return f"{host}/{self.tenant.strip()}"

    @property
    def graph_resource(self) -> str:
        return self.cloud.graph_endpoint

    @property
    def needs_instance_discovery(self) -> bool:
        return urlsplit(self.authority).netloc in _PUBLIC_AUTHORITY_HOSTS


# --------------------------------------------------------------------------- msal errors

_AADSTS_HINTS: dict[int, str] = {
    7000215: "the client secret is wrong: create a new secret for the app and pass its value",
    7000222: "the client secret has expired: create a new secret for the app",
    700016: f"no application with this client id in the tenant: check {setting('client_id')}, "
            f"{setting('tenant')} and {setting('cloud')}",
    90002: f"the tenant was not found: check {setting('tenant')} (its domain or id) and {setting('cloud')}",
    900023: f"the tenant is not a valid domain or id: check {setting('tenant')}",
    700027: "the certificate is not registered on the app (or the assertion is invalid): upload its public part to the app",
    700024: "the client assertion is outside its validity time: check this machine's clock",
    50126: "wrong user name or password",
    65001: "consent is missing: an administrator must consent to the requested permissions for this client",
    70011: "the requested scope is invalid for this client",
    50076: f"multi-factor authentication is required: sign in with {setting('auth', 'device-code')} at a terminal",
    50079: "multi-factor authentication registration is required for this user",
    53003: "Conditional Access blocked the sign-in: ask the tenant administrators for an exclusion or a compliant device",
    7000218: f"the client is confidential: sign in with {setting('auth', 'certificate')}, or enable public "
             "client flows on it",
    50020: "the user is not in this tenant: sign in with an account of the tenant",
    50034: "the user does not exist in this tenant",
    7000112: "the application is disabled in the tenant",
    70043: "the refresh token expired (sign-in frequency): delete the token cache and sign in again",
    700082: "the refresh token expired due to inactivity: delete the token cache and sign in again",
}


def aadsts_codes(result: dict[str, Any]) -> list[int]:
    codes = [int(c) for c in result.get("error_codes") or [] if str(c).isdigit()]
    if not codes:
        codes = [int(c) for c in re.findall(r"AADSTS(\d+)", str(result.get("error_description", "")))]
    return codes


def auth_error_from_result(result: dict[str, Any], settings: SignInSettings) -> AuthError:
    codes = aadsts_codes(result)
    desc = str(result.get("error_description") or result.get("error") or "unknown error")
    first = desc.strip().splitlines()[0] if desc.strip() else desc
    if codes and not first.startswith("AADSTS"):
        first = f"AADSTS{codes[0]}: {first}"
    hint = next((_AADSTS_HINTS[c] for c in codes if c in _AADSTS_HINTS), None)
    if hint is None and result.get("error") == "invalid_client":
        hint = (f"the client credential was refused: check {setting('client_id')} and "
                f"{setting('client_secret')} or {setting('certificate')}")
    message = redact(f"sign-in to {settings.tenant} ({settings.kind}, client {settings.client_id}) failed: {first}")
    return AuthError(message, hint=hint, aadsts=[f"AADSTS{c}" for c in codes],
                     error=result.get("error"), tenant=settings.tenant)


# --------------------------------------------------------------------------- token source

class TokenSource:
    """Gets Graph access tokens for one sign-in, once per run (msal caches; this class keeps
    the current token until 5 minutes before it expires)."""

    REFRESH_MARGIN = 300.0

    def __init__(self, settings: SignInSettings, http: HttpSession, *,
                 policy: RetryPolicy | None = None, logger: logging.Logger | None = None,
                 tell: Callable[[str], None] | None = None) -> None:
        self.settings = settings
        self.http = http
        self.policy = policy or RetryPolicy()
        self.log = logger or log
        self.tell = tell            # a line for the person watching while sign-in waits to retry
        self.cancel = threading.Event()
        self._lock = threading.RLock()
        self._app: Any = None
        self._cache: Any = None
        self._http_cache: HttpCache | None = None
        self._token: str | None = None
        self._expires_at = 0.0
        self._claims: dict[str, Any] | None = None

    # ---- public -------------------------------------------------------------------

    def token(self) -> str:
        with self._lock:
            if self._token and time.time() < self._expires_at - self.REFRESH_MARGIN:
                return self._token
            result = self._acquire()
            token = result["access_token"]
            register(token)
            self._token = token
            self._expires_at = time.time() + float(result.get("expires_in") or 3600)
            self._claims = decode_claims(token)
            return token

    def claims(self) -> dict[str, Any]:
        self.token()
        assert self._claims is not None
        return dict(self._claims)

    def interrupt(self) -> None:
        self.cancel.set()

    def close(self) -> None:
        self._save_cache()

    @property
    def scopes(self) -> list[str]:
        res = self.settings.graph_resource.rstrip("/")
        if self.settings.kind == "device-code":
            return [f"{res}/{s}" for s in DELEGATED_SCOPES]
        return [f"{res}/.default"]

    # ---- msal ---------------------------------------------------------------------

    def _msal_app(self) -> Any:
        if self._app is not None:
            return self._app
        import msal

        s = self.settings
        common: dict[str, Any] = {"authority": s.authority, "http_client": self.http}
        if s.http_cache is not None:
            self._http_cache = HttpCache(cache_file(s.http_cache, s.authority), s.authority).load()
            common["http_cache"] = self._http_cache
        if not s.needs_instance_discovery:
            common["instance_discovery"] = False
        if s.kind == "device-code":
            self._cache = msal.SerializableTokenCache()
            if s.token_cache and Path(s.token_cache).is_file():
                if not is_private(s.token_cache):
                    os.chmod(s.token_cache, 0o600)
                    self.log.warning("token cache %s was readable by others (it holds refresh tokens): made it "
                                     "readable by you only (0600)", s.token_cache)
                try:
                    self._cache.deserialize(Path(s.token_cache).read_text())
                except ValueError:
                    self.log.warning("token cache %s is unreadable; signing in afresh", s.token_cache)
            self._app = msal.PublicClientApplication(s.client_id, token_cache=self._cache, **common)
        else:
            self._app = msal.ConfidentialClientApplication(
                s.client_id, client_credential=self._client_credential(), **common)
        return self._app

    def _client_credential(self) -> Any:
        s = self.settings
        if s.kind == "secret":
            assert s.client_secret is not None
            return s.client_secret.reveal()
        from .certs import load_certificate

        assert s.certificate is not None
        path = Path(s.certificate).expanduser()
        material = load_certificate(path, s.certificate_password)   # validates early, names the input
        if path.suffix.lower() in (".pfx", ".p12"):
            cred: dict[str, Any] = {"private_key_pfx_path": str(path), "public_certificate": True}
            if s.certificate_password:
                cred["passphrase"] = s.certificate_password.reveal()
            return cred
        return {"private_key": material.key_pem(), "public_certificate": material.cert_pem()}

    def _acquire(self) -> dict[str, Any]:
        """A token result from msal, retried by the one loop (retry.py): an unreachable or
        failing sign-in service, throttling and temporarily_unavailable are tried again."""
        loop = RetryLoop(self.policy, wait=self.cancel.wait, cancel=self.cancel, log=self.log, name="sign-in",
                         tell=self.tell)
        return loop.run(self._attempt)

    def _unreachable(self, why: str) -> Again:
        """No connection to the sign-in service at all: a few tries, each said, then the host
        and what to check (the network path, or the setting that named the host)."""
        url = self.settings.authority_host or self.settings.cloud.authority_host
        host = urlsplit(url).netloc
        named = (f"that {setting('authority_host')} names the sign-in service" if self.settings.authority_host
                 else f"for a tenant in another cloud set {setting('cloud')}")
        error = Unavailable(f"cannot reach the sign-in service {host}: {why}",
                            hint=f"check that this machine reaches {url} (DNS, proxy settings such as HTTPS_PROXY, "
                                 f"firewall), and {named}; then re-run (re-running is safe)", host=host)
        return Again(error, f"cannot reach the sign-in service {host} ({why})", kind=UNREACHABLE)

    def _busy(self, error: RunnerError) -> Again:
        status = self.http.last_status
        return Again(error, f"sign-in service {status}", kind=THROTTLE, retry_after=[self.http.last_retry_after])

    def _attempt(self) -> dict[str, Any]:
        self.http.last_status = None
        busy = "wait a few minutes and re-run"
        try:
            result = self._acquire_once()
        except (requests.ConnectionError, requests.Timeout) as e:
            tls = tls_error(e, self.settings.authority, self.http)
            if tls is not None:
                raise tls from None
            why = unreachable(e, self.http.default_timeout[0])
            if why is not None:
                raise self._unreachable(why) from None
            raise Again(Unavailable(f"cannot reach the sign-in service {urlsplit(self.settings.authority).netloc}: "
                                    f"{type(e).__name__}",
                                    hint="check the network path (proxy, firewall) and re-run"),
                        "sign-in service unreachable") from None
        except requests.HTTPError as e:       # 5xx on OpenID discovery
            raise Again(Unavailable(f"the sign-in service kept failing: {e}", hint=busy),
                        "sign-in service error") from None
        except RunnerError:          # ours (AuthError, InputError, Interrupted): already clear
            raise
        except Exception as e:                # msal's ValueError / MsalServiceError on 5xx, and the like
            status = self.http.last_status
            if status is not None and (status == 429 or status >= 500):
                raise self._busy(Unavailable(f"the sign-in service kept answering {status}", hint=busy)) from None
            text = redact(str(e))
            if isinstance(e, ValueError) and ("OIDC Discovery failed" in text or "tenant" in text.lower()):
                raise AuthError(f"the tenant {self.settings.tenant!r} was not found at "
                                f"{urlsplit(self.settings.authority).netloc}",
                                hint=f"check {setting('tenant')} (its domain or id) and {setting('cloud')}") from None
            if isinstance(e, ValueError):
                raise AuthError(f"sign-in failed: {text}") from None
            raise AuthError(f"sign-in failed: {type(e).__name__}: {text}", hint=busy) from None
        if "access_token" in result:
            self._save_cache()
            return result
        status = self.http.last_status
        if status == 429 or (status is not None and status >= 500) or result.get("error") == "temporarily_unavailable":
            # an outage, not a wrong credential: exit 1 like a Graph outage, never "bad input"
            busy_error = auth_error_from_result(result, self.settings)
            raise self._busy(Unavailable(busy_error.message, hint=busy_error.hint or busy))
        raise auth_error_from_result(result, self.settings)

    def _acquire_once(self) -> dict[str, Any]:
        s = self.settings
        if s.kind == "device-code" and not s.interactive and not (s.token_cache and Path(s.token_cache).is_file()):
            raise self._needs_terminal()      # before msal's first request: nothing to reuse
        app = self._msal_app()
        if s.kind != "device-code":
            return app.acquire_token_for_client(scopes=self.scopes)
        account = self._pick_account(app.get_accounts())
        if account is not None:
            result = app.acquire_token_silent(self.scopes, account=account)
            if result and "access_token" in result:
                self.log.info("sign-in: reused the cached account %s", account.get("username"))
                return result
        if not s.interactive:
            raise self._needs_terminal()
        flow = app.initiate_device_flow(scopes=self.scopes)
        if "user_code" not in flow:
            raise auth_error_from_result(flow, s)
        s.prompt(flow.get("message") or
                 f"To sign in, open {flow.get('verification_uri')} and enter the code {flow['user_code']}")
        result = app.acquire_token_by_device_flow(
            flow, exit_condition=lambda f: self.cancel.is_set() or f.get("expires_at", 0) < time.time())
        if self.cancel.is_set() and "access_token" not in result:
            raise Interrupted("interrupted during device-code sign-in")
        return result

    @staticmethod
    def _needs_terminal() -> AuthError:
        return AuthError("device-code sign-in needs a person at a terminal, and no cached sign-in "
                         "could be reused",
                         hint="run once at a terminal to fill the token cache; for unattended runs sign in "
                              f"with {setting('auth', 'certificate')}, {setting('client_id')} and "
                              f"{setting('certificate')}")

    def _pick_account(self, accounts: list[dict[str, Any]]) -> dict[str, Any] | None:
        if not accounts:
            return None
        tenant = self.settings.tenant.strip().lower()
        for a in accounts:
            if str(a.get("realm", "")).lower() == tenant:
                return a
            if str(a.get("username", "")).lower().endswith("@" + tenant):
                return a
        return accounts[0] if len(accounts) == 1 else None

    def _save_cache(self) -> None:
        if self._http_cache is not None:
            self._http_cache.save()
        cache, path = self._cache, self.settings.token_cache
        if cache is None or not path or not cache.has_state_changed:
            return
        write_private(path, cache.serialize())
        cache.has_state_changed = False
