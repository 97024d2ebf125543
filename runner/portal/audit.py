"""The audit log: who did what in the portal, when, to which runbook, with which parameters
(secrets masked) and how it ended. One JSON object a line, appended, never rewritten.

    {"seq": 7, "time": "...Z", "event": "run", "who": "entra:...", "name": "Helen Desk",
     "roles": ["helpdesk"], "ip": "127.0.0.1", "runbook": "ad-unlock-account",
     "request": "r-...", "run_id": "...", "params": {...}, "outcome": "succeeded",
     "detail": "Account jdoe was locked ...", "prev": "<sha256 of the line before>"}

Events: sign-in, sign-in-refused, sign-out, plan, run, request (waiting for approval),
approve, reject, refused (anything the policy, a CSRF check, a rate or concurrency limit
turned away), export. Each line carries the SHA-256 of the line before it, so a line changed
or removed later breaks the chain, which `verify()` finds. Values go through the same JSON
writer as the run directory (rundir.dumps): a Secret is written as ********, and any secret
value the process knows is scrubbed."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import threading
from pathlib import Path
from typing import Any, Iterable

from ..results import timestamp
from ..rundir import dumps

EVENTS = ("sign-in", "sign-in-refused", "sign-out", "plan", "run", "request", "approve", "reject",
          "refused", "export")
CSV_COLUMNS = ("seq", "time", "event", "who", "name", "roles", "ip", "runbook", "request", "run_id",
               "outcome", "detail", "params")
GENESIS = "0" * 64


class AuditLog:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._seq, self._prev = self._tail()

    def _tail(self) -> tuple[int, str]:
        if not self.path.is_file():
            return 0, GENESIS
        last = b""
        with open(self.path, "rb") as f:
            for line in f:
                if line.strip():
                    last = line.rstrip(b"\n")
        if not last:
            return 0, GENESIS
        return int(json.loads(last).get("seq", 0)), hashlib.sha256(last).hexdigest()

    def write(self, event: str, *, who: Any = None, **fields: Any) -> dict[str, Any]:
        """Append one record. `who` is the signed-in user (id, name and roles are taken
        from it) or None (an anonymous caller: a failed sign-in, a missing CSRF token)."""
        if event not in EVENTS:
            raise ValueError(f"unknown audit event {event!r}")
        with self._lock:
            record: dict[str, Any] = {"seq": self._seq + 1, "time": timestamp(), "event": event}
            if who is not None:
                record.update(who=who.id, name=who.name, roles=list(who.roles))
            record.update({k: v for k, v in fields.items() if v is not None})
            record["prev"] = self._prev
            line = dumps(record)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            with os.fdopen(fd, "a", encoding="utf-8", newline="\n") as f:
                f.write(line + "\n")
                f.flush()
                os.fsync(f.fileno())
            self._seq, self._prev = record["seq"], hashlib.sha256(line.encode()).hexdigest()
            return json.loads(line)

    def records(self) -> list[dict[str, Any]]:
        if not self.path.is_file():
            return []
        with open(self.path, encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]

    def search(self, *, event: str = "", who: str = "", runbook: str = "", limit: int = 500) -> list[dict[str, Any]]:
        """Newest first; each filter is a case-insensitive substring of its field."""
        def fits(r: dict[str, Any]) -> bool:
            return (event.lower() in str(r.get("event", "")).lower()
                    and who.lower() in (str(r.get("who", "")) + " " + str(r.get("name", ""))).lower()
                    and runbook.lower() in str(r.get("runbook", "")).lower())
        return [r for r in reversed(self.records()) if fits(r)][:limit]

    def verify(self) -> list[int]:
        """The line numbers (1-based) whose `prev` does not match the line before: empty when
        the log is as it was written."""
        bad, prev = [], GENESIS
        if not self.path.is_file():
            return bad
        with open(self.path, "rb") as f:
            for i, line in enumerate((ln.rstrip(b"\n") for ln in f if ln.strip()), 1):
                try:
                    if json.loads(line).get("prev") != prev:
                        bad.append(i)
                except ValueError:
                    bad.append(i)
                prev = hashlib.sha256(line).hexdigest()
        return bad


def as_csv(records: Iterable[dict[str, Any]]) -> str:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for r in records:
        row = []
        for col in CSV_COLUMNS:
            v = r.get(col, "")
            text = json.dumps(v, ensure_ascii=False) if isinstance(v, (dict, list)) else str(v)
            # a cell a spreadsheet would read as a formula is kept as text (OWASP: CSV injection)
            row.append("'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text)
        w.writerow(row)
    return out.getvalue()
