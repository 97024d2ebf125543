"""A stage on its worker thread: what its kind sees of the run (`RunningStage`), the thread
and its deadline (`StartedStage`).

The engine starts a stage here and waits on the main thread, so that a per-stage deadline
and Ctrl-C both work however the kind blocks. A runbook may let a stage start alongside the
one before it (`concurrent = true`), when it needs nothing that one leaves: the Graph
onboarding makes its client secret while the admin consents are granted, one round trip
instead of two for someone far from the tenant."""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import RunnerError, StageTimeout
from .registry import stage_kind
from .results import Outcome, StageResult, Status, error_message, error_record, timestamp
from .runbook import Stage
from .secrets import redact
from .user_terms import Terms

log = logging.getLogger("psrunner.engine")

INTERRUPT_GRACE = 10.0       # seconds a stage gets to wind down after interrupt()


class RunningStage:
    """One stage of this run as its kind sees it (implements stages.base.StageContext)."""

    def __init__(self, engine: Any, stage: Stage, deadline: float | None) -> None:
        self._engine = engine
        self.run_id = engine.run_dir.run_id
        self.stage_id = stage.id
        self.stage = stage
        self.apply = engine.opts.mode == "run"
        self.params = engine.params
        self.log = logging.getLogger(f"psrunner.stage.{stage.id}")
        self.deadline = deadline
        self.run_dir = engine.run_dir.path
        self.state_dir = engine.run_dir.state_dir
        self.interactive = engine.opts.interactive
        self.cancelled = threading.Event()
        self.scripts: list[str] = []
        self.notices = engine.result.notices

    def results(self) -> list[StageResult]:
        """The results of the stages before this one (read-only use)."""
        return list(self._engine.result.stages)

    def target(self, name: str | None = None) -> Any:
        return self._engine.connector(name or self.stage.target or "")

    def remaining(self) -> float | None:
        return None if self.deadline is None else max(0.0, self.deadline - time.monotonic())

    def private_path(self, relpath: str) -> Path:
        return self._engine.run_dir.private_path(relpath)

    def write_private_file(self, relpath: str, data: str | bytes) -> Path:
        return self._engine.run_dir.write_private(relpath, data)

    def record_script(self, text: str, suffix: str = "", ext: str = ".ps1") -> None:
        p = self._engine.run_dir.write_script(self.stage_id, text, suffix, ext)
        self.scripts.append(str(p))

    def event(self, type: str, **data: Any) -> None:
        self._engine.event(type, self.stage_id, **data)

    def count(self, metric: str, n: int = 1) -> None:
        with self._engine.lock:
            self._engine.counters[metric] = self._engine.counters.get(metric, 0) + n


