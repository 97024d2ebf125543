"""A Celery beat schedule for a fleet: every target of an inventory checked every 15 minutes
and put back (a run: it changes only what differs) every night, by `psrunner worker`s.

    PSRUNNER_BROKER=redis://broker:6379/0 PSRUNNER_INVENTORY=/etc/psrunner/fleet.toml \\
        celery -A celery_beat beat          # from this folder; the workers: psrunner worker

Each entry sends one target's task: parameters and credential *references* (each worker reads
the secrets itself), never a secret value. Exit codes travel back with each task's result
(`exit_code`: 0 in place, 3 drift, 4 a person must act, 1 failed, 2 bad input), and a worker
logs every target that did not end 0 at WARNING, which is what monitoring watches."""

from __future__ import annotations

import os

from celery.schedules import crontab

from runner import api
from runner.executor import job_message
from runner.fleet.celery_app import TASK, make_app
from runner.fleet.inventory import load_inventory
from runner.fleet.run import job_for

RUNBOOK = "m365-backup-access"
BROKER = os.environ.get("PSRUNNER_BROKER", "redis://localhost:6379/0")
INVENTORY = os.environ.get("PSRUNNER_INVENTORY", "/etc/psrunner/fleet.toml")

app = make_app(BROKER)


def fleet_schedule(inventory_path: str, runbook: str = RUNBOOK) -> dict[str, dict]:
    """Beat entries: a check of each target every 15 minutes, a run every night at 02:00."""
    inv = load_inventory(inventory_path)
    rb = api.load_runbook(runbook)
    entries = {}
    for target in inv.select():
        for mode, when in (("check", crontab(minute="*/15")), ("run", crontab(hour="2", minute="0"))):
            job = job_for(rb, target, inv, mode=mode, state_dir=None, keep=None)
            entries[f"{runbook} {mode} {target.name}"] = {
                "task": TASK, "schedule": when, "kwargs": {"message": job_message(job)},
                "options": {"expires": 15 * 60 if mode == "check" else 6 * 3600},   # a late check is no use
            }
    return entries


app.conf.beat_schedule = fleet_schedule(INVENTORY)
