"""The `psrp` target: a runbook's `[targets.<name>]` block turned into a HostConnector.

Opening reads and checks the settings only (settings.py); the network is touched on the
first `invoke()` (one runspace pool per host per run, see session.py). Bad settings raise
InputError naming `targets.<name>.<setting>` and the fix."""

from __future__ import annotations

import logging
import threading
from typing import Any

from ..registry import TargetEnv
from .result import Invocation
from .session import HostSession
from .settings import HostSettings, settings_from_target


class HostConnector:
    """What stages use to run PowerShell on one host (stages.base.HostTarget; the engine's
    Connector). A context manager: leaving it closes the session's runspace pool."""

    def __init__(self, settings: HostSettings, env: TargetEnv | None = None) -> None:
        self.settings = settings
        self.env = env or TargetEnv(name=settings.host, log=logging.getLogger("psrunner.psrp"))
        self.session = HostSession(settings, log=self.env.log)
        self.name = self.env.name

    @property
    def host(self) -> str:
        return self.settings.host

    def invoke(self, script: str, parameters: dict[str, Any] | None = None, *,
               secure: set[str] | frozenset[str] = frozenset(), deadline: float | None = None,
               label: str | None = None) -> Invocation:
        inv = self.session.invoke(script, parameters, secure=secure, deadline=deadline, label=label)
        self.env.event("psrp.invoke", label=label, state=inv.state, failed=inv.failed,
                       duration=round(inv.duration, 3), wsman_requests=inv.wsman_requests,
                       pool_opened=inv.pool_opened)
        return inv

    def metrics(self) -> dict[str, int]:
        return self.session.metrics()

    def interrupt(self) -> None:
        self.session.interrupt()

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> HostConnector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_target(settings: dict[str, Any], env: TargetEnv | None = None) -> HostConnector:
    """Open (lazily) the psrp target described by `settings`. No network traffic here."""
    return HostConnector(settings_from_target(settings, env.name if env else "host"), env)


def check_settings(settings: dict[str, Any], name: str = "host") -> None:
    """Every check opening the target makes (InputError naming targets.NAME.SETTING)."""
    settings_from_target(settings, name)


def canonical_host(host: str) -> str:
    """A host name as locks compare it: lower case, no trailing dot, no IPv6 brackets
    (`MGMT01.contoso.local.` and `mgmt01.contoso.local` are one host)."""
    return host.strip().lower().rstrip(".").removeprefix("[").removesuffix("]")


def _addresses(host: str, timeout: float = 2.0) -> list[str]:
    """The addresses `host` resolves to, or none when it does not resolve within `timeout`
    (getaddrinfo takes no timeout, so it runs on a thread that is left behind if slow)."""
    import socket

    found: list[str] = []

    def look() -> None:
        try:
            found.extend(sorted({info[4][0] for info in socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)}))
        except (OSError, UnicodeError, ValueError):
            pass

    t = threading.Thread(target=look, name="resolve-lock-key", daemon=True)
    t.start()
    t.join(timeout)
    return list(found) if not t.is_alive() else []


def lock_keys(settings: dict[str, Any]) -> list[str]:
    """Two runs must not change the same host at once, whatever name or listener each uses:
    the canonical name and, where it resolves, each of its addresses (`localhost`,
    `localhost.` and `127.0.0.1` are one host; the port is not part of it)."""
    name = canonical_host(str(settings.get("host") or settings.get("server") or ""))
    return [f"psrp:{name}"] + [f"psrp-address:{a}" for a in _addresses(name)]


__all__ = ["HostConnector", "check_settings", "lock_keys", "open_target"]
