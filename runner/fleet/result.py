"""What a fleet operation ended with: one outcome per target and the aggregate's exit code."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ..results import ExitCode, worst


@dataclass
class TargetOutcome:
    """What one target of a fleet operation ended with."""
    target: str
    exit_code: int
    status: str                          # the run's status, or "refused" (bad input), "no-answer"
    summary: str
    run_id: str | None = None
    run_dir: str | None = None
    duration: float = 0.0
    error: dict[str, Any] | None = None  # {message, input, fix, exit_code} when no run could say it
    result: dict[str, Any] | None = None  # the run's result (RunResult.to_dict, secrets masked)


@dataclass
class FleetResult:
    fleet_id: str
    runbook: str
    mode: str
    started: str
    finished: str | None = None
    targets: list[TargetOutcome] = field(default_factory=list)
    report_dir: str | None = None

    @property
    def exit_code(self) -> ExitCode:
        return worst(t.exit_code for t in self.targets)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["exit_code"] = int(self.exit_code)
        return d


__all__ = ["FleetResult", "TargetOutcome"]
