"""What a result means to a scheduler: exit codes, the gravest of several, refusals that
are remembered per target and are no drift, and the monitoring forms of a result."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from runner.outputs import junit, nagios, nagios_code, summary
from runner.refusals import KnownRefusals, settle
from runner.results import ExitCode, Refusal, RunResult, RunStatus, StageResult, Status, worst


def stage(sid: str, status: Status, *, changed: bool = False, **kw) -> StageResult:
    return StageResult(id=sid, title=sid, kind="test", status=status, changed=changed, **kw)


def result(mode: str, *stages: StageResult, status: RunStatus = RunStatus.SUCCEEDED) -> RunResult:
    return RunResult(run_id="r1", runbook="book", mode=mode, status=status, stages=list(stages))


ACTION = stage("grant", Status.ACTION_REQUIRED, action={"summary": "press the button"})
DRIFT = stage("settings", Status.CHANGED, changed=True, messages=["would set X"])
OK = stage("app", Status.OK)


@pytest.mark.parametrize("res, code", [
    (result("check", OK), ExitCode.OK),
    (result("check", OK, DRIFT), ExitCode.DRIFT),
    (result("check", OK, ACTION, status=RunStatus.ACTION_REQUIRED), ExitCode.ACTION),
    (result("check", DRIFT, ACTION, status=RunStatus.ACTION_REQUIRED), ExitCode.DRIFT),
    (result("plan", DRIFT, ACTION, status=RunStatus.ACTION_REQUIRED), ExitCode.OK),     # a plan previews
    (result("run", DRIFT, ACTION, status=RunStatus.ACTION_REQUIRED), ExitCode.ACTION),
    (result("run", stage("s", Status.FAILED, error={"exit_code": 2}), status=RunStatus.FAILED), ExitCode.USAGE),
    (result("run", stage("s", Status.FAILED, error={"exit_code": 1}), status=RunStatus.FAILED), ExitCode.FAILED),
    (result("check", status=RunStatus.INTERRUPTED), ExitCode.INTERRUPTED),
])
def test_exit_code(res, code):
    assert res.exit_code() == code


def test_a_refusal_is_drift_only_when_strict():
    refused = stage("settings", Status.OK, refusals=[Refusal("X", True, "no", "2026-05-01")])
    assert result("check", refused).exit_code() == ExitCode.OK
    assert result("check", refused).exit_code(strict=True) == ExitCode.DRIFT


def test_worst_ranks_failure_above_bad_input_above_drift_above_action():
    assert worst([0, 4, 3]) == ExitCode.DRIFT
    assert worst([0, 2, 1, 3]) == ExitCode.FAILED
    assert worst([130, 1]) == ExitCode.INTERRUPTED
    assert worst([4, 0]) == ExitCode.ACTION and worst([]) == ExitCode.OK


def test_refusals_are_remembered_per_target_for_the_value_asked(tmp_path):
    known = KnownRefusals(tmp_path, "psrp:host-a:5986")
    applied = stage("spo", Status.CHANGED, changed=True, refusals=[Refusal("X", True, "the platform says no")])
    settle(applied, known, run_id="run-1", planning=False)
    (r,) = applied.refusals
    assert r.first_run == "run-1" and r.since and len(r.since) == 10          # met today, by run-1
    # a later plan asking X = true again: a refusal, not a change
    planned = stage("spo", Status.CHANGED, changed=True, diff={"before": {"X": False, "Y": 1},
                                                               "after": {"X": True, "Y": 1}})
    settle(planned, known, run_id="run-2", planning=True)
    assert planned.status == Status.OK and planned.changed is False
    assert planned.refusals[0].first_run == "run-1"
    # another value of X, another difference, or another target: asked afresh
    for before, after, target in [({"X": True}, {"X": False}, "psrp:host-a:5986"),
                                  ({"X": False, "Y": 1}, {"X": True, "Y": 2}, "psrp:host-a:5986"),
                                  ({"X": False}, {"X": True}, "psrp:host-b:5986")]:
        again = stage("spo", Status.CHANGED, changed=True, diff={"before": before, "after": after})
        settle(again, KnownRefusals(tmp_path, target), run_id="run-3", planning=True)
        assert again.status == Status.CHANGED and again.changed


def test_nagios_line_and_status():
    line, status = nagios(result("check", OK, DRIFT))
    assert status == 2
    assert line == ("PSRUNNER CRITICAL - book: drift in 1 stage(s): settings | 'stages'=2;;;0 'ok'=0;;;0 "
                    "'would_change'=1;;;0 'action_required'=0;;;0 'failed'=0;;;0 'refused'=0;;;0 "
                    "'duration'=0.0s;;;0")
    assert [nagios_code(c) for c in (0, 4, 3, 1, 2, 130)] == [
        (0, "OK"), (1, "WARNING"), (2, "CRITICAL"), (3, "UNKNOWN"), (3, "UNKNOWN"), (3, "UNKNOWN")]


def test_junit_in_a_check_and_in_a_run():
    failed = stage("host", Status.FAILED, error={"type": "TransportError", "message": "connection failed"})
    skipped = stage("later", Status.SKIPPED, messages=["not run: stage host failed"])
    suite = ET.fromstring(junit(result("check", OK, DRIFT, ACTION, failed, skipped))).find("testsuite")
    assert {k: suite.get(k) for k in ("tests", "failures", "errors", "skipped")} == {
        "tests": "5", "failures": "2", "errors": "1", "skipped": "1"}
    kinds = {c.get("name"): [(e.tag, e.get("type")) for e in c] for c in suite.iter("testcase")}
    assert kinds == {"app": [], "settings": [("failure", "drift")], "grant": [("failure", "action-required")],
                     "host": [("error", "TransportError")], "later": [("skipped", None)]}
    run = ET.fromstring(junit(result("run", OK, DRIFT))).find("testsuite")
    assert run.get("failures") == "0"                     # a change in a run is what it is for


def test_summary_is_one_line():
    assert summary(result("check", OK, ACTION)) == "book: in place, a person must act: grant (run r1, exit 4)"
    assert summary(result("run", DRIFT)) == "book: changed settings (run r1, exit 0)"
