"""The engine: plan vs run, outputs between stages, failure policy, deadlines, Ctrl-C,
the run directory, target locks and resume."""

from __future__ import annotations

import json
import os
import signal
import threading

import pytest

from runner import api
from runner.errors import LockedError
from runner.registry import KINDS, KindSpec
from runner.results import RunStatus, Status
from runner.locks import TargetLock
from runner.runbook_loader import parse
from runner.secrets import Secret

from . import kinds_for_tests as k

MOD = "tests.unit.kinds_for_tests"


@pytest.fixture(autouse=True)
def test_kinds():
    k.reset()
    added = {
        "test.value": KindSpec("test.value", MOD, "ensure_value", None),
        "test.slow": KindSpec("test.slow", MOD, "slow", "psrp"),
        "test.crash": KindSpec("test.crash", MOD, "crash", None),
        "test.person": KindSpec("test.person", MOD, "needs_person", None),
        "test.meet": KindSpec("test.meet", MOD, "meet", None),
    }
    KINDS.update(added)
    yield
    for name in added:
        KINDS.pop(name)


BOOK = '''
name = "e"
title = "Engine test"
[params.colour]
type = "str"
default = "blue"
[params.password]
type = "secret"
[targets.host]
type = "psrp"
host = "h1"
port = 5986
[[stages]]
id = "first"
kind = "test.value"
inputs = { key = "a", value = "${params.colour}" }
[[stages]]
id = "second"
kind = "test.value"
inputs = { key = "b", value = "x", seen = "${stages.first.outputs.stored}" }
%s
'''


def book(extra: str = ""):
    return parse(BOOK % extra, "e.toml")


def go(mode, rb, state, **params):
    values = {"colour": "blue", **params}
    fn = api.plan if mode == "plan" else api.run
    return fn(rb, values, state_dir=state, opener=k.opener)


def test_plan_changes_nothing_and_run_converges(tmp_path):
    rb = book()
    p = go("plan", rb, tmp_path)
    assert [s.status for s in p.stages] == [Status.CHANGED, Status.CHANGED]
    assert k.WORLD["values"] == {}
    r1 = go("run", rb, tmp_path)
    assert r1.status == RunStatus.SUCCEEDED and r1.changed
    assert k.WORLD["values"] == {"a": "blue", "b": "x"}
    assert r1.stage("second").outputs["seen"] == "blue"      # outputs flow between stages
    r2 = go("run", rb, tmp_path)
    assert [s.status for s in r2.stages] == [Status.OK, Status.OK] and not r2.changed


def test_plan_marks_outputs_of_changing_stages_as_unknown(tmp_path):
    p = go("plan", book(), tmp_path)
    # `first` would change, so `second` sees an unknown value, reported as such
    assert p.stage("second").outputs["seen"].__class__.__name__ == "Unknown"
    report = json.loads((tmp_path / "runs" / p.run_id / "report.json").read_text())
    assert report["stages"][1]["outputs"]["seen"] == "(known after apply: first.stored)"


def test_failure_stops_the_run_unless_continue(tmp_path):
    k.WORLD["fail"].add("first")
    r = go("run", book(), tmp_path)
    assert r.status == RunStatus.FAILED
    assert r.stage("first").status == Status.FAILED
    assert r.stage("first").error["message"] == "first was told to fail"
    assert r.stage("first").error["hint"] == "clear the failure"
    assert r.stage("second").status == Status.SKIPPED
    assert r.stage("second").messages == ["not run: stage first failed"]
    rb = parse((BOOK % "").replace('id = "first"\n', 'id = "first"\non_failure = "continue"\n'), "e.toml")
    r = go("run", rb, tmp_path)
    assert r.stage("second").status == Status.CHANGED


def test_when_false_skips(tmp_path):
    rb = book('[[stages]]\nid = "third"\nkind = "test.value"\nwhen = "params.colour == \'red\'"\n'
              'inputs = { key = "c", value = 1 }\n')
    r = go("run", rb, tmp_path)
    assert r.stage("third").status == Status.SKIPPED
    assert r.stage("third").messages == ["condition is false: params.colour == 'red'"]


def test_deadline_stops_remote_work(tmp_path):
    rb = book('[[stages]]\nid = "slow"\nkind = "test.slow"\ntimeout = 0.3\ninputs = { seconds = 30 }\n')
    r = go("run", rb, tmp_path)
    s = r.stage("slow")
    assert s.status == Status.FAILED and s.error["type"] == "StageTimeout"
    assert s.error["message"] == "stage slow did not finish within 0.3 s; remote work was asked to stop"
    assert k.WORLD["interrupts"] == 1 and k.WORLD["closed"] == 1
    assert s.duration < 5


def test_ctrl_c_records_an_interrupted_run(tmp_path):
    rb = book('[[stages]]\nid = "slow"\nkind = "test.slow"\ninputs = { seconds = 30 }\n'
              '[[stages]]\nid = "after"\nkind = "test.value"\ninputs = { key = "z", value = 1 }\n')
    # Ctrl-C once the slow stage is running, however long getting there takes on a busy machine
    def interrupt_when_slow_runs():
        if k.WORLD["slow_started"].wait(60):
            os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt_when_slow_runs, daemon=True).start()
    r = go("run", rb, tmp_path)
    assert r.status == RunStatus.INTERRUPTED
    assert r.stage("slow").status == Status.FAILED and r.stage("slow").error["exit_code"] == 130
    assert r.stage("after").status == Status.SKIPPED
    assert k.WORLD["interrupts"] >= 1
    info = json.loads((tmp_path / "runs" / r.run_id / "run.json").read_text())
    assert info["status"] == "interrupted"


