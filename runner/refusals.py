"""What the platform has refused for good, remembered per target, so a scheduler can trust
`check`: a setting the platform declined once is reported as refused on every later plan
or check that would ask for it again, instead of as drift that no run can ever fix.

    <state>/refusals/<digest of the target's lock key>.json
        {"target": "psrp:mgmt01:5986",
         "refusals": {"spo-settings/LegacyAuthProtocolsEnabled":
                          {"item": ..., "wanted": true, "reason": ..., "since": "2026-05-01",
                           "first_run": "<run id>", "fix": ...}}}

A refusal is remembered for the value that was asked for: asking for another value (the one
the platform keeps) is a different question, and a plan asks it afresh. Forgetting is
deleting the file (or `check --strict`, which counts refusals as drift without forgetting).
Written atomically; two runs on one target are kept apart by the target lock."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

from .results import Refusal, StageResult, Status, timestamp
from .rundir import atomic_write, dumps


class KnownRefusals:
    """The refusals met on one target (its lock key), by stage and item."""

    DIR = "refusals"

    def __init__(self, state_dir: Path, target_key: str) -> None:
        self.target_key = target_key
        digest = hashlib.sha256(target_key.encode()).hexdigest()[:16]
        self.path = Path(state_dir) / self.DIR / f"{digest}.json"

    def _load(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        found = data.get("refusals") if isinstance(data, dict) else None
        return found if isinstance(found, dict) else {}

    def find(self, stage_id: str, item: str, wanted: Any) -> Refusal | None:
        """The refusal remembered for asking `item` = `wanted` in this stage, or None."""
        entry = self._load().get(f"{stage_id}/{item}")
        if not isinstance(entry, dict) or entry.get("wanted") != wanted:
            return None
        return Refusal.from_dict(entry)

    def remember(self, stage_id: str, refusal: Refusal) -> Refusal:
        """Keep `refusal` (the first one met for this item and value stays: its date and
        run say when the platform first said no). Returns the one kept."""
        known = self._load()
        key = f"{stage_id}/{refusal.item}"
        old = known.get(key)
        if isinstance(old, dict) and old.get("wanted") == refusal.wanted:
            kept = Refusal.from_dict(old)
            kept.reason, kept.fix = refusal.reason, refusal.fix or kept.fix
        else:
            kept = refusal
        known[key] = dataclasses.asdict(kept)
        atomic_write(self.path, dumps({"target": self.target_key, "refusals": known}, indent=2) + "\n")
        return kept


def settle(sr: StageResult, known: KnownRefusals, *, run_id: str, planning: bool) -> None:
    """Refusals a stage met are remembered for its target (dated, with the run that met them
    first); a plan or check (`planning`) whose only differences are values the platform
    refused before reports those refusals instead of a change. Differences are read from the
    stage's before/after hashtables, the one shape every stage reports its state in."""
    today = timestamp()[:10]
    for i, r in enumerate(sr.refusals):
        r.since, r.first_run = r.since or today, r.first_run or run_id
        sr.refusals[i] = known.remember(sr.id, r)
    before, after = sr.diff.get("before"), sr.diff.get("after")
    if not (planning and sr.changed and sr.status == Status.CHANGED
            and isinstance(before, dict) and isinstance(after, dict)):
        return
    differ = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    found = [known.find(sr.id, k, after.get(k)) for k in differ]
    if not differ or not all(found):
        return
    sr.changed, sr.status = False, Status.OK
    reported = {r.item for r in sr.refusals}
    sr.refusals += [r for r in found if r is not None and r.item not in reported]
    sr.messages.insert(0, "nothing to change but what the platform refuses for good: " + ", ".join(differ)
                       + " (not drift; `check --strict` counts it)")


__all__ = ["KnownRefusals", "settle"]
