"""The executor runs jobs off the caller's thread, into run directories known beforehand, and
refuses more runs of a runbook than its limit."""

from __future__ import annotations

import threading

import pytest

from runner import api
from runner.errors import InputError
from runner.executor import Busy, Job, ThreadExecutor
from runner.results import RunStatus
from runner.runbook_loader import parse

from . import gate_kind

BOOK = '''
name = "gated"
title = "Waits at a gate"
[params.gate]
type = "str"
required = true
[[stages]]
id = "wait"
kind = "test.gate"
inputs = { gate = "${params.gate}" }
'''


@pytest.fixture(autouse=True)
def gate():
    gate_kind.install()
    yield
    gate_kind.uninstall()


def test_a_job_runs_in_its_run_directory_and_reports_back(tmp_path):
    rb = parse(BOOK, "gated.toml")
    ex = ThreadExecutor(workers=2)
    rd = api.new_run_dir(rb, tmp_path)
    done = threading.Event()
    seen = {}

    def on_done(result, error):
        seen.update(result=result, error=error)
        done.set()

    gate_kind.GATES["g1"] = threading.Event()
    fut = ex.submit(Job(rb, "run", {"gate": "g1"}, rd, on_done=on_done))
    assert ex.active("gated") == 1 and not done.is_set()
    gate_kind.GATES["g1"].set()
    assert done.wait(10) and fut.result(10) is seen["result"]
    assert seen["error"] is None and seen["result"].run_id == rd.run_id
    assert seen["result"].status == RunStatus.SUCCEEDED and ex.active("gated") == 0
    assert [r["run_id"] for r in api.runs(tmp_path)] == [rd.run_id]      # `psrunner runs` sees it
    ex.shutdown()


def test_more_runs_of_a_runbook_than_its_limit_are_refused(tmp_path):
    rb = parse(BOOK, "gated.toml")
    ex = ThreadExecutor(workers=4)
    gate_kind.GATES["g2"] = threading.Event()
    first = ex.submit(Job(rb, "plan", {"gate": "g2"}, api.new_run_dir(rb, tmp_path)), limit=1)
    with pytest.raises(Busy) as e:
        ex.submit(Job(rb, "plan", {"gate": "g2"}, api.new_run_dir(rb, tmp_path)), limit=1)
    assert str(e.value).startswith("1 run(s) of gated are under way, the most allowed at once")
    gate_kind.GATES["g2"].set()
    first.result(10)
    ex.submit(Job(rb, "plan", {"gate": "g2"}, api.new_run_dir(rb, tmp_path)), limit=1).result(10)
    ex.shutdown()


def test_a_message_carries_the_run_id_made_beforehand_and_a_second_delivery_runs_apart(tmp_path):
    from runner.executor import job_from_message, job_message
    rb = api.load_runbook("sharepoint-scripts")
    rd = api.new_run_dir(rb, tmp_path / "portal")
    message = job_message(Job(rb, "plan", {"dest": str(tmp_path / "out")}, rd))
    assert message["run_id"] == rd.run_id
    shared = job_from_message(message, tmp_path / "portal")          # a worker sharing the state folder
    assert shared.run_dir.path == rd.path
    apart = job_from_message(message, tmp_path / "worker")            # one with a folder of its own
    assert apart.run_dir.run_id == rd.run_id and apart.run_dir.path.is_dir()
    (rd.path / "run.json").write_text("{}")                            # the first delivery began the run
    assert job_from_message(message, tmp_path / "portal").run_dir is None    # so this one makes its own
    with pytest.raises(InputError, match="is not a run id"):
        job_from_message({**message, "run_id": "../../etc"}, tmp_path / "worker")
