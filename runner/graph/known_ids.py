"""The ids an earlier run learnt for an application (its appId, object id and service
principal id), kept in the state directory so that the next run can read the application,
its service principal and its app role assignments in one `$batch`, instead of learning
each id from the answer before.

These ids are hints, never facts: the application is always read by its uniqueName in the
same batch, and what was read through a remembered id is used only when that read agrees
(facts.read_state). An application deleted and recreated by someone else has a new appId, so
nothing read through the old one is believed, and nothing is ever written through one.

One small JSON file per tenant and uniqueName (`<state>/graph/<tenant>/apps/<name>.json`):
not secret, written atomically; an unreadable or odd file is ignored."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

from ..secrets import write_private

log = logging.getLogger("psrunner.graph")

GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
FIELDS = ("app_id", "object_id", "sp_id")


class KnownIds:
    """Remembered ids per uniqueName, under one folder (one tenant)."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder

    def _path(self, unique_name: str) -> Path | None:
        if self.folder is None:
            return None
        return self.folder / f"{re.sub(r'[^A-Za-z0-9._~-]', '_', unique_name.lower())}.json"

    def get(self, unique_name: str) -> dict[str, str]:
        """The ids remembered for `unique_name` ({} when none); every one a GUID."""
        path = self._path(unique_name)
        try:
            if path is None or not path.is_file():
                return {}
            data = json.loads(path.read_text(encoding="utf-8"))
            if str(data.get("unique_name", "")).lower() != unique_name.lower():
                return {}
            return {k: str(data[k]).lower() for k in FIELDS if GUID.match(str(data.get(k) or ""))}
        except (OSError, ValueError, AttributeError) as e:
            log.debug("remembered ids for %s not used: %s", unique_name, e)
            return {}

    def remember(self, unique_name: str, app: dict[str, Any], sp: dict[str, Any] | None) -> None:
        """Keep the ids of `app` and its service principal (best effort)."""
        path = self._path(unique_name)
        ids = {"app_id": app.get("appId"), "object_id": app.get("id"), "sp_id": (sp or {}).get("id")}
        if path is None or not GUID.match(str(ids["app_id"] or "")) or self.get(unique_name) == \
                {k: str(v).lower() for k, v in ids.items() if GUID.match(str(v or ""))}:
            return
        try:
            write_private(path, json.dumps({"unique_name": unique_name, **ids}, indent=1))
        except OSError as e:
            log.debug("remembered ids for %s not saved: %s", unique_name, e)

    def forget(self, unique_name: str) -> None:
        """The application is gone (removed by this run)."""
        path = self._path(unique_name)
        if path is not None:
            path.unlink(missing_ok=True)
