"""Result types: what a stage and a run report. Plain dataclasses with to_dict/from_dict so
that the run directory, `--output json` and `resume` share one shape.

Also what a result means to a scheduler: `exit_code` (0 in place, 3 drift, 4 in place but a
person must act, 1 failed, 2 bad input, 130 interrupted) and `worst` of several, so the
command line, a fleet's aggregate and the monitoring outputs read a result one way.

A `Refusal` is a change the platform declines for good (a setting it no longer allows):
asking again cannot help, so it is neither a change, nor drift, nor a failure, nor a
person's action. A stage reports it with its reason and the date the platform refuses it
from; the engine remembers it per target (runner.refusals), so a later plan or `check` that
would ask for the same value again reports the refusal instead of drift. `check --strict`
counts refusals as drift again, for those who want the alarm."""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
from dataclasses import dataclass, field
from enum import Enum, IntEnum
from typing import Any, Iterable

from .errors import RunnerError
from .secrets import redact


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


class ExitCode(IntEnum):
    """What a command's exit status says. `worst` ranks them: INTERRUPTED, FAILED, USAGE,
    DRIFT, ACTION, OK (a failure is the gravest fact about a run or a fleet)."""
    OK = 0              # done, or (check) everything in place
    FAILED = 1          # a stage failed
    USAGE = 2           # bad input or usage: the message names the input and the fix
    DRIFT = 3           # check: something differs from the runbook
    ACTION = 4          # in place, but a person must act (the actions are listed)
    INTERRUPTED = 130   # Ctrl-C, SIGTERM


SEVERITY = (ExitCode.OK, ExitCode.ACTION, ExitCode.DRIFT, ExitCode.USAGE, ExitCode.FAILED,
            ExitCode.INTERRUPTED)


def worst(codes: Iterable[int]) -> ExitCode:
    """The gravest of several exit codes (a fleet's aggregate); OK for none."""
    rank = {c: i for i, c in enumerate(SEVERITY)}
    found = [ExitCode(c) for c in codes]
    return max(found, key=rank.__getitem__, default=ExitCode.OK)


def error_message(e: BaseException) -> str:
    """An error as a stage's message: psrunner's own as it reads, any other with its type."""
    return str(e) if isinstance(e, RunnerError) else f"{type(e).__name__}: {e}"


def error_record(e: BaseException) -> dict[str, Any]:
    """An error as a result records it: its fields and exit code, secrets scrubbed."""
    if isinstance(e, RunnerError):
        d = e.to_dict()
        d["exit_code"] = e.exit_code
    else:
        d = {"type": type(e).__name__, "message": str(e), "exit_code": 1}
    return json.loads(redact(json.dumps(d, default=str)))


def timestamp() -> str:
    """Now, in UTC, as the ISO 8601 text (milliseconds, Z) run files and reports carry."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Refusal:
    """A change the platform refuses for good: `item` (a setting's name) set to `wanted`.
    `since` is the date the platform refuses it from (the stage's knowledge, else the day it
    was first met); `first_run` the run that first met it; `fix` how to stop asking."""
    item: str
    wanted: Any
    reason: str
    since: str | None = None
    first_run: str | None = None
    fix: str | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Refusal":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


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
    refusals: list[Refusal] = field(default_factory=list)


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
    refusals: list[Refusal] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["status"] = self.status.value
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "StageResult":
        names = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        kw["status"] = Status(d["status"])
        kw["refusals"] = [Refusal.from_dict(r) for r in d.get("refusals") or []]
        return cls(**kw)


@dataclass
class RunResult:
    run_id: str
    runbook: str
    mode: str                                   # "plan" | "check" | "run"
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

    @property
    def refusals(self) -> list[tuple[str, Refusal]]:
        """(stage id, refusal) for every change the platform refuses for good."""
        return [(s.id, r) for s in self.stages for r in s.refusals]

    @property
    def actions(self) -> list[StageResult]:
        """The stages that wait for a person."""
        return [s for s in self.stages if s.status == Status.ACTION_REQUIRED]

    def exit_code(self, *, strict: bool = False) -> ExitCode:
        """What this result means to a scheduler. A check that would change anything is DRIFT
        (`strict`: a refusal too); a run or check whose stages are done but wait for a person
        is ACTION (a plan only previews: OK); a failed run is USAGE when every failed stage was refused input
        (exit code 2), else FAILED."""
        if self.status == RunStatus.INTERRUPTED:
            return ExitCode.INTERRUPTED
        if self.status == RunStatus.FAILED:
            codes = [(s.error or {}).get("exit_code", 1) for s in self.stages if s.status == Status.FAILED]
            if not codes and self.error:
                codes = [self.error.get("exit_code", 1)]
            return ExitCode.USAGE if codes and all(c == 2 for c in codes) else ExitCode.FAILED
        if self.mode == "check" and (self.changed or (strict and bool(self.refusals))):
            return ExitCode.DRIFT
        if self.actions and self.mode != "plan":
            return ExitCode.ACTION
        return ExitCode.OK

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
