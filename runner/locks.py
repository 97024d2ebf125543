"""Locks between psrunner processes: one per target (tenant, host) so two runs cannot
interleave changes, and one per run directory so a run still working is never taken for
an interrupted one (nor resumed twice at once).

Both are an operating-system lock on a file (`fcntl.flock` on POSIX, `msvcrt.locking` on
Windows), not the file's existence: the kernel releases it when the holding process ends,
however it ends (kill -9 included), so there is no stale lock to detect, and no window in
which two processes both see a lock as free (which checking a pid in the file, then deleting
and re-creating it, has: an empty file read as stale, two runs taking over one stale lock).
The file itself stays; it only says, for messages, who holds it."""

from __future__ import annotations

import hashlib
import json
import os
import sys
import threading
from pathlib import Path
from typing import Any

from .errors import InputError, LockedError
from .results import timestamp

if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
    import msvcrt

    def _lock(fd: int) -> bool:
        try:
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False

    def _unlock(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
else:
    import fcntl

    def _lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)


class FileLock:
    """An exclusive lock on `path`, taken without waiting. Another open of the same file
    (another process, or another FileLock in this one) cannot take it while it is held."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def try_acquire(self, owner: dict[str, Any] | None = None) -> bool:
        """Take the lock (and write `owner` into the file); False when someone holds it."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_BINARY", 0), 0o600)
        except OSError as e:
            raise InputError(f"cannot create the lock file {self.path}: {e.strerror or e}", input="--state-dir",
                             hint="give --state-dir a folder this user can write") from None
        if not _lock(fd):
            os.close(fd)
            return False
        self._fd = fd
        if owner is not None:
            data = json.dumps(owner).encode()
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, data)
        return True

    def owner(self) -> dict[str, Any]:
        """Who wrote the file last ({} when unknown: empty, being written, unreadable)."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8") or "{}")
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)          # no longer anyone's; the file stays (see the module docstring)
            _unlock(fd)
        finally:
            os.close(fd)

    def is_held_elsewhere(self) -> bool:
        """True when another holder has the lock now (probes by taking it for an instant)."""
        if self.held or not self.path.exists():
            return False
        probe = FileLock(self.path)
        if probe.try_acquire():
            probe.release()
            return False
        return True


class TargetLock:
    """The lock two runs must share when they would change the same target (tenant, host).
    `key` is the target's canonical identity (registry.target_lock_keys)."""

    def __init__(self, state_dir: Path, key: str, run_id: str) -> None:
        self.key = key
        self.run_id = run_id
        digest = hashlib.sha256(key.encode()).hexdigest()[:16]
        self.path = Path(state_dir) / "locks" / f"{digest}.lock"
        self._lock = FileLock(self.path)

    @property
    def held(self) -> bool:
        return self._lock.held

    def acquire(self) -> None:
        owner = {"pid": os.getpid(), "run_id": self.run_id, "target": self.key, "time": timestamp()}
        if self._lock.try_acquire(owner):
            return
        other = self._lock.owner()
        who = f"{other.get('run_id', 'unknown run')}, pid {other.get('pid', '?')}"
        raise LockedError(f"another run ({who}) is working on {self.key}",
                          hint="wait for it to finish: the lock is released the moment that process ends",
                          target=self.key, lock=str(self.path))

    def release(self) -> None:
        self._lock.release()


class TargetLocks:
    """The target locks one run holds, taken as it learns the keys (before the first stage,
    and from connectors as they connect), released together at its end."""

    def __init__(self, state_dir: Path, run_id: str) -> None:
        self.state_dir, self.run_id = Path(state_dir), run_id
        self._held: list[TargetLock] = []
        self._lock = threading.Lock()

    def claim(self, key: str) -> None:
        """Take `key` unless this run holds it already; LockedError when another run does."""
        with self._lock:
            if any(lk.key == key for lk in self._held):
                return
            lk = TargetLock(self.state_dir, key, self.run_id)
            lk.acquire()
            self._held.append(lk)

    def release(self) -> None:
        with self._lock:
            for lk in self._held:
                lk.release()
            self._held.clear()
