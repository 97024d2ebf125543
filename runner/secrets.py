"""Secrets: a value that is never str()-able, plus redaction of every secret value seen.

A `Secret` prints as ******** in str, repr, f-strings, logging and JSON. `reveal()` is the
one way to the value, and is called only where the value leaves for its destination (msal,
a SecureString PSRP parameter, a 0600 file). Every Secret registers its value so that
`redact()` can scrub any text (logs, artifacts, exceptions) that picked it up by accident."""

from __future__ import annotations

import logging
import os
import sys
import threading
from pathlib import Path
from typing import Any

MASK = "********"

_known: set[str] = set()
_known_lock = threading.Lock()


class Secret:
    __slots__ = ("_value", "name")

    def __init__(self, value: str, name: str = "secret") -> None:
        if not isinstance(value, str):
            raise TypeError("Secret value must be a str")
        self._value = value
        self.name = name
        register(value)

    def reveal(self) -> str:
        return self._value

    def __str__(self) -> str:
        return MASK

    def __repr__(self) -> str:
        return f"Secret({self.name!r})"

    def __format__(self, spec: str) -> str:
        return MASK

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __deepcopy__(self, memo: dict) -> "Secret":
        return self          # immutable; a copied result (dataclasses.asdict) keeps the Secret, masked

    def __reduce__(self):  # never pickled in clear
        raise TypeError("Secret cannot be pickled")


def register(value: str) -> None:
    """Remember a secret value (e.g. a token or secretText) so redact() scrubs it."""
    if value and len(value) >= 4:
        with _known_lock:
            _known.add(value)


def redact(text: str) -> str:
    if not text:
        return text
    with _known_lock:
        values = sorted(_known, key=len, reverse=True)
    for v in values:
        if v in text:
            text = text.replace(v, MASK)
    return text


def redact_obj(obj: Any) -> Any:
    """Deep copy of JSON-like data with Secrets masked and known secret values scrubbed."""
    if isinstance(obj, Secret):
        return MASK
    if isinstance(obj, str):
        return redact(obj)
    if isinstance(obj, dict):
        return {k: redact_obj(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [redact_obj(v) for v in obj]
    return obj


class RedactingFilter(logging.Filter):
    """Logging filter: formats the record once, scrubs known secret values from it, and from
    the traceback and stack text a handler would append (exc_info=True, stack_info=True):
    an exception message can quote what a server sent back."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            msg = record.getMessage()
        except Exception:  # pragma: no cover - bad format args; leave them to logging
            return True
        clean = redact(msg)
        if clean != msg or record.args:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            # Formatter.format() uses exc_text when set instead of formatting exc_info again.
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def write_private(path: str | os.PathLike, data: str | bytes) -> Path:
    """Write a file only the current user can read (0600 on POSIX; on Windows an ACL that
    grants the current user alone), atomically (temp file + rename)."""
    p = Path(path)
    _private_dirs(p.parent)
    tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
    payload = data.encode() if isinstance(data, str) else data
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0), 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
            _restrict_windows_acl(tmp)
        os.replace(tmp, p)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return p


def _private_dirs(folder: Path) -> None:
    """Create the missing folders of `folder` readable by the current user alone (0700):
    `mkdir -p` would make them 0755 and let others list the names of private files."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for d in reversed(missing):
        try:
            d.mkdir(mode=0o700)
        except FileExistsError:        # made meanwhile by another thread or process
            pass


def _restrict_windows_acl(path: Path) -> None:  # pragma: no cover - Windows only
    """Remove inherited ACEs and grant full control to the current user only."""
    import subprocess

    user = os.environ.get("USERNAME", "")
    domain = os.environ.get("USERDOMAIN", "")
    who = f"{domain}\\{user}" if domain else user
    subprocess.run(["icacls", str(path), "/inheritance:r", "/grant:r", f"{who}:F"],
                   check=True, capture_output=True, timeout=30)


def is_private(path: str | os.PathLike) -> bool:
    """True when the file is readable by its owner alone (POSIX mode check)."""
    if sys.platform == "win32":  # pragma: no cover
        return True
    return (os.stat(path).st_mode & 0o077) == 0
