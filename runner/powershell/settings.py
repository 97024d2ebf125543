"""How to reach one Windows host: `HostSettings` (validated on construction, before anything
touches the network) and `settings_from_target`, which reads a runbook's `[targets.NAME]`
block of type "psrp" into them. A bad value or combination raises InputError naming
`targets.NAME.SETTING` and the fix.

The rules follow pypsrp's WSMan options and what WinRM accepts: Basic and certificate
authentication only over HTTPS; plain HTTP only with message encryption (NTLM, Kerberos or
CredSSP), since the session would otherwise carry every SecureString key in clear."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from ..errors import InputError, setting
from ..secrets import Secret
from ..userfiles import check_ca_bundle
from ..values import as_bool, as_int, as_secret, as_text

AUTH_METHODS = ("negotiate", "kerberos", "ntlm", "credssp", "certificate", "basic")
ENCRYPTING_AUTH = ("negotiate", "kerberos", "ntlm", "credssp")
ENCRYPTION_MODES = ("auto", "always", "never")
DEFAULT_CONFIGURATION = "Microsoft.PowerShell"


@dataclass
class HostSettings:
    """How to reach one Windows host. Validated on construction: a bad combination raises
    InputError naming the setting, before anything touches the network."""
    host: str
    port: int | None = None
    ssl: bool = True
    cert_validation: bool | str = True      # True | path to a CA bundle (PEM) | False
    path: str = "wsman"
    auth: str = "negotiate"
    username: str | None = None
    password: Secret | None = None
    certificate_pem: str | None = None      # certificate auth: client certificate (PEM path)
    certificate_key_pem: str | None = None  # certificate auth: its private key (PEM path)
    encryption: str = "auto"
    configuration_name: str = DEFAULT_CONFIGURATION
    connection_timeout: int = 30
    read_timeout: int = 30
    operation_timeout: int = 20
    proxy: str | None = None
    no_proxy: bool = False
    label: str = "host"                     # how errors name the target ("targets.<name>")
    # Kerberos: the host name in its service principal (HTTP/NAME) when connecting by an
    # address or an alias; the ticket is asked for that name (pypsrp's
    # negotiate_hostname_override)
    spn_host: str | None = None

    def __post_init__(self) -> None:
        self.password = as_secret(self.password, f"{self.label}.password", name="psrp password")
        self.validate()

    def _bad(self, setting: str, message: str, hint: str | None = None) -> InputError:
        return InputError(f"{self.label}.{setting}: {message}", input=f"{self.label}.{setting}", hint=hint)

    @property
    def effective_port(self) -> int:
        return self.port if self.port is not None else (5986 if self.ssl else 5985)

    @property
    def endpoint(self) -> str:
        return f"{'https' if self.ssl else 'http'}://{self.host}:{self.effective_port}/{self.path.lstrip('/')}"

    def validate(self) -> None:
        if not isinstance(self.host, str) or not self.host.strip() or any(c in self.host for c in "/ \t@?#"):
            raise self._bad("host", f"{self.host!r} is not a host name or address",
                            f"give the name or IP only, e.g. {setting('host', 'win01.contoso.com')}")
        if self.port is not None and (isinstance(self.port, bool) or not isinstance(self.port, int)
                                      or not 0 < self.port < 65536):
            raise self._bad("port", f"{self.port!r} is not a TCP port", "use 5986 for HTTPS, 5985 for HTTP")
        if self.auth not in AUTH_METHODS:
            raise self._bad("auth", f"{self.auth!r} is not supported", "use one of: " + ", ".join(AUTH_METHODS))
        if self.encryption not in ENCRYPTION_MODES:
            raise self._bad("encryption", f"{self.encryption!r} is not supported",
                            "use one of: " + ", ".join(ENCRYPTION_MODES))
        if not self.ssl:
            if self.encryption == "never":
                raise self._bad("encryption", "plain HTTP without message encryption would send the session "
                                "(and every SecureString key) in clear",
                                f"use HTTPS ({setting('ssl', 'true')}), or keep {setting('encryption', 'auto')} "
                                "with NTLM/Kerberos/CredSSP")
            if self.auth not in ENCRYPTING_AUTH:
                raise self._bad("auth", f"{self.auth} authentication works only over HTTPS",
                                f"use HTTPS ({setting('ssl', 'true')}, port 5986), or {setting('auth', 'negotiate')} "
                                "(or kerberos, ntlm, credssp) with message encryption over HTTP")
        elif self.encryption == "always" and self.auth not in ENCRYPTING_AUTH:
            raise self._bad("encryption", f"message encryption needs NTLM, Kerberos or CredSSP, not {self.auth}",
                            f"set {setting('encryption', 'auto')} (HTTPS already encrypts)")
        if self.auth in ("basic", "ntlm", "credssp") and (not self.username or not self.password):
            raise self._bad("username" if not self.username else "password",
                            f"{self.auth} authentication needs a username and a password",
                            f"give {setting('username')} and {setting('password')}")
        if self.auth == "certificate":
            for name in ("certificate_pem", "certificate_key_pem"):
                value = getattr(self, name)
                if not value or not os.path.isfile(value):
                    raise self._bad(name, f"certificate authentication needs {name} (a readable PEM file), "
                                    f"got {value!r}")
        if isinstance(self.cert_validation, str):
            if not os.path.exists(self.cert_validation):
                raise self._bad("ca_bundle", f"CA bundle {self.cert_validation!r} does not exist",
                                f"give {setting('ca_bundle')}: the PEM file of the CA that signed the host's WinRM "
                                "HTTPS certificate")
            try:
                check_ca_bundle(self.cert_validation, input=f"{self.label}.ca_bundle")
            except InputError as e:
                raise self._bad("ca_bundle", e.message, e.hint) from None
        elif not isinstance(self.cert_validation, bool):
            raise self._bad("cert_validation", "must be true, false or a CA bundle path")
        for name in ("connection_timeout", "read_timeout", "operation_timeout"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise self._bad(name, f"{v!r} is not a positive whole number of seconds")
        if self.read_timeout <= self.operation_timeout:
            raise self._bad("read_timeout", f"must be longer than operation_timeout ({self.operation_timeout} s): "
                            f"the server answers a long poll only when the operation timeout ends")
        if self.spn_host is not None:
            if self.auth not in ("negotiate", "kerberos"):
                raise self._bad("spn_host", f"a service principal name means Kerberos, not {self.auth}",
                                f"set {setting('auth', 'kerberos')}, or leave {setting('spn_host')} out")
            if not self.spn_host.strip() or any(c in self.spn_host for c in "/ \t@:"):
                raise self._bad("spn_host", f"{self.spn_host!r} is not a host name",
                                f"give the name in the host's HTTP/ service principal, e.g. "
                                f"{setting('spn_host', 'win01.contoso.com')}")
        if not self.configuration_name or any(c in self.configuration_name for c in "/ \t"):
            raise self._bad("configuration_name", f"{self.configuration_name!r} is not a session configuration name",
                            "e.g. Microsoft.PowerShell, or the name of a JEA endpoint")


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
    "spn_host": "spn_host",
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
            raise InputError(f"{label}: scheme and ssl disagree", input=f"{label}.ssl",
                             hint=f"give only {setting('ssl')}")
        ssl = ssl_value
    kw["ssl"] = ssl

    validation: bool | str = True
    if "cert_validation" in given:
        validation = as_bool(given["cert_validation"], f"{label}.cert_validation")
    if "ca_bundle" in given:
        if validation is False:
            raise InputError(f"{label}: ca_bundle and cert_validation = false contradict each other",
                             input=f"{label}.cert_validation",
                             hint=f"keep validation on and give {setting('ca_bundle')}")
        if not isinstance(given["ca_bundle"], str):
            raise InputError(f"{label}.ca_bundle: must be a file path", input=f"{label}.ca_bundle")
        validation = given["ca_bundle"]
    kw["cert_validation"] = validation
    kw.setdefault("configuration_name", DEFAULT_CONFIGURATION)
    if "host" not in kw:
        raise InputError(f"{label}.host: not set", input=f"{label}.host",
                         hint=f"give the Windows host's name, e.g. {setting('host', 'win01.contoso.com')}")
    return HostSettings(**kw)
