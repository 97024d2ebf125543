"""Where runs execute: a small interface between a front end that accepts work (the portal
today, a fleet of hosts or tenants later) and whatever carries it out.

A front end describes a run as a `Job` (which runbook, plan or run, the checked parameters,
where the run directory is) and hands it to an `Executor`. It never waits on the job to show
progress: every run writes its events to its run directory as they happen (rundir.py), and
that is where progress is read from, whoever executes the run. So an executor only has to
run jobs, say how many of a runbook are under way, and refuse more than a limit.

`ThreadExecutor` runs jobs on threads of this process; `runner.fleet.celery_app.CeleryExecutor`
sends them to Celery workers, as `job_message` describes them: parameters and credential
*references* (a job's secret parameters are `Secret` objects here, which cannot be pickled on
purpose, and never travel). Both serve the portal and the fleet."""

from __future__ import annotations

import json
import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

from .errors import InputError, RunnerError
from .fleet.credentials import REFERENCE_KINDS, CredentialRef
from .results import RunResult
from .rundir import RunDir, default_state_dir
from .runbook import Runbook

log = logging.getLogger("psrunner.executor")


class Busy(RunnerError):
    """As many runs of a runbook as allowed are under way; try again when one finishes."""


@dataclass
class Job:
    """One plan, check or run of a runbook with parameters already checked (api.resolve_params).

    A secret may be left out of `params` when `secret_sources` names where to read it
    (`env:NAME`, `file:PATH`, `keyring:SERVICE/USER`): it is read where the job runs, which is
    how a job crosses to a worker without its secrets (`job_message`)."""
    runbook: Runbook
    mode: str                                   # "plan" | "check" | "run"
    params: dict[str, Any]
    run_dir: RunDir | None = None               # made beforehand (api.new_run_dir): its id is known
    secret_sources: dict[str, str] = field(default_factory=dict)
    on_done: Callable[[RunResult | None, BaseException | None], None] | None = None
    state: Path | None = None                   # without a run_dir: where the run is made (None: default)
    deadline: float | None = None               # seconds the job may take once it starts
    keep: int | None = None                     # keep the newest N runs of its kind (runner.retention)
    label: str = ""                             # what it is for, e.g. a fleet's target name

    @property
    def run_id(self) -> str | None:
        return self.run_dir.run_id if self.run_dir else None

    @property
    def state_dir(self) -> Path | None:
        return self.run_dir.state_dir if self.run_dir else self.state


class Executor(Protocol):
    def submit(self, job: Job, *, limit: int | None = None) -> Future:
        """Start `job`; raise Busy when `limit` runs of its runbook are already under way.
        The future's result is the RunResult."""

    def active(self, runbook: str) -> int:
        """How many plans and runs of `runbook` are under way."""

    def shutdown(self, wait: bool = True) -> None:
        """Accept no more jobs; with `wait`, return once the running ones have finished."""


def execute(job: Job) -> RunResult:
    """Carry out one job in this process, as any executor's worker does: secrets named by
    reference are read here, the deadline counts from now."""
    import time

    from . import api
    fn = {"run": api.run, "check": api.check}.get(job.mode, api.plan)
    params = dict(job.params)
    for name, source in job.secret_sources.items():
        p = job.runbook.params.get(name)
        if p is not None and p.secret and name not in params and source.partition(":")[0] in REFERENCE_KINDS:
            params[name] = CredentialRef.from_source(source).resolve(name)
    deadline = time.monotonic() + job.deadline if job.deadline else None
    return fn(job.runbook, params, state_dir=job.state_dir, secret_sources=job.secret_sources,
              run_dir=job.run_dir, keep=job.keep, deadline=deadline)


