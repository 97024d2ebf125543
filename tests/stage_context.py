"""A StageContext (runner.stages.base) for driving stage kinds one by one, without the engine:
one real connector for every target, records kept in memory, private files under a folder."""

from __future__ import annotations

import functools
import logging
import threading
import time
from pathlib import Path
from typing import Any

from runner.api import load_runbook as load
from runner.results import StageResult
from runner.runbook import Stage
from runner.secrets import write_private


def runbook_notices(name: str = "m365-backup-access") -> list[dict[str, Any]]:
    """The platform notices a built-in runbook declares (as the engine hands them to kinds)."""
    return [dict(n) for n in _notices(name)]


@functools.lru_cache(maxsize=None)
def _notices(name: str) -> tuple[dict[str, Any], ...]:
    return tuple(n.to_dict() for n in load(name).notices)      # loaded once: the matrices make many contexts


class FakeStageContext:
    def __init__(self, connector: Any, apply: bool, deadline: float | None = None, *,
                 state_dir: Path | None = None, target: str | None = None,
                 kind: str = "test.kind", notices: list[dict[str, Any]] | None = None) -> None:
        self.run_id, self.stage_id, self.apply = "test-run", "stage", apply
        self.stage = Stage(id="stage", title="stage", kind=kind, target=target)
        self.params: dict[str, Any] = {}
        self.log = logging.getLogger("test.stage")
        self.deadline = deadline
        self.state_dir = state_dir or Path(".")
        self.run_dir = state_dir / "runs" / "test-run" if state_dir else None
        self.interactive = False
        self.cancelled = threading.Event()
        self.notices = list(notices or [])
        self.connector = connector
        self.scripts: list[tuple[str, str]] = []
        self.events: list[tuple[str, dict]] = []
        self.counts: dict[str, int] = {}

    def results(self) -> list[StageResult]:
        return []

    def target(self, name: str | None = None) -> Any:
        return self.connector

    def remaining(self) -> float | None:
        return None if self.deadline is None else max(0.0, self.deadline - time.monotonic())

    def private_path(self, relpath: str) -> Path:
        return self.state_dir / "private" / relpath

    def write_private_file(self, relpath: str, data: str | bytes) -> Path:
        return write_private(self.private_path(relpath), data)

    def record_script(self, text: str, suffix: str = "", ext: str = ".ps1") -> None:
        self.scripts.append((suffix + ext if ext != ".ps1" else suffix, text))

    def event(self, type: str, **data: Any) -> None:
        self.events.append((type, data))

    def count(self, metric: str, n: int = 1) -> None:
        self.counts[metric] = self.counts.get(metric, 0) + n
