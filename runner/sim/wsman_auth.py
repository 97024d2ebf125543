"""Authentication and WinRM message encryption for the host simulator.

- Basic: checked per request (requests sends it pre-emptively). Like WinRM's default
  (AllowUnencrypted=false), Basic over plain HTTP is refused with 401.
- NTLM / Negotiate / Kerberos: pyspnego's acceptor, one security context per TCP connection
  as HTTP.sys keeps it; once a connection is authenticated its later requests need no header.
  Over HTTP the bodies are sealed with that context ("multipart/encrypted" as MS-WSMV 2.2.9.1
  and pypsrp's `WinRMEncryption` shape them; the answer names the protocol the request named,
  HTTP-SPNEGO- or HTTP-Kerberos-session-encrypted).
- Kerberos needs a real KDC and the host's keytab: GSSAPI finds the acceptor's keys through
  KRB5_KTNAME, which is process-wide, so a running Kerberos simulator points it at its keytab
  (KEYTABS) and puts the previous value back when it stops; one keytab at a time.
- pyspnego's NTLM acceptor reads its user store from the file named by `NTLM_USER_FILE`
  at each authentication. The store is process-wide, so every running NTLM simulator
  registers its account in one shared 0600 temp file and the variable points at it while any
  such simulator runs (the previous value is restored when the last one stops)."""

from __future__ import annotations

import base64
import binascii
import hmac
import os
import re
import struct
import tempfile
import threading
from pathlib import Path

from ..secrets import write_private

ENCRYPTED_PROTOCOL = "application/HTTP-SPNEGO-session-encrypted"
BOUNDARY = "Encrypted Boundary"
_AUTH_HEADER = re.compile(r"^\s*(Negotiate|NTLM|Kerberos)\s+(\S+)\s*$", re.IGNORECASE)


class AuthFailed(Exception):
    """The request carries credentials that do not authenticate (answer 401)."""


def check_basic(header: str | None, username: str, password: str) -> bool:
    if not header or not header.lower().startswith("basic "):
        return False
    try:
        raw = base64.b64decode(header.split(None, 1)[1], validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, IndexError):
        return False
    user, _, pw = raw.partition(":")
    # WinRM accepts local accounts as "user", ".\user" or "HOST\user"
    user = user.rsplit("\\", 1)[-1]
    return hmac.compare_digest(user.lower().encode(), username.lower().encode()) and \
        hmac.compare_digest(pw.encode(), password.encode())


class NegotiateState:
    """The NTLM/Negotiate/Kerberos security context of one HTTP connection."""

    def __init__(self) -> None:
        self.context = None
        self.scheme = "Negotiate"
        self.sealing = ENCRYPTED_PROTOCOL       # the protocol the client names in sealed bodies

    @property
    def complete(self) -> bool:
        return self.context is not None and self.context.complete

    @property
    def principal(self) -> str | None:
        """Who authenticated (`user@REALM` for Kerberos, `DOMAIN\\user` for NTLM)."""
        return getattr(self.context, "client_principal", None) if self.complete else None

    @property
    def mechanism(self) -> str | None:
        """"kerberos" or "ntlm": what the negotiation settled on."""
        return getattr(self.context, "negotiated_protocol", None) if self.complete else None

    def step(self, header: str) -> bytes | None:
        """Feed the client's Authorization header; return the token to answer with (or None).
        Raises AuthFailed when the token is rejected (bad password, malformed)."""
        import spnego
        from spnego.exceptions import SpnegoError

        m = _AUTH_HEADER.match(header or "")
        if not m:
            raise AuthFailed("no Negotiate token")
        try:
            token = base64.b64decode(m.group(2))
        except binascii.Error:
            raise AuthFailed("token is not base64") from None
        self.scheme = m.group(1).capitalize() if m.group(1).lower() != "ntlm" else "NTLM"
        if self.context is None or self.context.complete:
            protocol = "ntlm" if token.startswith(b"NTLMSSP\x00") else "negotiate"
            self.context = spnego.server(protocol=protocol)
        try:
            return self.context.step(token)
        except SpnegoError as exc:
            self.context = None
            raise AuthFailed(str(exc)) from None

    def unwrap(self, body: bytes, content_type: str) -> bytes:
        """Decrypt a multipart/encrypted request body."""
        m = re.search(r'boundary="?([^";]+)"?', content_type)
        boundary = (m.group(1) if m else BOUNDARY).encode()
        named = re.search(r'protocol="?([^";]+)"?', content_type)
        self.sealing = named.group(1) if named else ENCRYPTED_PROTOCOL
        parts = [p for p in re.split(b"--" + re.escape(boundary) + b"\r\n", body) if p]
        out = b""
        for i in range(0, len(parts) - 1, 2):
            head, payload = parts[i], parts[i + 1]
            lm = re.search(rb"Length=(\d+)", head)
            payload = re.sub(b"--" + re.escape(boundary) + b"--\r\n$", b"", payload)
            payload = payload.replace(b"\tContent-Type: application/octet-stream\r\n", b"", 1)
            (hlen,) = struct.unpack("<I", payload[:4])
            clear = self.context.unwrap_winrm(payload[4:4 + hlen], payload[4 + hlen:])
            if lm and int(lm.group(1)) != len(clear):
                raise AuthFailed("encrypted length does not match")
            out += clear
        return out

    def wrap(self, message: bytes) -> tuple[str, bytes]:
        """Encrypt a response body; returns (content type, body)."""
        res = self.context.wrap_winrm(message)
        sealed = struct.pack("<I", len(res.header)) + res.header + res.data
        head = (
            f"--{BOUNDARY}\r\n\tContent-Type: {self.sealing}\r\n"
            f"\tOriginalContent: type=application/soap+xml;charset=UTF-8;Length={len(message) + res.padding_length}\r\n"
            f"--{BOUNDARY}\r\n\tContent-Type: application/octet-stream\r\n"
        ).encode()
        body = head + sealed + f"--{BOUNDARY}--\r\n".encode()
        return f'multipart/encrypted;protocol="{self.sealing}";boundary="{BOUNDARY}"', body


