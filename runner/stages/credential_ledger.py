"""What this machine knows about the credentials it makes for an application, kept beside
their secret halves under the state directory's private folder (0600, no secret in it).

Graph shows a client secret's value once, in the answer to `addPassword`. A run stopped
between that call and writing the value to disk (Ctrl-C, kill -9, a lost answer) leaves a
live secret in the tenant whose value nobody has. So before the call the stage records its
*intent*: the unique display name the new secret will carry. Once the value is on disk the
credential is recorded as *stored*: a later run counts it as ours even when the file has since
been moved into a vault (handed over). Any credential carrying an intended name that is not
stored is one nobody has (the call's write landed after its answer was lost, or the process
died first): a later run removes it and, unless a stored one is valid, makes a new one.

    {"pending": [{"display_name": "psrunner #1a2b3c4d", "started": "2026-11-02T10:00:00Z"}],
     "stored": {"<keyId or thumbprint>": {"file": "...", "created": "..."}}}

An intent is kept for `GRACE` after it was made, and as long as a credential of its name is
unaccounted for: a write whose answer was lost (a read timeout) can land minutes later."""

from __future__ import annotations

import datetime as _dt
import json
import secrets as _rand
from typing import Any

from ..graph.odata import parse_time
from ..results import timestamp
from .base import StageContext

LEDGER = "credentials.json"
GRACE = _dt.timedelta(hours=1)


def tagged(name: str) -> str:
    """A display name no other credential carries: `name` and a random tag."""
    return f"{name} #{_rand.token_hex(4)}"


class Ledger:
    def __init__(self, ctx: StageContext, folder: str) -> None:
        self.ctx = ctx
        self.rel = f"{folder}/{LEDGER}"
        self.data: dict[str, Any] = {"pending": [], "stored": {}}
        path = ctx.private_path(self.rel)
        try:
            loaded = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        except (OSError, ValueError):
            loaded = {}       # written atomically by this module; unreadable means hand-edited
        if isinstance(loaded, dict):
            self.data["pending"] = [p for p in loaded.get("pending") or [] if isinstance(p, dict)]
            self.data["stored"] = dict(loaded.get("stored") or {})

    def save(self) -> None:
        self.ctx.write_private_file(self.rel, json.dumps(self.data, indent=2) + "\n")

    # -- intents -----------------------------------------------------------------
    def intend(self, display_name: str) -> None:
        """Record, before the call, that a credential named `display_name` is being made."""
        self.data["pending"].append({"display_name": display_name, "started": timestamp()})
        self.save()

    def orphans(self, credentials: list[dict[str, Any]], now: _dt.datetime) -> list[dict[str, Any]]:
        """The credentials made with an intended name and never stored. Intents past their
        grace period with nothing unaccounted for are dropped (saved with the next change)."""
        found, keep = [], []
        for intent in self.data["pending"]:
            named = [c for c in credentials if c.get("displayName") == intent.get("display_name")
                     and not self.is_stored(str(c.get("keyId")))]
            found += named
            started = parse_time(intent.get("started"))
            if named or started is None or now - started < GRACE:
                keep.append(intent)
        self.data["pending"] = keep
        return found

    # -- stored credentials ----------------------------------------------------------
    def record(self, key: str, file: str) -> None:
        self.data["stored"][key] = {"file": file, "created": timestamp()}
        self.save()

    def is_stored(self, key: str) -> bool:
        return key in self.data["stored"]

    def stored_file(self, key: str) -> str | None:
        entry = self.data["stored"].get(key)
        return entry.get("file") if isinstance(entry, dict) else None
