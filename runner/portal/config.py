"""The portal's configuration: where it listens, how people sign in, the policy, and what
the server itself holds for each runbook (the parameters a helpdesk never types: the host,
the service account, its password).

    [server]
    listen = "0.0.0.0:8443"
    tls_cert = "/etc/psrunner/portal.pem"          # or public_url = "https://..." behind a TLS proxy
    tls_key = "/etc/psrunner/portal.key"
    runbooks = ["/etc/psrunner/runbooks"]          # searched first, as --runbooks
    workers = 4                                    # runs at once on the portal's own threads
    # broker = "redis://celery-broker:6379/0"      # or: runs go to `psrunner worker`s (Celery)

    [entra]                                        # sign-in with Entra ID (OpenID Connect)
    tenant = "contoso.onmicrosoft.com"
    client_id = "..."
    client_secret_file = "/etc/psrunner/portal-client-secret"   # or client_secret_env

    accounts = "accounts.toml"                     # local accounts (psrunner accounts set)
    policy = "policy.toml"                         # roles (policy.py)

    [runbooks.ad-unlock-account]                   # what the server holds for this runbook
    params_file = "ad.toml"                        # name = value, as --params-file
    params = { host = "dc01.contoso.com" }         # and/or inline
    secret_files = { host_password = "/etc/psrunner/host_password" }
    max_concurrent = 2                             # plans and runs at once (default 2)

Relative paths are taken from the configuration file's folder. Secret parameters the server
holds come from `secret_files` or the environment variable `psrunner show` names (as for
the CLI); they never reach a browser. Without a configuration file the portal listens on
127.0.0.1, prints a one-time sign-in link and lets the person who opens it do everything."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..errors import InputError
from ..params import load_params_file
from ..secrets import Secret
from ..userfiles import read_text
from .policy import Policy, default_policy, load_policy
from .tomlfile import read_toml

DEFAULT_LISTEN = ("127.0.0.1", 8765)
DEFAULT_MAX_CONCURRENT = 2
ENTRA_HOST = "https://login.microsoftonline.com"
TOP_KEYS = {"server", "entra", "accounts", "policy", "runbooks"}
SERVER_KEYS = {"listen", "tls_cert", "tls_key", "public_url", "runbooks", "workers", "state_dir", "broker"}
ENTRA_KEYS = {"tenant", "client_id", "client_secret_file", "client_secret_env", "authority_host", "ca_bundle"}
SETUP_KEYS = {"params", "params_file", "secret_files", "max_concurrent"}


@dataclass
class RunbookSetup:
    """What the server gives one runbook: parameters nobody types in the portal."""
    params: dict[str, Any] = field(default_factory=dict)
    secret_files: dict[str, str] = field(default_factory=dict)
    max_concurrent: int = DEFAULT_MAX_CONCURRENT


@dataclass
class EntraSetup:
    tenant: str
    client_id: str
    client_secret: Secret
    authority_host: str = ENTRA_HOST
    ca_bundle: str | None = None

    @property
    def authority(self) -> str:
        return f"{self.authority_host.rstrip('/')}/{self.tenant}"


@dataclass
class PortalConfig:
    host: str = DEFAULT_LISTEN[0]
    port: int = DEFAULT_LISTEN[1]
    tls_cert: Path | None = None
    tls_key: Path | None = None
    public_url: str | None = None       # what browsers use, when a TLS proxy stands in front
    runbook_dirs: tuple[Path, ...] = ()
    state_dir: Path | None = None
    workers: int = 4
    broker: str | None = None           # runs go to Celery workers through this broker
    entra: EntraSetup | None = None
    accounts: Path | None = None
    policy: Policy = field(default_factory=default_policy)
    runbooks: dict[str, RunbookSetup] = field(default_factory=dict)
    link_roles: tuple[str, ...] | None = ("admin",)   # roles of the one-time link; None: no link
    source: str = "<defaults>"

    @property
    def secure(self) -> bool:
        """Browsers reach the portal over HTTPS (its own TLS, or a proxy's)."""
        return self.tls_cert is not None or (self.public_url or "").startswith("https://")

    def base_url(self, port: int | None = None) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        scheme = "https" if self.tls_cert else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{port or self.port}"

    def setup(self, runbook: str) -> RunbookSetup:
        return self.runbooks.get(runbook) or RunbookSetup()

    def check_listen(self) -> None:
        """Plain HTTP only where it cannot leave the machine (loopback), or behind a
        declared TLS proxy."""
        if self.secure or _loopback(self.host):
            return
        raise InputError(f"the portal would serve plain HTTP on {self.host}, where passwords and session "
                         "cookies could be read on the network", input="listen",
                         hint="give [server] tls_cert and tls_key, or [server] public_url (https://...) when a TLS "
                              "proxy stands in front, or listen on 127.0.0.1")


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_listen(text: str, where: str = "--listen") -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise InputError(f"{where} {text!r} is not HOST:PORT", input=where, hint="e.g. 127.0.0.1:8765 (port 0: any free one)")
    return host, int(port)


def load_config(path: str | Path) -> PortalConfig:
    p = Path(path).resolve()
    return parse_config(read_toml(p, what="configuration file", input="--config", hint="see docs/portal.md for its form"), p)


def parse_config(data: dict[str, Any], path: Path) -> PortalConfig:
    folder = path.parent
    src = str(path)

    def fail(key: str, message: str, hint: str | None = None) -> InputError:
        return InputError(f"{src}: {key}: {message}", input=key, hint=hint)

    def keys(table: Any, allowed: set[str], where: str) -> dict[str, Any]:
        if not isinstance(table, dict):
            raise fail(where, "must be a table")
        for k in table:
            if k not in allowed:
                raise fail(f"{where}.{k}".lstrip("."), "unknown key", "allowed: " + ", ".join(sorted(allowed)))
        return table

    def path_of(value: Any, key: str) -> Path:
        if not isinstance(value, str) or not value:
            raise fail(key, "must be a path")
        return (folder / Path(value).expanduser()).resolve()

    keys(data, TOP_KEYS, "")
    cfg = PortalConfig(source=src)
    server = keys(data.get("server", {}), SERVER_KEYS, "server")
    if "listen" in server:
        cfg.host, cfg.port = parse_listen(str(server["listen"]), "server.listen")
    if "tls_cert" in server or "tls_key" in server:
        cfg.tls_cert, cfg.tls_key = path_of(server.get("tls_cert"), "server.tls_cert"), path_of(server.get("tls_key"), "server.tls_key")
        for key, f in (("server.tls_cert", cfg.tls_cert), ("server.tls_key", cfg.tls_key)):
            if not f.is_file():
                raise fail(key, f"no such file: {f}")
    if "public_url" in server:
        url = str(server["public_url"])
        if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).netloc:
            raise fail("server.public_url", f"{url!r} is not an http(s) URL", "e.g. https://portal.contoso.com")
        cfg.public_url = url
    cfg.runbook_dirs = tuple(path_of(d, "server.runbooks") for d in server.get("runbooks", []))
    if "state_dir" in server:
        cfg.state_dir = path_of(server["state_dir"], "server.state_dir")
    workers = server.get("workers", cfg.workers)
    if not isinstance(workers, int) or isinstance(workers, bool) or not 1 <= workers <= 64:
        raise fail("server.workers", f"{workers!r} is not a number of workers from 1 to 64")
    cfg.workers = workers
    if "broker" in server:
        broker = server["broker"]
        if not isinstance(broker, str) or urlsplit(broker).scheme not in ("redis", "rediss", "amqp", "amqps"):
            raise fail("server.broker", f"{broker!r} is not a broker URL", "e.g. redis://celery-broker:6379/0")
        cfg.broker = broker

    if "entra" in data:
        e = keys(data["entra"], ENTRA_KEYS, "entra")
        for k in ("tenant", "client_id"):
            if not isinstance(e.get(k), str) or not e[k]:
                raise fail(f"entra.{k}", "is required")
        authority = str(e.get("authority_host") or ENTRA_HOST)
        _check_authority(authority, fail)
        cfg.entra = EntraSetup(tenant=e["tenant"], client_id=e["client_id"],
                               client_secret=_client_secret(e, fail, path_of),
                               authority_host=authority,
                               ca_bundle=str(path_of(e["ca_bundle"], "entra.ca_bundle")) if e.get("ca_bundle") else None)
    if "accounts" in data:
        cfg.accounts = path_of(data["accounts"], "accounts")
    if "policy" in data:
        cfg.policy = load_policy(path_of(data["policy"], "policy"))
    if cfg.entra or cfg.accounts:
        cfg.link_roles = None          # people sign in as themselves
    for name, spec in keys(data.get("runbooks", {}), set(data.get("runbooks", {})), "runbooks").items():
        spec = keys(spec, SETUP_KEYS, f"runbooks.{name}")
        setup = RunbookSetup()
        if "params_file" in spec:
            setup.params.update(load_params_file(str(path_of(spec["params_file"], f"runbooks.{name}.params_file"))))
        setup.params.update(keys(spec.get("params", {}), set(spec.get("params", {})), f"runbooks.{name}.params"))
        for pname, f in keys(spec.get("secret_files", {}), set(spec.get("secret_files", {})),
                             f"runbooks.{name}.secret_files").items():
            setup.secret_files[pname] = str(path_of(f, f"runbooks.{name}.secret_files.{pname}"))
        limit = spec.get("max_concurrent", DEFAULT_MAX_CONCURRENT)
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise fail(f"runbooks.{name}.max_concurrent", f"{limit!r} is not a positive whole number")
        setup.max_concurrent = limit
        cfg.runbooks[name] = setup
    return cfg


