"""Local accounts for sites without Entra ID: a TOML file of people, their roles and a
password hash each, written by `psrunner accounts set` (0600: hashes are still worth
guarding).

    [accounts.hdesk1]
    name = "Helen Desk"
    roles = ["helpdesk"]
    password = "scrypt$131072$8$1$<salt>$<hash>"

Passwords are hashed with scrypt (hashlib, RFC 7914) at the cost OWASP's Password Storage
Cheat Sheet gives as its minimum for scrypt: N = 2^17, r = 8, p = 1 (128 MiB, a few hundred
milliseconds here), a 16-byte random salt and a 32-byte key. The parameters are stored with
each hash, so raising them later leaves older hashes readable. The file is read again at
every sign-in, so an edit takes effect without a restart."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from ..runbook_loader import ROLE_RE
from ..secrets import Secret, write_private
from .tomlfile import read_toml

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2 ** 17, 8, 1       # OWASP Password Storage Cheat Sheet (scrypt)
SALT_BYTES, KEY_BYTES = 16, 32
NAME_RE = ROLE_RE
MIN_PASSWORD = 12


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def hash_password(password: Secret, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> str:
    salt = os.urandom(SALT_BYTES)
    key = _scrypt(password.reveal(), salt, n, r, p)
    return f"scrypt${n}${r}${p}${_b64(salt)}${_b64(key)}"


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    # hashlib refuses more than 32 MiB unless told: allow what these parameters need, and some
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=KEY_BYTES,
                          maxmem=129 * r * n * p + 1024 * 1024)


def verify_password(stored: str, candidate: str) -> bool:
    """True when `candidate` matches `stored` (constant-time comparison).

    A candidate is plain text, not a Secret: a Secret's value joins the redaction registry,
    and every mistyped guess would then mask that word wherever it appears, for the life of
    the process. The candidate is compared and dropped, never written anywhere."""
    try:
        scheme, n, r, p, salt, key = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(key)
        got = _scrypt(candidate, base64.b64decode(salt), int(n), int(r), int(p))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, expected)


# an unknown name costs as much as a wrong password, so timing does not tell which names exist
_DUMMY = f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(b'0' * SALT_BYTES)}${_b64(b'0' * KEY_BYTES)}"


@dataclass(frozen=True)
class Account:
    name: str
    display: str
    roles: tuple[str, ...]
    password_hash: str


def load_accounts(path: Path) -> dict[str, Account]:
    data = read_toml(path, what="accounts file", input="accounts", missing_ok=True)
    out = {}
    for name, spec in (data.get("accounts") or {}).items():
        if not isinstance(spec, dict) or not isinstance(spec.get("password"), str):
            raise InputError(f"{path}: accounts.{name}: needs a password hash", input="accounts",
                             hint=f"set it with `psrunner accounts set {path} {name} --role ROLE`")
        roles = spec.get("roles", [])
        out[name] = Account(name, str(spec.get("name") or name), tuple(r for r in roles if isinstance(r, str)),
                            spec["password"])
    return out


def authenticate(path: Path, name: str, candidate: str) -> Account | None:
    """The account when `candidate` is its password; None otherwise (unknown names take as
    long, so timing does not tell which names exist)."""
    account = load_accounts(path).get(name)
    ok = verify_password(account.password_hash if account else _DUMMY, candidate)
    return account if ok and account is not None else None


def known(path: Path, name: str) -> bool:
    return name in load_accounts(path)


def set_account(path: Path, name: str, password: Secret, roles: tuple[str, ...], display: str = "",
                *, cost: int = SCRYPT_N) -> Account:
    """Add or replace one account, keeping the others; the file is written 0600."""
    if not NAME_RE.match(name):
        raise InputError(f"account name {name!r} is not allowed", input="NAME",
                         hint="letters, digits, _ . -; starting with a letter")
    for role in roles:
        if not ROLE_RE.match(role):
            raise InputError(f"--role {role!r} is not a role name", input="--role")
    if len(password.reveal()) < MIN_PASSWORD:
        raise InputError(f"the password is shorter than {MIN_PASSWORD} characters", input="password",
                         hint="choose a longer one (a passphrase of a few words is good)")
    accounts = load_accounts(path)
    accounts[name] = Account(name, display or name, tuple(roles), hash_password(password, n=cost))
    lines = ["# psrunner portal accounts: written by `psrunner accounts set`", ""]
    for a in accounts.values():
        lines += [f"[accounts.{json.dumps(a.name)}]", f"name = {json.dumps(a.display)}",
                  f"roles = {json.dumps(list(a.roles))}", f"password = {json.dumps(a.password_hash)}", ""]
    write_private(path, "\n".join(lines))
    return accounts[name]
