"""A fleet operation: one runbook planned, checked or run on many targets of an inventory,
`parallel` at a time, each in its own run directory, through any executor (threads here, or
Celery workers: runner.executor). One target failing, hanging or refused never stops or
touches the others: each has its own deadline (the engine cuts its stages short at it, and
the fleet stops waiting for it a little after), its own parameters and secrets, and its own
result. The aggregate (runner.fleet.report) says what each target ended with; its exit code
is the worst of them (runner.results.worst).

    from runner.fleet import load_inventory, run_fleet
    inv = load_inventory("fleet.toml")
    fleet = run_fleet("m365-backup-access", inv, inv.select(["europe"]), mode="check", parallel=16)
    fleet.exit_code, [t.exit_code for t in fleet.targets]

A library call like this is what a benchmark or a portal uses; `psrunner fleet` is a thin
layer over it."""

from __future__ import annotations

import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor, TimeoutError as FutureTimeout
from pathlib import Path
from typing import Callable, Sequence

from .. import api
from ..errors import InputError, RunnerError
from ..executor import Executor, Job, ThreadExecutor
from ..outputs import error_document, verdict
from ..results import ExitCode, RunResult, timestamp
from ..rundir import default_state_dir, dumps, new_run_id
from ..runbook import Runbook
from ..secrets import Secret
from .inventory import Inventory, Target, literal_secret_refused
from .report import write_reports
from .result import FleetResult, TargetOutcome

log = logging.getLogger("psrunner.fleet")

WAIT_GRACE = 30.0        # seconds the fleet waits past a target's deadline (the engine stops it first)


def job_for(rb: Runbook, target: Target, inventory: Inventory, *, mode: str, state_dir: Path | None,
            keep: int | None) -> Job:
    """A target's job: its parameters checked against the runbook, its secrets as references
    (read where it runs) or, from a private inventory only, as values."""
    given = dict(target.params)
    sources: dict[str, str] = {}
    for name, value in list(given.items()):
        p = rb.params.get(name)
        if p is not None and p.secret:          # a secret written under params: a literal
            if not inventory.private:
                raise literal_secret_refused(inventory, f"targets.{target.name}.params.{name}")
            given[name], sources[name] = Secret(str(value), name), "inventory"
    for name, ref in target.secrets.items():
        if name not in rb.params or not rb.params[name].secret:
            raise InputError(f"targets.{target.name}.secrets.{name}: {rb.name} has no secret parameter {name!r}",
                             input=f"targets.{target.name}.secrets.{name}",
                             hint="secrets: " + ", ".join(n for n, p in rb.params.items() if p.secret))
        if ref.kind == "literal":
            given[name] = ref.resolve(name)
        sources[name] = ref.describe()
    values, found = api.resolve_params(rb, given, environ={}, need_secrets=False)
    return Job(rb, mode, values, secret_sources={**found, **sources}, state=state_dir,
               deadline=target.deadline, keep=keep, label=target.name)


def run_fleet(runbook: str | Runbook, inventory: Inventory, targets: Sequence[Target], *, mode: str,
              parallel: int = 4, executor: Executor | None = None, state_dir: Path | None = None,
              runbook_dirs: Sequence[str | Path] = (), keep: int | None = None, strict: bool = False,
              on_done: Callable[[TargetOutcome], None] | None = None) -> FleetResult:
    """Plan, check or run `runbook` on `targets`, at most `parallel` at once, and write the
    aggregate report. `executor` defaults to threads of this process."""
    if mode not in ("plan", "check", "run"):
        raise ValueError(f"mode {mode!r}")
    if parallel < 1:
        raise InputError(f"--parallel {parallel}: at least 1", input="--parallel", hint="--parallel 4")
    rb = runbook if isinstance(runbook, Runbook) else api.load_runbook(runbook, runbook_dirs)
    state = Path(state_dir) if state_dir else default_state_dir()
    fleet = FleetResult(fleet_id=new_run_id(f"fleet-{mode}"), runbook=rb.name, mode=mode, started=timestamp())
    own = executor is None
    ex: Executor = executor or ThreadExecutor(workers=parallel)
    lock = threading.Lock()

    def one(target: Target) -> TargetOutcome:
        out = _carry_out(rb, target, inventory, ex, mode=mode, state=state, keep=keep, strict=strict)
        with lock:
            fleet.targets.append(out)
        if on_done is not None:
            try:
                on_done(out)
            except Exception:   # a display problem never stops the fleet
                log.debug("on_done failed", exc_info=True)
        return out

    try:
        with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="psrunner-fleet") as slots:
            list(slots.map(one, targets))
    finally:
        if own:
            ex.shutdown(wait=False)
    order = {t.name: i for i, t in enumerate(targets)}
    fleet.targets.sort(key=lambda o: order.get(o.target, 0))
    fleet.finished = timestamp()
    fleet.report_dir = str(write_reports(fleet, state, strict=strict))
    return fleet


def _carry_out(rb: Runbook, target: Target, inventory: Inventory, ex: Executor, *, mode: str, state: Path,
               keep: int | None, strict: bool) -> TargetOutcome:
    """One target, start to end; whatever happens becomes its outcome, never an exception."""
    t0 = time.monotonic()
    try:
        job = job_for(rb, target, inventory, mode=mode, state_dir=state, keep=keep)
        future = ex.submit(job)
        result = future.result(timeout=target.deadline + WAIT_GRACE + getattr(ex, "extra_wait", 0.0))
    except FutureTimeout:
        return TargetOutcome(target.name, int(ExitCode.FAILED), "no-answer",
                             f"no answer within its deadline ({target.deadline:g} s) and {WAIT_GRACE:g} s more",
                             duration=round(time.monotonic() - t0, 3),
                             error={"message": "no answer within the deadline", "input": None,
                                    "fix": "look at the target's host and tenant; raise its deadline",
                                    "exit_code": int(ExitCode.FAILED)})
    except Exception as e:                    # bad input for this target, a lost worker, a bug
        code = e.exit_code if isinstance(e, RunnerError) else int(ExitCode.FAILED)
        doc = error_document(e, code)["error"]
        status = "refused" if code == ExitCode.USAGE else "failed"
        return TargetOutcome(target.name, code, status, f"{status}: {doc['message']}",
                             duration=round(time.monotonic() - t0, 3), error=doc)
    return outcome_of(target.name, result, strict=strict, duration=round(time.monotonic() - t0, 3))


def outcome_of(name: str, result: RunResult, *, strict: bool, duration: float) -> TargetOutcome:
    return TargetOutcome(name, int(result.exit_code(strict=strict)), result.status.value,
                         verdict(result, strict=strict), run_id=result.run_id, run_dir=result.run_dir,
                         duration=duration, result=json.loads(dumps(result.to_dict())))


__all__ = ["FleetResult", "TargetOutcome", "job_for", "outcome_of", "run_fleet"]