def _check_authority(url: str, fail) -> None:
    """The portal's client secret and people's sign-in codes go to the authority: a Microsoft
    cloud's sign-in host over HTTPS, or another only where the environment says this is a test
    or simulator (the rule graph/endpoints.py applies to runbooks)."""
    from ..graph.auth import CLOUDS
    from ..graph.endpoints import ALLOW_ENV, test_endpoints_allowed
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise fail("entra.authority_host", f"{url!r} is not an https:// address", "leave it out for Microsoft's own")
    if parts.netloc.lower() not in {urlsplit(c.authority_host).netloc for c in CLOUDS.values()} \
            and not test_endpoints_allowed():
        raise fail("entra.authority_host", f"{parts.hostname} is not a Microsoft sign-in service; the portal sends "
                   "its client secret there", f"leave it out; for a simulator, set {ALLOW_ENV}=1 in the environment")


def _client_secret(e: dict[str, Any], fail, path_of) -> Secret:
    if e.get("client_secret_file"):
        f = path_of(e["client_secret_file"], "entra.client_secret_file")
        if not f.is_file():
            raise fail("entra.client_secret_file", f"no such file: {f}")
        return Secret(read_text(f, what="entra client secret file", input="entra.client_secret_file").strip(),
                      "entra client secret")
    var = e.get("client_secret_env") or "PSRUNNER_PORTAL_CLIENT_SECRET"
    if not os.environ.get(var):
        raise fail("entra.client_secret_env", f"the environment variable {var} is not set",
                   "set it to the web app's client secret, or give client_secret_file")
    return Secret(os.environ[var], "entra client secret")