class StartedStage:
    """A stage's kind running on its own thread, and what recording it needs."""

    def __init__(self, stage: Stage, ctx: RunningStage, inputs: dict[str, Any], deadline: float,
                 timeout: float, digest: str) -> None:
        self.stage, self.ctx, self.inputs = stage, ctx, inputs
        self.deadline, self.timeout, self.digest = deadline, timeout, digest
        self.started, self.t0 = timestamp(), time.monotonic()
        self.box: dict[str, Any] = {}        # the kind's "outcome", or its "error" and "tb"; when it ended
        self.timed_out = False
        self.worker = threading.Thread(target=self._work, name=f"stage-{stage.id}", daemon=True)
        # ready before the stage starts: a Ctrl-C from its first instant records it as interrupted
        self.interrupted = StageResult(
            id=stage.id, title=stage.title, kind=stage.kind, status=Status.FAILED,
            messages=["interrupted (Ctrl-C): remote work was asked to stop; the change may be partial "
                      "- run `psrunner resume` or plan again to see the state"],
            error={"type": "Interrupted", "message": "interrupted by the operator", "exit_code": 130},
            started=self.started, attempts=1, inputs_digest=None)

    def start(self) -> None:
        self.worker.start()

    def _work(self) -> None:
        try:
            self.box["outcome"] = stage_kind(self.stage.kind)(self.ctx, self.inputs)
        except BaseException as e:  # handed to the main thread
            self.box["error"] = e
            self.box["tb"] = traceback.format_exc()
        finally:       # a stage of a group may end well before the group does
            self.box["finished"], self.box["t1"] = timestamp(), time.monotonic()

    @property
    def ended(self) -> bool:
        """Its kind returned or raised, or its deadline passed."""
        return self.timed_out or "t1" in self.box

    def stopped(self) -> StageResult:
        """Recorded as interrupted, after the grace period to wind down (Ctrl-C)."""
        if self.worker.is_alive():
            self.worker.join(INTERRUPT_GRACE)
        self.interrupted.finished = timestamp()
        self.interrupted.duration = round(time.monotonic() - self.t0, 3)
        return self.interrupted

    def result(self, terms: Terms) -> StageResult:
        """What the stage did, from its kind's outcome or error (`terms` restate an error in
        the runbook's parameters)."""
        stage, box = self.stage, self.box
        ended = not self.timed_out and "t1" in box
        duration = round((box["t1"] if ended else time.monotonic()) - self.t0, 3)
        base = dict(id=stage.id, title=stage.title, kind=stage.kind, started=self.started,
                    finished=box["finished"] if ended else timestamp(), duration=duration, attempts=1,
                    inputs_digest=self.digest)
        if self.timed_out:
            err = StageTimeout(f"stage {stage.id} did not finish within {self.timeout:g} s; remote work was asked to stop",
                               hint="raise the stage's timeout in the runbook, or check the host/tenant is responsive",
                               timeout=self.timeout)
            return StageResult(status=Status.FAILED, error=error_record(err), messages=[err.message], **base)
        if "error" in box:
            e = box["error"]
            if isinstance(e, KeyboardInterrupt):  # pragma: no cover - only the main thread gets these
                raise e
            if isinstance(e, RunnerError):        # in the runbook's parameters, not the kind's inputs
                e = terms.restate(e)
            if not isinstance(e, RunnerError):
                log.debug("stage %s crashed:\n%s", stage.id, redact(box.get("tb", "")))
            return StageResult(status=Status.FAILED, error=error_record(e),
                               messages=[redact(error_message(e))], **base)
        out: Outcome = box.get("outcome") or Outcome()
        if not isinstance(out, Outcome):  # pragma: no cover - a kind bug
            return StageResult(status=Status.FAILED, error={"type": "TypeError", "message":
                               f"stage kind {stage.kind} returned {type(out).__name__}, not an Outcome"}, **base)
        status = out.status or (Status.CHANGED if out.changed else Status.OK)
        diff = {} if out.before is None and out.after is None else {"before": out.before, "after": out.after}
        return StageResult(status=status, changed=bool(out.changed), outputs=out.outputs, diff=diff,
                           messages=list(out.messages), warnings=list(out.warnings),
                           streams=out.streams, action=out.action, error=out.error,
                           refusals=list(out.refusals), **base)


def wait_all(running: list[StartedStage], stop: Callable[[StartedStage], None]) -> None:
    """Until every stage has ended; one whose deadline passes is asked to stop (`stop`
    interrupts its target's remote work) and given a short grace period."""
    while True:
        alive = [r for r in running if r.worker.is_alive() and not r.timed_out]
        if not alive:
            return
        now = time.monotonic()
        for r in alive:
            if r.deadline - now <= 0:
                r.timed_out = True
                r.ctx.cancelled.set()
                stop(r)
                r.worker.join(INTERRUPT_GRACE)
        alive = [r for r in alive if not r.timed_out]
        if alive:
            first = min(alive, key=lambda r: r.deadline)
            first.worker.join(max(0.0, min(first.deadline - time.monotonic(), 0.25)))
