"""The Graph target: `open_target(settings, env)` turns a runbook's `[targets.NAME]` block
(type "graph") into a GraphConnector. Opening does not touch the network; the first Graph call
signs in.

Settings (already resolved; secrets as runner.secrets.Secret):
  tenant                domain (contoso.onmicrosoft.com) or tenant id (GUID)      required
  cloud                 global | usgov | usgovdod | china                        default global
  auth                  device-code | certificate | secret                       default device-code
  client_id             app that signs in (device-code defaults to Microsoft Graph Command Line Tools)
  certificate           path of a PFX or PEM (certificate + key)                  auth = certificate
  certificate_password  Secret protecting the PFX/PEM key                        optional
  client_secret         Secret (the weaker option: prefer a certificate)         auth = secret
  authority_host        override of the cloud's sign-in host (e.g. the tenant simulator)
  graph_endpoint        override of the cloud's Graph endpoint (without /v1.0)
  ca_bundle             PEM bundle to trust (passed per request; see client.HttpSession)
  token_cache           device-code token cache file (default <state>/private/graph/<tenant>/msal-cache.json)
  timeout               seconds, or [connect, read]      default [10, 60]; [5, 60] for sign-in
  lag_budget            seconds to wait out replication lag per call            default 180
  lag_base              first wait on replication lag (doubles, up to 30 s)     default 2
  retry_after_cap       longest single wait honoured from Retry-After           default 30
  max_attempts          attempts per call on throttling / transient errors       default 8
  backoff_base          first backoff step in seconds                           default 1
  offline               plan without signing in (catalog permission ids, nothing read)"""

from __future__ import annotations

import logging
import re
import threading
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..registry import TargetEnv
from ..secrets import Secret
from ..userfiles import check_ca_bundle
from ..values import as_bool, as_number, as_secret
from .auth import CLOUDS, SignInSettings, TokenSource, cloud_named
from .client import GraphClient
from .endpoints import check_endpoints
from .facts import Facts
from .known_ids import KnownIds
from .http import GraphCounters, HttpSession, route_of
from .retry import RetryPolicy
from .rights import describe, require_rights
from .rights_asked import complete, undecided

KNOWN_SETTINGS = {
    "tenant", "cloud", "auth", "client_id", "certificate", "certificate_password", "client_secret",
    "authority_host", "graph_endpoint", "ca_bundle", "token_cache", "timeout", "lag_budget",
    "retry_after_cap", "max_attempts", "backoff_base", "lag_base", "offline", "type",
}
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


# an unreachable sign-in service is said within seconds: the first connection a run makes,
# so a stalled one is the network path, not a busy service (RetryPolicy.unreachable_attempts)
SIGN_IN_CONNECT_TIMEOUT = 5.0


def _timeout(value: Any) -> tuple[float, float]:
    """(connect, read) seconds from `timeout = 60` or `timeout = [10, 60]`."""
    if value is None:
        return (10.0, 60.0)
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return (as_number(value[0], "timeout", lo=0), as_number(value[1], "timeout", lo=0))
    if isinstance(value, (list, tuple, dict)):
        raise InputError(f"timeout: {value!r} is not seconds or [connect, read]", input="timeout")
    t = as_number(value, "timeout", lo=0)
    return (min(10.0, t), t)


def _number(settings: dict[str, Any], key: str, default: float) -> float:
    return as_number(settings.get(key, default), key, lo=0)


def login_route(method: str, url: str) -> str:
    """`POST /{tenant}/oauth2/v2.0/token`: the tenant segment of sign-in paths grouped."""
    route = route_of(method, url)
    verb, _, path = route.partition(" ")
    parts = path.split("/")
    if len(parts) > 2 and parts[1] not in ("common", "organizations", "consumers"):
        parts[1] = "{tenant}"
    return f"{verb} {'/'.join(parts)}"


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", text.strip().lower()) or "tenant"


def _check_known(settings: dict[str, Any]) -> None:
    unknown = sorted(set(settings) - KNOWN_SETTINGS)
    if unknown:
        raise InputError(f"graph target: unknown setting(s) {', '.join(unknown)}", input=unknown[0],
                         hint="known settings: " + ", ".join(sorted(KNOWN_SETTINGS - {'type'})))


def _sign_in_settings(settings: dict[str, Any], *, token_cache: Path | None = None, http_cache: Path | None = None,
                      interactive: bool = False, prompt: Any = None) -> SignInSettings:
    cert = settings.get("certificate")
    extra = {"prompt": prompt} if prompt is not None else {}
    return SignInSettings(
        tenant=str(settings.get("tenant") or "").strip(),
        kind=str(settings.get("auth") or "device-code"),
        cloud=cloud_named(settings.get("cloud")),
        client_id=settings.get("client_id") or None,
        authority_host=settings.get("authority_host") or None,
        certificate=Path(cert).expanduser() if cert else None,
        certificate_password=as_secret(settings.get("certificate_password"), "certificate_password"),
        client_secret=as_secret(settings.get("client_secret"), "client_secret"),
        token_cache=token_cache,
        http_cache=http_cache,
        interactive=interactive,
        **extra,
    )


