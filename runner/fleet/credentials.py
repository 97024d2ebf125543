"""Credential references: where a fleet target's secret comes from, named in the inventory
and followed only where the target runs (this process, or a worker), so that an inventory
and a broker message carry the name of a secret, never its value.

    { env = "CONTOSO_HOST_PASSWORD" }                  an environment variable
    { file = "/etc/psrunner/contoso-host.pw" }         a file only its owner can read (0600)
    { keyring = "psrunner/contoso", username = "spo" } the OS keyring (the `keyring` library:
                                                       Windows Credential Manager, macOS
                                                       Keychain, Secret Service on Linux)
    "the value itself"                                 only in an inventory nobody else can read

A reference becomes a `Secret` when resolved, and is described in a run's `secret_sources`
(`env:NAME`, `file:PATH`, `keyring:SERVICE/USER`) like any other secret."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Mapping

from ..errors import InputError
from ..params import read_secret_file
from ..secrets import Secret

KINDS = ("env", "file", "keyring")
REFERENCE_KINDS = frozenset(KINDS)        # the `secret_sources` prefixes a worker can follow


@dataclass(frozen=True)
class CredentialRef:
    kind: str                     # env | file | keyring | literal
    name: str                     # variable, path, keyring service ("" for a literal)
    username: str = ""            # keyring only
    value: Secret | None = None   # literal only: never in a message

    @classmethod
    def parse(cls, raw: Any, where: str) -> "CredentialRef":
        """An inventory entry: a table naming one kind, or a literal string."""
        if isinstance(raw, str):
            return cls("literal", "", value=Secret(raw, where))
        if isinstance(raw, dict):
            kinds = [k for k in KINDS if k in raw]
            extra = sorted(set(raw) - set(KINDS) - {"username"})
            if len(kinds) == 1 and not extra and isinstance(raw[kinds[0]], str) and raw[kinds[0]]:
                kind = kinds[0]
                user = raw.get("username", "")
                if kind == "keyring" and not (isinstance(user, str) and user):
                    raise InputError(f"{where}: a keyring reference needs a username", input=where,
                                     hint='write { keyring = "SERVICE", username = "NAME" }')
                if kind != "keyring" and "username" in raw:
                    raise InputError(f"{where}: only a keyring reference takes a username", input=where)
                return cls(kind, raw[kind], user if kind == "keyring" else "")
        raise InputError(f"{where} is not a credential reference", input=where,
                         hint='write { env = "VAR" }, { file = "/path/0600-file" } or '
                              '{ keyring = "SERVICE", username = "NAME" }')

    @classmethod
    def from_source(cls, source: str) -> "CredentialRef":
        """The reference a `describe()` text names (`env:NAME`, `file:PATH`, `keyring:SERVICE/USER`)."""
        kind, _, rest = source.partition(":")
        if kind == "keyring":
            service, _, user = rest.rpartition("/")
            return cls(kind, service, user)
        return cls(kind, rest)

    def describe(self) -> str:
        """Where the secret came from, as a run's secret_sources says it."""
        if self.kind == "keyring":
            return f"keyring:{self.name}/{self.username}"
        return "inventory" if self.kind == "literal" else f"{self.kind}:{self.name}"

    def resolve(self, param: str, environ: Mapping[str, str] | None = None) -> Secret:
        """The secret, read now, where the target runs."""
        if self.kind == "literal" and self.value is not None:
            return self.value
        if self.kind == "env":
            value = (os.environ if environ is None else environ).get(self.name)
            if not value:
                raise InputError(f"secret {param!r}: the environment variable {self.name} is not set", input=param,
                                 hint=f"set {self.name} where the target runs (on every worker)")
            return Secret(value, param)
        if self.kind == "file":       # the same checks as --secret-file: regular, private, UTF-8
            return Secret(read_secret_file(param, self.name), param)
        return Secret(_from_keyring(self.name, self.username, param), param)


def _from_keyring(service: str, username: str, param: str) -> str:
    try:
        import keyring
        import keyring.errors
    except ImportError:
        raise InputError(f"secret {param!r} is in the OS keyring, but the keyring library is not installed",
                         input=param, hint="pip install 'psrunner[fleet]' (or keyring)") from None
    try:
        value = keyring.get_password(service, username)
    except keyring.errors.KeyringError as e:
        raise InputError(f"secret {param!r}: the OS keyring could not be read: {e}", input=param,
                         hint="unlock the keyring of the account that runs psrunner") from None
    if not value:
        raise InputError(f"secret {param!r}: the keyring holds nothing for {service} / {username}", input=param,
                         hint=f"store it once: keyring set {service} {username}")
    return value


__all__ = ["REFERENCE_KINDS", "CredentialRef"]
