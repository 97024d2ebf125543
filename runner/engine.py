"""The engine: walks a runbook's stages in order, plans or applies each, records results.

Each stage runs on a worker thread while the main thread waits (stage_thread.py), so that a
per-stage deadline and Ctrl-C both work: on either, the engine asks the stage's connector to
stop its remote work (`interrupt()`), gives it a short grace period, and records what
happened. A stage marked `concurrent` runs alongside the one before it; their results are
recorded in the runbook's order once both have ended. Results and events go to the run
directory as they happen, so a crash leaves a readable trail and `resume` can pick up where
the run stopped."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .conditions import evaluate_condition
from .errors import InputError, RunnerError, StageTimeout
from .locks import TargetLocks
from .refs import resolve_value
from .refusals import KnownRefusals, settle
from .registry import KINDS, Connector, TargetEnv, open_target, target_lock_keys
from .results import RunResult, RunStatus, StageResult, Status, error_message, error_record, timestamp
from .runbook import Runbook, Stage, stage_groups
from .rundir import RunDir
from .secrets import redact
from .stage_thread import RunningStage, StartedStage, wait_all
from .user_terms import Terms
from .values import Unknown, inputs_digest

log = logging.getLogger("psrunner.engine")

DEFAULT_TIMEOUT = 900.0      # seconds a stage may take when the runbook does not say
DONE = (Status.OK, Status.CHANGED)

EventSink = Callable[[dict[str, Any]], None]
ConnectorOpener = Callable[[str, dict[str, Any], TargetEnv], Connector]


@dataclass
class Options:
    mode: str = "plan"                       # "plan" | "check" (a plan, recorded as such) | "run"
    state_dir: Path | None = None
    interactive: bool = False
    on_event: EventSink | None = None
    opener: ConnectorOpener = open_target
    default_timeout: float = DEFAULT_TIMEOUT
    extra_metrics: Callable[[], dict[str, Any]] | None = None
    deadline: float | None = None            # monotonic time no stage outlives (a fleet's per-target deadline)


class Engine:
    def __init__(self, runbook: Runbook, params: dict[str, Any], run_dir: RunDir, opts: Options,
                 *, secret_sources: dict[str, str] | None = None,
                 previous: RunResult | None = None) -> None:
        self.runbook = runbook
        self.params = params
        self.run_dir = run_dir
        self.opts = opts
        self.secret_sources = secret_sources or {}
        self.previous = previous
        self.lock = threading.Lock()
        self.counters: dict[str, int] = {}
        self.connectors: dict[str, Connector] = {}
        self.locks = TargetLocks(run_dir.state_dir, run_dir.run_id)
        self.unused = {n for n, t in runbook.targets.items() if not t.used(params)}   # their stages skip
        # what each stage under way is recorded as if Ctrl-C comes now (or its result, once it has one)
        self._current_interrupted: dict[str, StageResult] = {}
        self._keys: dict[str, list[str]] = {}        # target -> its lock keys, worked out once a run
        self.result = RunResult(run_id=run_dir.run_id, runbook=runbook.name, mode=opts.mode,
                                run_dir=str(run_dir.path),
                                resumed_from=previous.run_id if previous else None)

    # -- events and connectors ------------------------------------------------
    def event(self, type: str, stage: str | None = None, **data: Any) -> None:
        ev = self.run_dir.event(type, stage, **data)
        if self.opts.on_event:
            try:
                self.opts.on_event(ev)
            except Exception:  # a display problem must never break a run
                log.debug("event sink failed", exc_info=True)

    def target_keys(self, name: str) -> list[str]:
        """The target's lock keys, worked out once a run: a host's may need DNS, and the run's
        files, its locks and its refusals must all name the same ones."""
        if name not in self._keys:
            t = self.runbook.targets[name]
            self._keys[name] = target_lock_keys(t.type, t.resolved(self.params))
        return self._keys[name]

    def claim(self, key: str) -> None:
        """Take the target lock `key` for the rest of a run (a plan changes nothing), such as a
        tenant's id a connector learns at sign-in. LockedError when another run holds it."""
        if self.opts.mode == "run":
            self.locks.claim(key)

    def connector(self, name: str) -> Any:
        with self.lock:
            if name in self.connectors:
                return self.connectors[name]
            if name not in self.runbook.targets:
                raise InputError(f"stage asks for target {name!r}, which the runbook does not declare",
                                 input="target")
            t = self.runbook.targets[name]
            env = TargetEnv(name=name, state_dir=self.run_dir.state_dir,
                            log=logging.getLogger(f"psrunner.target.{name}"),
                            interactive=self.opts.interactive,
                            event=lambda type, **d: self.event(type, None, target=name, **d),
                            claim=self.claim)
            conn = self.opts.opener(t.type, t.resolved(self.params), env)
            self.connectors[name] = conn
            self.event("target.open", None, target=name, target_type=t.type)
            return conn

    def _interrupt(self, only: str | None = None) -> None:
        """Ask the connectors (or only the target named `only`) to stop their remote work."""
        for name, conn in list(self.connectors.items()):
            if only is None or name == only:
                try:
                    conn.interrupt()
                except Exception:
                    log.debug("interrupt failed", exc_info=True)

    def _close_all(self) -> None:
        for name, conn in list(self.connectors.items()):
            try:
                conn.close()
            except Exception as e:
                log.warning("closing target %s failed: %s", name, redact(str(e)))

    # -- the run ----------------------------------------------------------------
    def execute(self) -> RunResult:
        self.run_dir.hold()          # `runs` tells a live run from one whose process is gone
        try:
            return self._execute()
        finally:
            self.run_dir.let_go()

    def _execute(self) -> RunResult:
        res = self.result
        self._write_run_json()
        self.event("run.start", None, runbook=self.runbook.name, mode=self.opts.mode,
                   resumed_from=res.resumed_from)
        res.notices = self._notices()
        interrupted = False
        try:
            if self.opts.mode == "run":
                self._take_locks()
            stopped_by: str | None = None
            for group in stage_groups(self.runbook.stages):
                if stopped_by or interrupted:
                    why = "the run was interrupted" if interrupted else f"stage {stopped_by} failed"
                    for stage in group:
                        self._record(self._skipped(stage, f"not run: {why}"))
                    continue
                try:
                    results = self._run_group(group)
                except KeyboardInterrupt:
                    interrupted = True
                    results = [self._current_interrupted.get(stage.id)
                               or self._skipped(stage, "not run: the run was interrupted") for stage in group]
                for stage, sr in zip(group, results, strict=True):
                    self._record(sr)
                    if sr.status == Status.FAILED and stage.on_failure == "stop":
                        stopped_by = stopped_by or stage.id
        except KeyboardInterrupt:
            # Ctrl-C between stages (or a second one while the first was handled): the stages
            # not recorded yet are, as not run
            interrupted = True
            self._record_rest("not run: the run was interrupted")
        except BaseException as e:
            # a lock held by another run, or a bug: the run directory still says how it ended
            res.error = error_record(e)
            self._finish(RunStatus.FAILED)
            raise
        finally:
            try:
                self._close_all()
            finally:
                self.locks.release()
        self._finish(self._overall(interrupted))
        return res

    def _record_rest(self, why: str) -> None:
        done = {s.id for s in self.result.stages}
        for stage in self.runbook.stages:
            if stage.id not in done:
                sr = self._current_interrupted.get(stage.id) or self._skipped(stage, why)
                self._record(sr)

    def _finish(self, status: RunStatus) -> None:
        res = self.result
        res.finished = timestamp()
        res.status = status
        res.metrics = self._metrics()
        self.event("run.end", None, status=res.status.value, metrics=res.metrics, error=res.error)
        self.run_dir.write_report(res)
        self._write_run_json()

    def _take_locks(self) -> None:
        used = sorted({s.target for s in self.runbook.stages if s.target and s.target not in self.unused})
        for name in used:
            for key in self.target_keys(name):
                self.claim(key)

    def _overall(self, interrupted: bool) -> RunStatus:
        if interrupted:
            return RunStatus.INTERRUPTED
        statuses = [s.status for s in self.result.stages]
        if Status.FAILED in statuses:
            return RunStatus.FAILED
        if Status.ACTION_REQUIRED in statuses:
            return RunStatus.ACTION_REQUIRED
        return RunStatus.SUCCEEDED

    def _metrics(self) -> dict[str, Any]:
        m: dict[str, Any] = {"stages": len(self.result.stages)}
        for st in Status:
            m[st.value.replace("-", "_")] = sum(1 for s in self.result.stages if s.status == st)
        for conn in self.connectors.values():
            try:
                for k, v in (conn.metrics() or {}).items():
                    m[k] = m.get(k, 0) + v
            except Exception:
                log.debug("metrics failed", exc_info=True)
        for k, v in self.counters.items():
            m[k] = m.get(k, 0) + v
        if self.opts.extra_metrics:
            m.update(self.opts.extra_metrics())
        return m

    def _notices(self) -> list[dict[str, Any]]:
        out = []
        for n in self.runbook.notices:
            if n.applies is None or evaluate_condition(n.applies, {"params": self.params, "stages": {}}):
                out.append(n.to_dict())
        return out

    def _write_run_json(self) -> None:
        self.run_dir.write_info(self.result, source=self.runbook.source, params=self.params,
                                secret_sources=self.secret_sources, targets=self._target_keys())

    def _target_keys(self) -> list[str]:
        """The lock keys of the targets the stages use (what retention groups runs by)."""
        return sorted({k for n in {s.target for s in self.runbook.stages if s.target} for k in self.target_keys(n)})

    def _record(self, sr: StageResult) -> None:
        self.result.stages.append(sr)
        self.run_dir.write_stage(sr)
        self.event("stage.end", sr.id, status=sr.status.value, changed=sr.changed,
                   duration=sr.duration, title=sr.title, messages=sr.messages[:5],
                   warnings=sr.warnings[:5], action=bool(sr.action),
                   error=(sr.error or {}).get("message"))

    # -- one stage ---------------------------------------------------------------
    def _scope(self) -> dict[str, Any]:
        stages: dict[str, Any] = {}
        for s in self.result.stages:
            stages[s.id] = {"outputs": s.outputs, "status": s.status.value, "changed": s.changed,
                            "diff": s.diff}
        plan = self.opts.mode != "run"

        def missing(ref: str) -> Any:
            parts = ref.split(".")
            if parts[0] == "stages" and len(parts) > 1:
                done = stages.get(parts[1])
                if plan and (done is None or done["status"] in ("changed", "skipped")):
                    return Unknown(".".join(parts[1:]).replace(".outputs", ""))
            return None
        return {"params": self.params, "stages": stages,
                "run": {"id": self.run_dir.run_id, "dir": str(self.run_dir.path)}, "_missing": missing}

    def _skipped(self, stage: Stage, why: str) -> StageResult:
        now = timestamp()
        return StageResult(id=stage.id, title=stage.title, kind=stage.kind, status=Status.SKIPPED,
                           messages=[why], started=now, finished=now)

    def _run_group(self, group: list[Stage]) -> list[StageResult]:
        """Run a stage, or a stage and those that run alongside it (`concurrent`), each on its
        own worker thread; their results in the runbook's order. None of them sees another's
        outputs (the loader refuses such a reference), so each is prepared from what the
        stages before the group left."""
        self._current_interrupted = {}
        results: dict[str, StageResult] = {}
        running: list[StartedStage] = []
        try:
            for stage in group:
                begun = self._begin(stage, running)
                if isinstance(begun, StageResult):
                    results[stage.id] = self._current_interrupted[stage.id] = begun
            self._wait(running)
        except KeyboardInterrupt:
            ended = [r for r in running if r.ended]
            for r in ended:       # what ended before Ctrl-C is recorded as it ended
                self._current_interrupted[r.stage.id] = self._result(r)
            for r in running:
                r.ctx.cancelled.set()
            self._interrupt()
            for r in running:
                if r not in ended:
                    r.stopped()
                    self.event("stage.interrupted", r.stage.id)
            raise
        for r in running:      # a Ctrl-C before they are recorded must not make them interrupted
            results[r.stage.id] = self._current_interrupted[r.stage.id] = self._result(r)
        return [results[stage.id] for stage in group]

    def _begin(self, stage: Stage, into: list[StartedStage]) -> StageResult | StartedStage:
        """A stage's result when it need not run (skipped, failed before it starts, done in the
        attempt resumed), else the stage started on its worker thread (added to `into`)."""
        if stage.target in self.unused:
            return self._skipped(stage, self.runbook.targets[stage.target].skip_reason())
        scope = self._scope()
        if stage.when:
            try:
                cond = evaluate_condition(stage.when, scope)
            except Exception as e:  # pragma: no cover - checked at load
                cond, why = False, f"condition failed: {e}"
            else:
                why = f"condition is false: {stage.when}"
            if not cond:
                return self._skipped(stage, why)
        try:
            inputs = resolve_value(stage.inputs, scope, where=f"stages.{stage.id}.inputs")
        except RunnerError as e:
            return self._failed_early(stage, e)
        if KINDS[stage.kind].uses_template:
            inputs = {**inputs, "template": stage.template, "vars": stage.vars}
        digest = inputs_digest(stage.kind, stage.template, inputs)

        prev = self.previous.stage(stage.id) if self.previous else None
        if prev is not None and prev.status in DONE and prev.inputs_digest == digest:
            reused = StageResult.from_dict(prev.to_dict())
            reused.messages = reused.messages + [f"done in run attempt {self.previous.run_id}; not repeated on resume"]
            self.event("stage.reused", stage.id, status=prev.status.value)
            return reused

        timeout = stage.timeout or self.opts.default_timeout
        deadline = time.monotonic() + timeout
        if self.opts.deadline is not None:
            if time.monotonic() >= self.opts.deadline:
                return self._failed_early(stage, StageTimeout(
                    "not started: the run's deadline had passed",
                    hint="give the target more time (its deadline in the inventory), or look at what made it slow"))
            if self.opts.deadline < deadline:        # the run's deadline comes first: say so in seconds
                deadline, timeout = self.opts.deadline, round(self.opts.deadline - time.monotonic(), 1)
        ctx = RunningStage(self, stage, deadline)
        self.event("stage.start", stage.id, title=stage.title, kind=stage.kind, timeout=timeout,
                   mode=self.opts.mode)
        running = StartedStage(stage, ctx, inputs, deadline, timeout, digest)
        self._current_interrupted[stage.id] = running.interrupted
        into.append(running)          # before start(): a Ctrl-C from its first instant stops it
        running.start()
        return running

    def _wait(self, running: list[StartedStage]) -> None:
        wait_all(running, lambda r: self._interrupt(r.stage.target or ""))

    def _result(self, r: StartedStage) -> StageResult:
        """What a stage that ran did; a refusal or a planned change is settled against the
        refusals known for its target."""
        sr = r.result(Terms(self.runbook, stage=r.stage))
        if sr.refusals or (self.opts.mode != "run" and sr.changed):
            settle(sr, KnownRefusals(self.run_dir.state_dir, self._refusal_key(r.stage)),
                   run_id=self.run_dir.run_id, planning=self.opts.mode != "run")
        return sr

    def _refusal_key(self, stage: Stage) -> str:
        """Whose refusals a stage's are: its target's (by lock key), or the runbook's."""
        return self.target_keys(stage.target)[0] if stage.target else f"local:{self.runbook.name}"

    def _failed_early(self, stage: Stage, e: RunnerError) -> StageResult:
        e = Terms(self.runbook, stage=stage).restate(e)
        now = timestamp()
        return StageResult(id=stage.id, title=stage.title, kind=stage.kind, status=Status.FAILED,
                           messages=[redact(error_message(e))], error=error_record(e), started=now, finished=now)
