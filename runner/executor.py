"""Where runs execute: a small interface between a front end that accepts work (the portal
today, a fleet of hosts or tenants later) and whatever carries it out.

A front end describes a run as a `Job` (which runbook, plan or run, the checked parameters,
where the run directory is) and hands it to an `Executor`. It never waits on the job to show
progress: every run writes its events to its run directory as they happen (rundir.py), and
that is where progress is read from, whoever executes the run. So an executor only has to
run jobs, say how many of a runbook are under way, and refuse more than a limit.

`ThreadExecutor` runs jobs on threads of this process. A Celery executor implements the same
three methods (`submit`, `active`, `shutdown`) with workers that share the state folder; what
it must add is a way to hand over secrets without putting them in a broker message (a job's
secret parameters are `Secret` objects here, which cannot be pickled on purpose)."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

from .errors import RunnerError
from .results import RunResult
from .rundir import RunDir
from .runbook import Runbook

log = logging.getLogger("psrunner.executor")


class Busy(RunnerError):
    """As many runs of a runbook as allowed are under way; try again when one finishes."""


@dataclass
class Job:
    """One plan or run of a runbook with parameters already checked (api.resolve_params)."""
    runbook: Runbook
    mode: str                                   # "plan" | "run"
    params: dict[str, Any]
    run_dir: RunDir                             # made beforehand (api.new_run_dir): its id is known
    secret_sources: dict[str, str] = field(default_factory=dict)
    on_done: Callable[[RunResult | None, BaseException | None], None] | None = None

    @property
    def run_id(self) -> str:
        return self.run_dir.run_id

    @property
    def state_dir(self) -> Path:
        return self.run_dir.state_dir


class Executor(Protocol):
    def submit(self, job: Job, *, limit: int | None = None) -> Future:
        """Start `job`; raise Busy when `limit` runs of its runbook are already under way."""

    def active(self, runbook: str) -> int:
        """How many plans and runs of `runbook` are under way."""

    def shutdown(self, wait: bool = True) -> None:
        """Accept no more jobs; with `wait`, return once the running ones have finished."""


def execute(job: Job) -> RunResult:
    """Carry out one job in this process, as any executor's worker does."""
    from . import api
    fn = api.run if job.mode == "run" else api.plan
    return fn(job.runbook, job.params, state_dir=job.state_dir, secret_sources=job.secret_sources,
              run_dir=job.run_dir)


class ThreadExecutor:
    """Jobs on a pool of threads in this process (a stage already runs on a thread of its own
    inside the engine, so a job's thread mostly waits)."""

    def __init__(self, workers: int = 4) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="psrunner-job")
        self._lock = threading.Lock()
        self._active: dict[str, int] = {}

    def submit(self, job: Job, *, limit: int | None = None) -> Future:
        name = job.runbook.name
        with self._lock:
            if limit is not None and self._active.get(name, 0) >= limit:
                raise Busy(f"{self._active[name]} run(s) of {name} are under way, the most allowed at once",
                           hint="try again when one has finished", runbook=name, limit=limit)
            self._active[name] = self._active.get(name, 0) + 1
        try:
            return self._pool.submit(self._work, job)
        except BaseException:
            self._release(name)
            raise

    def _work(self, job: Job) -> RunResult | None:
        result: RunResult | None = None
        error: BaseException | None = None
        try:
            result = execute(job)
        except BaseException as e:       # the run directory records how it ended (engine)
            error = e
            log.warning("%s of %s (%s) ended with %s", job.mode, job.runbook.name, job.run_id, type(e).__name__)
        finally:
            self._release(job.runbook.name)
        if job.on_done is not None:
            try:
                job.on_done(result, error)
            except Exception:
                log.exception("after %s of %s", job.mode, job.runbook.name)
        return result

    def _release(self, name: str) -> None:
        with self._lock:
            self._active[name] -= 1

    def active(self, runbook: str) -> int:
        with self._lock:
            return self._active.get(runbook, 0)

    def shutdown(self, wait: bool = True) -> None:
        self._pool.shutdown(wait=wait)


__all__ = ["Busy", "Executor", "Job", "ThreadExecutor", "execute"]
