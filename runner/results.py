"""Result types: what a stage and a run report. Plain dataclasses with to_dict/from_dict so
that the run directory, `--output json` and `resume` share one shape."""

from __future__ import annotations

import dataclasses
import datetime as _dt
from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class Status(str, Enum):
    OK = "ok"                            # nothing to do (or, in plan, nothing would change)
    CHANGED = "changed"                  # changed (in plan: would change)
    FAILED = "failed"
    SKIPPED = "skipped"                  # `when` was false, or an earlier stage stopped the run
    ACTION_REQUIRED = "action-required"  # a person must finish it; `action` says exactly how

    def __str__(self) -> str:
        return self.value


class RunStatus(str, Enum):
    SUCCEEDED = "succeeded"
    ACTION_REQUIRED = "action-required"
    FAILED = "failed"
    INTERRUPTED = "interrupted"
    RUNNING = "running"

    def __str__(self) -> str:
        return self.value


def timestamp() -> str:
    """Now, in UTC, as the ISO 8601 text (milliseconds, Z) run files and reports carry."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Outcome:
    """What a stage kind returns. The engine turns it into a StageResult.

    `changed` means changed (apply) or would change (plan). `status` overrides the status the
    engine derives from `changed` (use it for ACTION_REQUIRED or FAILED with a reason)."""
    changed: bool = False
    outputs: dict[str, Any] = field(default_factory=dict)
    before: Any = None
    after: Any = None
    messages: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    streams: dict[str, list] = field(default_factory=dict)
    action: dict[str, Any] | None = None
    status: Status | None = None
    error: dict[str, Any] | None = None


@dataclass
class StageResult:
    id: str
    title: str
    kind: str
    status: Status
    changed: bool = False
    outputs: dict[str, Any] = field(default_factory=dict)
    diff: dict[str, Any] = field(default_factory=dict)       # {"before": ..., "after": ...}
    messages: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    streams: dict[str, list] = field(default_factory=dict)   # error/warning/verbose/information
    action: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    started: str | None = None
    finished: str | None = None
    duration: float = 0.0
    attempts: int = 0
    inputs_digest: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["status"] = self.status.value
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "StageResult":
        names = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        kw["status"] = Status(d["status"])
        return cls(**kw)


@dataclass
class RunResult:
    run_id: str
    runbook: str
    mode: str                                   # "plan" | "run"
    status: RunStatus = RunStatus.RUNNING
    started: str = field(default_factory=timestamp)
    finished: str | None = None
    stages: list[StageResult] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    notices: list[dict[str, Any]] = field(default_factory=list)
    run_dir: str | None = None
    resumed_from: str | None = None
    error: dict[str, Any] | None = None

    @property
    def headline(self) -> str | None:
        """What happened, in plain words, for the person who asked: a failed stage's message
        (a refusal says why), else the `headline` output of the last stage that gave one."""
        for s in self.stages:
            if s.status == Status.FAILED and s.error:
                refused = s.error.get("type") == "Refused"
                return ("Refused: " if refused else "Failed: ") + str(s.error.get("message", ""))
        lines = [s.outputs.get("headline") for s in self.stages if isinstance(s.outputs, dict)]
        return next((h for h in reversed(lines) if isinstance(h, str) and h), None)

    def stage(self, stage_id: str) -> StageResult | None:
        return next((s for s in self.stages if s.id == stage_id), None)

    @property
    def changed(self) -> bool:
        return any(s.changed for s in self.stages)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["status"] = self.status.value
        d["stages"] = [s.to_dict() for s in self.stages]
        d["changed"] = self.changed
        d["headline"] = self.headline
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RunResult":
        names = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        kw["status"] = RunStatus(d["status"])
        kw["stages"] = [StageResult.from_dict(s) for s in d.get("stages", [])]
        return cls(**kw)
