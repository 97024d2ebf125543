"""The `psrp` target: a runbook's `[targets.<name>]` block turned into a HostConnector.

Opening reads and checks the settings only (settings.py); the network is touched on the
first `invoke()` (one runspace pool per host per run, see session.py). Bad settings raise
InputError naming `targets.<name>.<setting>` and the fix."""

from __future__ import annotations

import logging
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


def lock_key(settings: dict[str, Any]) -> str:
    """Two runs must not change the same host (and port) at once."""
    return f"psrp:{str(settings.get('host', '')).lower()}:{settings.get('port', '')}"


__all__ = ["HostConnector", "check_settings", "lock_key", "open_target"]
