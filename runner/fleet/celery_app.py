"""Celery as an executor: one task per target, taken by `psrunner worker`s anywhere that can
reach the broker, the targets, and the secrets the target's references name.

A task's message is `executor.job_message`: the runbook's source, the mode, the plain
parameters and the secrets' *references* (never a value: each worker reads the secret where
it runs). Its result (the run's result as JSON, secrets masked) comes back through the result
backend into the fleet's aggregate report.

Delivery: tasks are acknowledged late (`acks_late`) and rejected when their worker is lost
(`reject_on_worker_lost`), and a message a worker took but never acknowledged (it was killed)
is given to another worker once `redeliver_after` seconds have passed since it was taken (the
Redis transport's visibility timeout, swept every second). The other worker runs the target
again, which converges because runbooks are idempotent. `redeliver_after` must exceed the
longest target deadline, or a target still running would be given out twice.

The worker uses a thread pool: a target's work is waiting on the network, and the engine runs
each stage on a thread of its own anyway."""

from __future__ import annotations

import json
import logging
import os
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from celery import Celery

from ..errors import InputError, RunnerError
from ..executor import Job, UnderWay, execute, job_from_message, job_message, tell_done
from ..outputs import error_document, verdict
from ..results import RunResult
from ..rundir import dumps

log = logging.getLogger("psrunner.fleet.celery")

TASK = "psrunner.run_target"
DEFAULT_REDELIVER_AFTER = 3600.0     # seconds (the Redis transport's default visibility timeout)
WAIT_SLACK = 60.0                    # seconds for a task to wait in the queue before a worker takes it


def make_app(broker: str, backend: str | None = None, *, redeliver_after: float = DEFAULT_REDELIVER_AFTER) -> Celery:
    """A Celery app with psrunner's task, for the broker (and result backend: the broker when
    not given) at these URLs."""
    if not broker:
        raise InputError("--executor celery needs a broker", input="--broker",
                         hint="--broker redis://HOST:6379/0 (or set PSRUNNER_BROKER)")
    app = Celery("psrunner", broker=broker, backend=backend or broker, set_as_current=False)
    app.conf.update(
        task_serializer="json", result_serializer="json", accept_content=["json"],
        task_acks_late=True, task_reject_on_worker_lost=True, worker_prefetch_multiplier=1,
        broker_transport_options={"visibility_timeout": redeliver_after, "unacked_restore_interval": 1,
                                  "unacked_restore_throttle": 1},
        result_expires=7 * 86400, broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False, task_send_sent_event=False,
    )

    @app.task(name=TASK, acks_late=True, reject_on_worker_lost=True)
    def run_target(message: dict[str, Any]) -> dict[str, Any]:
        """One target's plan, check or run, on this worker."""
        label = f"{message.get('mode')} of {message.get('runbook')} on {message.get('label') or '?'}"
        try:
            result = execute(job_from_message(message))
        except RunnerError as e:
            log.warning("%s: exit %d: %s", label, e.exit_code, e.message)
            return {"exit_code": e.exit_code, "error": error_document(e, e.exit_code)["error"]}
        code = int(result.exit_code())
        (log.warning if code else log.info)("%s: exit %d: %s (run %s)", label, code, verdict(result), result.run_id)
        return {"exit_code": code, "result": json.loads(dumps(result.to_dict()))}

    return app


class CeleryExecutor:
    """runner.executor's interface over Celery: `submit` sends the job's message and returns
    a future that a thread completes from the result backend."""

    def __init__(self, broker: str, backend: str | None = None, *,
                 redeliver_after: float = DEFAULT_REDELIVER_AFTER) -> None:
        self.app = make_app(broker, backend, redeliver_after=redeliver_after)
        # how much longer than a target's deadline its answer may take: a lost worker's task
        # waits `redeliver_after` before another worker takes it, then queues
        self.extra_wait = redeliver_after + WAIT_SLACK
        self.active = UnderWay()
        self._closed = False

    def submit(self, job: Job, *, limit: int | None = None) -> Future:
        if self._closed:
            raise RuntimeError("the executor is shut down")
        message = job_message(job)                  # refuses a secret that is not a reference
        self.active.admit(job.runbook.name, limit)
        future: Future = Future()
        try:
            sent = self.app.send_task(TASK, kwargs={"message": message})
        except BaseException:
            self.active.release(job.runbook.name)
            raise
        wait = (job.deadline or 3600.0) + self.extra_wait
        threading.Thread(target=self._collect, args=(sent, future, wait, job), daemon=True,
                         name=f"psrunner-celery-{job.label or job.runbook.name}").start()
        return future

    def _collect(self, sent: Any, future: Future, wait: float, job: Job) -> None:
        try:
            answer = sent.get(timeout=wait, propagate=True, interval=0.2, disable_sync_subtasks=False)
            if "error" in answer:
                err = answer["error"]
                raise (InputError if err.get("exit_code") == 2 else RunnerError)(
                    err.get("message", ""), hint=err.get("fix"), **({"input": err.get("input")}
                                                                    if err.get("exit_code") == 2 else {}))
            result = RunResult.from_dict(answer["result"])
        except BaseException as e:
            self.active.release(job.runbook.name)
            tell_done(job, None, e)
            future.set_exception(e)
        else:
            self.active.release(job.runbook.name)
            tell_done(job, result, None)
            future.set_result(result)

    def shutdown(self, wait: bool = True) -> None:
        """Send no more tasks (those sent go on, on their workers)."""
        self._closed = True


def run_worker(broker: str, *, concurrency: int = 2, hostname: str | None = None, state_dir: Path | None = None,
               loglevel: str = "WARNING", redeliver_after: float = DEFAULT_REDELIVER_AFTER) -> None:
    """`psrunner worker`: take psrunner's tasks from `broker` until stopped."""
    if state_dir is not None:
        os.environ["PSRUNNER_STATE_DIR"] = str(state_dir)     # where this worker's runs are kept
    app = make_app(broker, redeliver_after=redeliver_after)
    argv = ["worker", f"--concurrency={concurrency}", "--pool=threads", f"--loglevel={loglevel}",
            "--without-gossip", "--without-mingle", "--without-heartbeat"]
    if hostname:
        argv.append(f"--hostname={hostname}")
    app.worker_main(argv)


__all__ = ["TASK", "CeleryExecutor", "make_app", "run_worker"]