def _ca_bundle(settings: dict[str, Any]) -> str | None:
    ca_bundle = settings.get("ca_bundle")
    if ca_bundle and not Path(ca_bundle).expanduser().is_file():
        raise InputError(f"ca_bundle: no such file: {ca_bundle}", input="ca_bundle",
                         hint="give the path of a PEM file with the CA certificates to trust")
    if ca_bundle:
        check_ca_bundle(ca_bundle, input="ca_bundle")
    return str(Path(ca_bundle).expanduser()) if ca_bundle else None


def _policy(settings: dict[str, Any]) -> RetryPolicy:
    return RetryPolicy(
        max_attempts=int(_number(settings, "max_attempts", 8)) or 1,
        retry_after_cap=_number(settings, "retry_after_cap", 30.0),
        backoff_base=_number(settings, "backoff_base", 1.0),
        lag_budget=_number(settings, "lag_budget", 180.0),
        lag_base=_number(settings, "lag_base", 2.0),
    )


def check_settings(settings: dict[str, Any], name: str = "tenant") -> None:
    """Every check that opening the target makes, plus reading the sign-in certificate, with no
    network traffic: so that bad settings are refused (InputError naming the setting) before
    a run starts, not when its first Graph stage signs in."""
    settings = {k: v for k, v in settings.items() if v is not None and v != ""}
    _check_known(settings)
    signin = _sign_in_settings(settings)
    check_endpoints(signin.cloud, settings)
    _ca_bundle(settings)
    _timeout(settings.get("timeout"))
    _policy(settings)
    if signin.kind == "certificate" and signin.certificate is not None:
        from .certs import load_certificate
        load_certificate(signin.certificate, signin.certificate_password)