def job_message(job: Job) -> dict[str, Any]:
    """The job as a broker message may carry it: the runbook's source, the mode, the plain
    parameters and where each secret is to be read. No secret value, ever: a secret that was
    typed, prompted for or written out cannot be sent (InputError naming it)."""
    from .rundir import dumps
    plain: dict[str, Any] = {}
    for name, value in job.params.items():
        p = job.runbook.params.get(name)
        if p is not None and p.secret:
            if job.secret_sources.get(name, "").partition(":")[0] not in REFERENCE_KINDS:
                raise InputError(f"secret {name!r} cannot be sent to a worker: it was not given by reference",
                                 input=name, hint="name where each worker reads it: an environment variable, "
                                                  "a 0600 file or the OS keyring")
            continue
        plain[name] = value
    refs = {k: v for k, v in job.secret_sources.items() if v.partition(":")[0] in REFERENCE_KINDS}
    return {"runbook": job.runbook.source, "mode": job.mode, "params": json.loads(dumps(plain)),
            "secret_sources": refs, "deadline": job.deadline, "keep": job.keep, "label": job.label,
            "run_id": job.run_id}


def job_from_message(message: dict[str, Any], state: Path | None = None) -> Job:
    """The job a message describes, to run here (its runbook loaded by source, its state in
    this machine's state folder). A job whose sender made its run directory beforehand (the
    portal) runs in the directory of that id, so a sender sharing the state folder follows
    its progress; a second delivery of it (its first worker was lost) starts a run of its own."""
    from . import api
    rb = api.load_runbook(str(message["runbook"]))
    values, _ = api.resolve_params(rb, dict(message.get("params") or {}), environ={}, need_secrets=False)
    run_dir = None
    if message.get("run_id"):
        sd = Path(state) if state else default_state_dir()
        if not (sd / "runs" / str(message["run_id"]) / RunDir.INFO).exists():
            run_dir = RunDir.prepared(sd, str(message["run_id"]))
    return Job(rb, str(message["mode"]), values, run_dir, secret_sources=dict(message.get("secret_sources") or {}),
               state=state, deadline=message.get("deadline"), keep=message.get("keep"),
               label=str(message.get("label") or ""))


class UnderWay:
    """How many jobs of each runbook an executor has under way, admitted against a limit."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count: dict[str, int] = {}

    def admit(self, name: str, limit: int | None) -> None:
        """Count one more job of runbook `name`, or raise Busy at `limit`."""
        with self._lock:
            if limit is not None and self._count.get(name, 0) >= limit:
                raise Busy(f"{self._count[name]} run(s) of {name} are under way, the most allowed at once",
                           hint="try again when one has finished", runbook=name, limit=limit)
            self._count[name] = self._count.get(name, 0) + 1

    def release(self, name: str) -> None:
        with self._lock:
            self._count[name] -= 1

    def __call__(self, name: str) -> int:
        with self._lock:
            return self._count.get(name, 0)


def tell_done(job: Job, result: RunResult | None, error: BaseException | None) -> None:
    """Call the job's `on_done`, if any; its failure is logged, never raised."""
    if job.on_done is not None:
        try:
            job.on_done(result, error)
        except Exception:
            log.exception("after %s of %s", job.mode, job.runbook.name)


class ThreadExecutor:
    """Jobs on a pool of threads in this process (a stage already runs on a thread of its own
    inside the engine, so a job's thread mostly waits)."""

    def __init__(self, workers: int = 4) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="psrunner-job")
        self.active = UnderWay()

    def submit(self, job: Job, *, limit: int | None = None) -> Future:
        self.active.admit(job.runbook.name, limit)
        try:
            return self._pool.submit(self._work, job)
        except BaseException:
            self.active.release(job.runbook.name)
            raise

    def _work(self, job: Job) -> RunResult:
        """Run the job; the future holds its result, or the error it ended with (after
        `on_done` heard of it), so a caller waiting on the future learns why."""
        result: RunResult | None = None
        error: BaseException | None = None
        try:
            result = execute(job)
        except BaseException as e:       # the run directory records how it ended (engine)
            error = e
            log.info("%s of %s (%s) ended with %s", job.mode, job.runbook.name, job.label or job.run_id,
                     type(e).__name__)
        finally:
            self.active.release(job.runbook.name)
        tell_done(job, result, error)
        if error is not None:
            raise error
        assert result is not None
        return result

    def shutdown(self, wait: bool = True) -> None:
        self._pool.shutdown(wait=wait)


__all__ = ["Busy", "Executor", "Job", "ThreadExecutor", "UnderWay", "execute", "job_from_message", "job_message",
           "tell_done"]
