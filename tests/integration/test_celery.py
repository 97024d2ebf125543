"""Celery for real: a Redis broker and two `psrunner worker` processes take twenty targets; one
worker is SIGKILLed in the middle of a task. Its task goes to the other worker, every target
converges, nothing is duplicated in any simulated tenant, and no secret crosses the broker."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import threading
import time

import click
import pytest
from click.testing import CliRunner

from runner.cli import main
from runner.fleet.celery_app import CeleryExecutor
from runner.fleet.inventory import load_inventory
from runner.fleet.run import run_fleet
from tests.canary import Canaries
from tests.fleet_lab import fleet_lab
from tests.redis_broker import REDIS, Monitor, redis_server, workers

pytestmark = [pytest.mark.celery,
              pytest.mark.skipif(REDIS is None, reason="needs Debian's redis-server (`.ci/run` installs it)")]

RUNBOOK = "m365-backup-access"
REDELIVER = 8            # seconds before a lost worker's task goes to another worker


@click.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.pass_context
def _entry(ctx):
    main(ctx.args)


def decoded_bodies(monitor_text: str) -> str:
    """The broker's messages with their base64 bodies decoded (what a task really carried)."""
    return "\n".join(base64.b64decode(m).decode("utf-8", "replace")
                     for m in re.findall(r'"body": "([A-Za-z0-9+/=]+)"', monitor_text))


def run_json_of_pid(state, pid: int, stage: str) -> bool:
    """A run of worker `pid` has started `stage`."""
    runs = state / "runs"
    for d in runs.iterdir() if runs.is_dir() else []:
        try:
            if json.loads((d / "run.json").read_text()).get("pid") == pid and \
                    f'"stage": "{stage}", "type": "stage.start"' in (d / "events.jsonl").read_text():
                return True
        except (OSError, ValueError):
            continue
    return False


def test_two_workers_one_killed_mid_task_every_target_converges(tmp_path):
    with fleet_lab(tmp_path / "lab", 20, deadline=120) as lab, redis_server(tmp_path / "redis") as url:
        for st in lab.targets:
            st.host.state.delays["sharepoint/spo_module"] = 1.0       # every task sits a while on its host
        monitor = Monitor(url)
        wstate = tmp_path / "worker-state"
        with workers(url, 2, state_dir=wstate, env=lab.env, redeliver_after=REDELIVER) as (w1, w2):
            inv = load_inventory(lab.inventory)
            box = {}
            runner = threading.Thread(target=lambda: box.update(fleet=run_fleet(
                RUNBOOK, inv, inv.select(), mode="run", parallel=8,
                executor=CeleryExecutor(url, redeliver_after=REDELIVER), state_dir=tmp_path / "client")))
            t0 = time.monotonic()
            runner.start()
            while not run_json_of_pid(wstate, w1.pid, "spo-module"):
                assert time.monotonic() - t0 < 60, "worker 1 never reached a host stage"
                time.sleep(0.1)
            os.kill(w1.pid, signal.SIGKILL)                      # mid-task: its targets' runs stop dead
            w1.wait(10)                                           # reaped, as its supervisor would
            runner.join(300)
            assert not runner.is_alive()
            fleet = box["fleet"]

            killed = [d for d in (wstate / "runs").iterdir()
                      if json.loads((d / "run.json").read_text()).get("pid") == w1.pid
                      and json.loads((d / "run.json").read_text())["status"] == "running"]
            assert killed, "worker 1 was killed with no run under way"
            assert fleet.exit_code == 0, [(t.target, t.summary) for t in fleet.targets]
            assert all(t.exit_code == 0 and t.status == "succeeded" for t in fleet.targets)
            assert {t.result["run_dir"].rsplit("/runs/", 1)[0] for t in fleet.targets} == {str(wstate)}

            for st in lab.targets:                                  # converged, nothing twice
                apps = [a for a in st.tenant.state.applications.values()
                        if a.get("uniqueName") == "m365-backup-access"]
                assert len(apps) == 1, st.name
                sp = st.tenant.state.sp_by_app_id(apps[0]["appId"])
                assert len(st.tenant.state.assignments_of(sp["id"])) == 46, st.name
                assert len(apps[0]["passwordCredentials"]) == 1, st.name

            # the same fleet checked through the command line: in place
            r = CliRunner().invoke(_entry, ["fleet", "check", RUNBOOK, "-i", str(lab.inventory), "--executor",
                                            "celery", "--broker", url, "--parallel", "8", "-o", "json", "-q",
                                            "--state-dir", str(tmp_path / "client")])
            doc = json.loads(r.stdout)
            assert r.exit_code == 0 and {t["exit_code"] for t in doc["targets"]} == {0}

        seen = monitor.text()
        assert '"secret_sources"' in decoded_bodies(seen)            # the scan read real task messages
        made = {f.read_text().strip() for f in (wstate / "private").rglob("client-secret-*")}   # the runs' secrets
        canaries = Canaries(made | {v for st in lab.targets for v in st.secrets.values()})
        assert len(made) >= 20 and canaries.scan({"broker": seen, "task bodies": decoded_bodies(seen)}) == []