class GraphConnector:
    """One signed-in Graph session for one tenant, for the whole run."""

    def __init__(self, settings: dict[str, Any], env: TargetEnv) -> None:
        _check_known(settings)
        self.log: logging.Logger = env.log
        self._event = env.event
        self.tenant = str(settings.get("tenant") or "").strip()
        self.cloud = cloud_named(settings.get("cloud"))
        self.offline = as_bool(settings.get("offline", False), "offline")
        private = Path(env.state_dir) / "private" / "graph" / _safe_name(self.tenant or "tenant")
        cache = settings.get("token_cache")
        token_cache = Path(cache).expanduser() if cache else private / "msal-cache.json"
        self.signin = _sign_in_settings(settings, token_cache=token_cache, http_cache=private,
                                        interactive=env.interactive,
                                        prompt=self._prompt)
        for warning in check_endpoints(self.cloud, settings):
            self.log.warning(warning)                 # on every run: a test opt-in is never silent
            self._event("graph.endpoint_override", message=warning)
        self.endpoint = str(settings.get("graph_endpoint") or self.cloud.graph_endpoint).rstrip("/")
        self.endpoint = self.endpoint.removesuffix("/v1.0")
        ca = _ca_bundle(settings)
        timeout = _timeout(settings.get("timeout"))
        self.policy = _policy(settings)
        self.counters = GraphCounters()
        sign_in_timeout = (SIGN_IN_CONNECT_TIMEOUT, timeout[1]) if settings.get("timeout") is None else timeout
        self.token_http = HttpSession(ca_bundle=ca, timeout=sign_in_timeout, own_retry_after=True,
                                      on_request=lambda m, u: self.counters.add_token_request(login_route(m, u)))
        self.tokens = TokenSource(self.signin, self.token_http, policy=self.policy, logger=self.log,
                                  tell=lambda text: self._event("graph.sign_in_retry", say=text))
        self.graph_http = HttpSession(ca_bundle=ca, timeout=timeout)
        self._claim = env.claim
        self._claimed = False
        self.client = GraphClient(self.endpoint, self._token, self.graph_http, timeout=timeout,
                                  policy=self.policy, counters=self.counters,
                                  before_write=self._before_write, on_event=self._on_event,
                                  logger=self.log)
        # ids earlier runs learnt, so a converged run reads everything in one $batch (known_ids.py)
        self.facts = Facts(known=KnownIds(Path(env.state_dir) / "graph" / _safe_name(self.tenant or "tenant") / "apps"))
        self._checked_write = False
        self._lock = threading.RLock()
        self._rights: dict[str, Any] | None = None

    # ---- what stages use ----------------------------------------------------------

    def begin_stage(self, deadline: float | None) -> None:
        """Called by each stage before it starts: a fresh cancel flag and its deadline."""
        self.client.cancel.clear()
        self.tokens.cancel.clear()
        self.client.deadline = deadline

    def _token(self) -> str:
        """The access token (signing in when needed). After the first sign-in the run claims
        the tenant's id as a lock, so that no other run changes this tenant however it named
        it (domain or id)."""
        token = self.tokens.token()
        if not self._claimed:
            with self._lock:
                if not self._claimed:
                    tid = str(self.tokens.claims().get("tid") or "")
                    if tid:
                        self._claim(tenant_lock_key(tid))
                    self._claimed = True
        return token

    def claims(self) -> dict[str, Any]:
        """Who signed in and what the token grants (signs in when needed)."""
        d = describe(self._granted())
        d["auth"] = self.signin.kind
        return d

    def _granted(self) -> dict[str, Any]:
        """The token's claims (signing in when needed); where it leaves out one the rights
        check needs, what Graph says instead (rights_asked.py), asked once per run."""
        self._token()
        claims = self.tokens.claims()
        if not undecided(claims):
            return claims
        if self._rights is None:
            self._rights = complete(self.client, claims)
        return self._rights

    @property
    def tenant_id(self) -> str:
        if _GUID.match(self.tenant):
            return self.tenant.lower()
        return str(self.tokens.claims().get("tid") or "")

    def require(self, *, manage_apps: bool = True, grant_roles: bool = False,
                grant_graph_roles: bool = False) -> None:
        """AuthError naming what is missing unless the token grants the rights for the work."""
        require_rights(self._granted(), manage_apps=manage_apps, grant_roles=grant_roles,
                       grant_graph_roles=grant_graph_roles)

    def app_claims(self, client_id: str, *, secret: Secret | None = None,
                   certificate: Path | None = None) -> dict[str, Any]:
        """The claims of a Graph token that another application gets with its own secret or
        certificate (client credentials), at this target's authority over its connections:
        proof that the application can sign in. AuthError as its sign-in fails."""
        from dataclasses import replace

        settings = replace(self.signin, kind="secret" if secret else "certificate", client_id=client_id,
                           client_secret=secret, certificate=certificate, certificate_password=None,
                           token_cache=None, interactive=False)
        tokens = TokenSource(settings, self.token_http, policy=self.policy, logger=self.log)
        tokens.cancel = self.tokens.cancel
        return tokens.claims()

    def metrics(self) -> dict[str, int]:
        snap = self.counters.snapshot()
        # graph_requests counts every HTTP request to the tenant, sign-in included, as the
        # service (and the simulator's counter) sees them
        return {"graph_requests": snap["requests"] + snap["token_requests"], "graph_writes": snap["writes"],
                "graph_write_operations": snap["write_operations"],
                "graph_token_requests": snap["token_requests"]}

    def routes(self) -> dict[str, int]:
        return dict(self.counters.snapshot()["by_route"])

    def interrupt(self) -> None:
        self.client.interrupt()
        self.tokens.interrupt()

    def close(self) -> None:
        try:
            self.facts.remember()
            self.tokens.close()
        finally:
            self.graph_http.close()
            self.token_http.close()

    def __enter__(self) -> GraphConnector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- internals ----------------------------------------------------------------

    def _before_write(self, method: str, path: str) -> None:
        # Every write this runner makes needs at least Application.ReadWrite.All; checking the
        # token here means no write can happen without it, whatever stage asks.
        if self._checked_write:
            return
        with self._lock:
            if not self._checked_write:
                self.require(manage_apps=True)
                self._checked_write = True

    def _on_event(self, type: str, **data: Any) -> None:
        self._event(type, **data)

    def _prompt(self, message: str) -> None:
        import sys

        print(message, file=sys.stderr, flush=True)
        self._event("graph.device_code", tenant=self.tenant, message="device-code sign-in prompt shown")


def open_target(settings: dict[str, Any], env: TargetEnv | None = None) -> GraphConnector:
    """The connector for a graph target (no network traffic until the first call)."""
    return GraphConnector(dict(settings), env or TargetEnv(name="tenant"))


def tenant_lock_key(tenant: str) -> str:
    """The lock of a tenant as written (a domain lower-cased without a trailing dot, or an id)."""
    return f"graph-tenant:{tenant.strip().lower().rstrip('.')}"


def lock_keys(settings: dict[str, Any]) -> list[str]:
    """Two runs must not change the same tenant at once: before sign-in its normalised name;
    once signed in, the connector claims its tenant id too (a run naming the tenant by its
    domain and one naming it by its id then share a lock)."""
    return [tenant_lock_key(str(settings.get("tenant") or ""))]


__all__ = ["CLOUDS", "GraphConnector", "check_settings", "lock_keys", "open_target"]