MEET = ('[[stages]]\nid = "left"\nkind = "test.meet"\ninputs = { linger = 0.3, fail = %s }\n'
        '[[stages]]\nid = "right"\nkind = "test.meet"\nconcurrent = true\n'
        'inputs = { seen = "${stages.second.outputs.stored}" }\n'
        '[[stages]]\nid = "last"\nkind = "test.value"\ninputs = { key = "z", value = 1 }\n')


def test_a_concurrent_stage_runs_alongside_the_one_before_and_is_recorded_after_it(tmp_path):
    r = go("run", book(MEET % "false"), tmp_path)
    assert r.status == RunStatus.SUCCEEDED, [(s.id, s.messages) for s in r.stages]
    assert [s.id for s in r.stages] == ["first", "second", "left", "right", "last"]
    assert k.WORLD["calls"][-1] == "last"            # after both ended
    left, right = r.stage("left"), r.stage("right")
    assert left.status == right.status == Status.CHANGED
    assert right.duration < left.duration            # its own time, not the group's
    lines = (tmp_path / "runs" / r.run_id / "events.jsonl").read_text().splitlines()
    seen = [(e["type"], e["stage"]) for e in map(json.loads, lines) if e["stage"] in ("left", "right")]
    assert seen[:2] == [("stage.start", "left"), ("stage.start", "right")]
    assert seen[2:] == [("stage.end", "left"), ("stage.end", "right")]      # recorded in the runbook's order


def test_a_stage_of_a_group_that_fails_stops_what_follows_but_not_its_partner(tmp_path):
    r = go("run", book(MEET % "true"), tmp_path)
    assert r.status == RunStatus.FAILED
    assert (r.stage("left").status, r.stage("right").status) == (Status.FAILED, Status.CHANGED)
    assert r.stage("last").messages == ["not run: stage left failed"]


def test_resume_skips_done_stages_with_same_inputs(tmp_path):
    f = tmp_path / "e.toml"
    f.write_text(BOOK % "")
    rb = api.load_runbook(str(f))
    k.WORLD["fail"].add("second")
    r1 = go("run", rb, tmp_path)
    assert r1.status == RunStatus.FAILED and k.WORLD["calls"] == ["first", "second"]
    k.WORLD["fail"].clear()
    k.WORLD["calls"].clear()
    r2 = api.resume(r1.run_id, state_dir=tmp_path, opener=k.opener, environ={})
    assert r2.run_id == r1.run_id and r2.resumed_from == r1.run_id
    assert k.WORLD["calls"] == ["second"]                       # first was not repeated
    assert r2.stage("first").status == Status.CHANGED
    assert "not repeated on resume" in r2.stage("first").messages[-1]
    assert r2.status == RunStatus.SUCCEEDED


def test_run_directory_holds_artifacts_with_secrets_masked(tmp_path):
    rb = book('[[stages]]\nid = "boom"\nkind = "test.crash"\n')
    pw = Secret("very-secret-pw-1", "password")
    r = api.run(rb, {"colour": "blue", "password": pw}, state_dir=tmp_path, opener=k.opener,
                secret_sources={"password": "env:PSRUNNER_PASSWORD"})
    d = tmp_path / "runs" / r.run_id
    assert sorted(p.name for p in d.iterdir()) == ["events.jsonl", "report.json", "run.json", "run.lock",
                                                        "scripts", "stages"]
    assert sorted(p.name for p in (d / "stages").iterdir()) == ["boom.json", "first.json", "second.json"]
    everything = "".join(p.read_text() for p in d.rglob("*") if p.is_file())
    assert "very-secret-pw-1" not in everything
    assert r.stage("boom").error["message"] == "crashed holding ********"
    info = json.loads((d / "run.json").read_text())
    assert info["params"]["password"] == "********"
    assert info["secret_sources"] == {"password": "env:PSRUNNER_PASSWORD"}
    events = [json.loads(line) for line in (d / "events.jsonl").read_text().splitlines()]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[0]["type"] == "run.start" and events[-1]["type"] == "run.end"
    assert all(e["time"].endswith("Z") for e in events)


def test_action_required_is_its_own_run_status(tmp_path):
    r = go("run", book('[[stages]]\nid = "person"\nkind = "test.person"\n'), tmp_path)
    assert r.status == RunStatus.ACTION_REQUIRED
    assert r.stage("person").action["steps"] == ["one", "two"]


def test_a_held_target_lock_blocks_a_second_run(tmp_path):
    rb = book('[[stages]]\nid = "slow"\nkind = "test.slow"\ninputs = { seconds = 0 }\n')
    held = TargetLock(tmp_path, "psrp:h1", "other-run")
    held.acquire()
    try:
        with pytest.raises(LockedError) as e:
            go("run", rb, tmp_path)
        assert e.value.message == f"another run (other-run, pid {os.getpid()}) is working on psrp:h1"
        (blocked,) = [r for r in api.runs(tmp_path) if r["mode"] == "run"]
        assert blocked["status"] == "failed"          # the run directory says how it ended
        report = json.loads((tmp_path / "runs" / blocked["run_id"] / "report.json").read_text())
        assert report["error"]["type"] == "LockedError" and report["stages"] == []
    finally:
        held.release()
    assert go("run", rb, tmp_path).status == RunStatus.SUCCEEDED


def test_metrics_count_statuses_and_connector_numbers(tmp_path):
    rb = book('[[stages]]\nid = "slow"\nkind = "test.slow"\ninputs = { seconds = 0 }\n')
    r = go("run", rb, tmp_path)
    assert r.metrics["changed"] == 2 and r.metrics["ok"] == 1 and r.metrics["fake_requests"] == 3
