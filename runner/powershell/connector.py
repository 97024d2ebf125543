"""The `psrp` target: a runbook's `[targets.<name>]` block turned into a HostConnector.

Opening reads and checks the settings only; the network is touched on the first `invoke()`
(one runspace pool per host per run, see session.py). Bad settings raise InputError naming
`targets.<name>.<setting>` and the fix."""

from __future__ import annotations

from typing import Any

import logging

from ..errors import InputError
from ..registry import TargetEnv
from ..values import as_bool, as_int, as_secret, as_text
from .session import DEFAULT_CONFIGURATION, HostSession, HostSettings, Invocation

# setting name -> HostSettings field (aliases the runbook may use on the left)
_ALIASES = {
    "host": "host", "server": "host",
    "port": "port",
    "path": "path",
    "auth": "auth",
    "username": "username", "user": "username",
    "password": "password",
    "certificate_pem": "certificate_pem", "certificate_key_pem": "certificate_key_pem",
    "key_pem": "certificate_key_pem",
    "encryption": "encryption",
    "configuration_name": "configuration_name",
    "connection_timeout": "connection_timeout", "read_timeout": "read_timeout",
    "operation_timeout": "operation_timeout",
    "proxy": "proxy", "no_proxy": "no_proxy",
}
_SPECIAL = {"scheme", "ssl", "ca_bundle", "cert_validation", "timeouts", "type", "description"}
_TIMEOUT_KEYS = {"connect": "connection_timeout", "connection": "connection_timeout", "read": "read_timeout",
                 "operation": "operation_timeout"}


def settings_from_target(settings: dict[str, Any], name: str = "host") -> HostSettings:
    """HostSettings from a target block. Empty values mean "not set" (the runbook fills
    targets from parameters whose default is empty)."""
    label = f"targets.{name}"
    given = {k: v for k, v in settings.items() if v is not None and not (isinstance(v, str) and v == "")}
    unknown = sorted(k for k in given if k not in _ALIASES and k not in _SPECIAL)
    if unknown:
        raise InputError(f"{label}: unknown setting(s) {', '.join(unknown)}", input=f"{label}.{unknown[0]}",
                         hint="psrp targets take: "
                         + ", ".join(sorted(set(_ALIASES) | _SPECIAL - {"type", "description"})))
    kw: dict[str, Any] = {"label": label}
    for key, value in given.items():
        field = _ALIASES.get(key)
        if field is None:
            continue
        where = f"{label}.{key}"
        if field in ("port", "connection_timeout", "read_timeout", "operation_timeout"):
            value = as_int(value, where)
        elif field == "no_proxy":
            value = as_bool(value, where)
        elif field == "password":
            value = as_secret(value, where, name="psrp password")
            if value is None:
                continue
        else:
            value = as_text(value, where)
        kw[field] = value
    timeouts = given.get("timeouts")
    if timeouts is not None:
        if not isinstance(timeouts, dict):
            raise InputError(f"{label}.timeouts: must be a table like {{ connect = 30, read = 60, operation = 20 }}",
                             input=f"{label}.timeouts")
        for k, v in timeouts.items():
            if k not in _TIMEOUT_KEYS:
                raise InputError(f"{label}.timeouts.{k}: unknown timeout", input=f"{label}.timeouts.{k}",
                                 hint="use connect, read or operation")
            kw[_TIMEOUT_KEYS[k]] = as_int(v, f"{label}.timeouts.{k}")

    ssl = True
    if "scheme" in given:
        scheme = str(given["scheme"]).lower()
        if scheme not in ("https", "http"):
            raise InputError(f"{label}.scheme: {given['scheme']!r} is not https or http", input=f"{label}.scheme")
        ssl = scheme == "https"
    if "ssl" in given:
        ssl_value = as_bool(given["ssl"], f"{label}.ssl")
        if "scheme" in given and ssl_value != ssl:
            raise InputError(f"{label}: scheme and ssl disagree", input=f"{label}.ssl", hint="give one of them")
        ssl = ssl_value
    kw["ssl"] = ssl

    validation: bool | str = True
    if "cert_validation" in given:
        validation = as_bool(given["cert_validation"], f"{label}.cert_validation")
    if "ca_bundle" in given:
        if validation is False:
            raise InputError(f"{label}: ca_bundle and cert_validation = false contradict each other",
                             input=f"{label}.cert_validation", hint="keep validation on and give the CA bundle")
        if not isinstance(given["ca_bundle"], str):
            raise InputError(f"{label}.ca_bundle: must be a file path", input=f"{label}.ca_bundle")
        validation = given["ca_bundle"]
    kw["cert_validation"] = validation
    kw.setdefault("configuration_name", DEFAULT_CONFIGURATION)
    if "host" not in kw:
        raise InputError(f"{label}.host: not set", input=f"{label}.host",
                         hint="give the Windows host's name, e.g. -p host=win01.contoso.com")
    return HostSettings(**kw)


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


__all__ = ["HostConnector", "check_settings", "lock_key", "open_target", "settings_from_target"]