class _NTLMUserStore:
    """The process-wide NTLM_USER_FILE shared by running simulators (see module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[int, list[str]] = {}
        self._dir: Path | None = None
        self._saved_env: str | None = None

    def register(self, key: int, username: str, password: str, computer: str) -> None:
        if any(c in f"{username}{password}{computer}" for c in ":\r\n"):
            from ..errors import InputError
            raise InputError("The host simulator's NTLM account cannot contain ':' or line breaks.",
                             input="username/password", hint="choose a username and password without ':'")
        with self._lock:
            self._entries[key] = [f":{username}:{password}", f"{computer}:{username}:{password}"]
            self._write()

    def unregister(self, key: int) -> None:
        with self._lock:
            if self._entries.pop(key, None) is None:
                return
            if self._entries:
                self._write()
                return
            if self._dir is not None:
                for f in self._dir.iterdir():
                    f.unlink(missing_ok=True)
                self._dir.rmdir()
                self._dir = None
            if self._saved_env is None:
                os.environ.pop("NTLM_USER_FILE", None)
            else:
                os.environ["NTLM_USER_FILE"] = self._saved_env

    def _write(self) -> None:
        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix="psrunner-sim-ntlm-"))
            self._saved_env = os.environ.get("NTLM_USER_FILE")
        path = self._dir / "ntlm_users"
        lines = [ln for entries in self._entries.values() for ln in entries]
        write_private(path, "\n".join(lines) + "\n")
        os.environ["NTLM_USER_FILE"] = str(path)


NTLM_USERS = _NTLMUserStore()


class _KeytabEnv:
    """KRB5_KTNAME for the running Kerberos simulators (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users: dict[int, str] = {}
        self._saved: str | None = None

    def register(self, key: int, keytab: str) -> None:
        value = f"FILE:{Path(keytab).resolve()}"
        with self._lock:
            if self._users and value not in self._users.values():
                from ..errors import InputError
                raise InputError("Another Kerberos host simulator with another keytab is running in this process.",
                                 input="keytab", hint="stop it first, or give both the same keytab")
            if not self._users:
                self._saved = os.environ.get("KRB5_KTNAME")
            self._users[key] = value
            os.environ["KRB5_KTNAME"] = value

    def unregister(self, key: int) -> None:
        with self._lock:
            if self._users.pop(key, None) is None or self._users:
                return
            if self._saved is None:
                os.environ.pop("KRB5_KTNAME", None)
            else:
                os.environ["KRB5_KTNAME"] = self._saved


KEYTABS = _KeytabEnv()
