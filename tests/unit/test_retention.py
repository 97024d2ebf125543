"""Run retention: checks keep the newest N of a runbook and targets by default, --keep N for
any command, `runs prune --older-than` by age; never a run under way, never private files."""

from __future__ import annotations

import datetime as dt
import json
import os

import click
import pytest
from click.testing import CliRunner

from runner import api
from runner.cli import cli, main
from runner.errors import InputError
from runner.registry import KINDS, KindSpec
from runner.retention import keep_newest, parse_age, prune
from runner.runbook_loader import parse
from runner.rundir import RunDir

from . import kinds_for_tests as k


@click.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.pass_context
def _entry(ctx):
    main(ctx.args)

BOOK = '''
name = "keeper"
title = "Sets a value"
[params.value]
type = "str"
default = "a"
[[stages]]
id = "set"
kind = "test.value"
inputs = { key = "k", value = "${params.value}" }
'''


@pytest.fixture(autouse=True)
def value_kind():
    k.reset()
    KINDS["test.value"] = KindSpec("test.value", "tests.unit.kinds_for_tests", "ensure_value", None)
    yield
    KINDS.pop("test.value")


def fake_run(state, run_id: str, *, mode="check", started="2026-01-01T00:00:00.000Z", status="succeeded",
             live=False, runbook="keeper", targets=("graph:contoso",)):
    d = state / "runs" / run_id
    (d / "stages").mkdir(parents=True)
    (d / "run.json").write_text(json.dumps({"run_id": run_id, "runbook": runbook, "mode": mode, "status": status,
                                            "source": f"builtin:{runbook}", "started": started,
                                            "targets": list(targets), "pid": os.getpid()}))
    (d / "report.json").write_text("{}" * 100)
    if live:                           # a process works on it: it holds the run's lock
        rd = RunDir(state, run_id)
        rd.hold()
        HELD.append(rd)
    return d


HELD: list[RunDir] = []


@pytest.fixture(autouse=True)
def let_go():
    yield
    while HELD:
        HELD.pop().let_go()


def test_checks_keep_the_newest_by_default_and_keep_overrides(tmp_path, monkeypatch):
    monkeypatch.setenv("PSRUNNER_KEEP_CHECKS", "3")
    rb = parse(BOOK, "keeper.toml")
    ids = [api.check(rb, {"value": "a"}, state_dir=tmp_path).run_id for _ in range(5)]
    plans = [api.plan(rb, {"value": "a"}, state_dir=tmp_path).run_id for _ in range(2)]
    left = {r["run_id"] for r in api.runs(tmp_path)}
    assert left == set(ids[-3:]) | set(plans)                     # plans are not checks: all kept
    api.plan(rb, {"value": "a"}, state_dir=tmp_path, keep=1)
    assert len([r for r in api.runs(tmp_path) if r["mode"] == "plan"]) == 1
    monkeypatch.setenv("PSRUNNER_KEEP_CHECKS", "many")
    before = len(api.runs(tmp_path))
    with pytest.raises(InputError, match="PSRUNNER_KEEP_CHECKS='many' is not a whole number"):
        api.check(rb, {"value": "a"}, state_dir=tmp_path)
    assert len(api.runs(tmp_path)) == before                      # refused before the check ran


def test_keep_groups_by_runbook_targets_and_mode_and_spares_runs_under_way(tmp_path):
    for i in range(4):
        fake_run(tmp_path, f"c{i}", started=f"2026-01-0{i + 1}T00:00:00.000Z")
    fake_run(tmp_path, "other-target", targets=("graph:fabrikam",))
    fake_run(tmp_path, "running", started="2025-12-01T00:00:00.000Z", status="running", live=True)
    removed = keep_newest(tmp_path, ("keeper", ("graph:contoso",), "check"), 1, spare="c0")
    assert sorted(r.run_id for r in removed) == ["c1", "c2"]
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["c0", "c3", "other-target", "running"]


def test_prune_by_age_says_what_it_removed_and_leaves_private_files(tmp_path):
    now = dt.datetime(2026, 3, 1, tzinfo=dt.timezone.utc)
    fake_run(tmp_path, "old", started="2026-01-01T00:00:00.000Z")
    fake_run(tmp_path, "new", started="2026-02-25T00:00:00.000Z")
    fake_run(tmp_path, "old-but-running", started="2026-01-01T00:00:00.000Z", status="running", live=True)
    fake_run(tmp_path, "old-and-died", started="2026-01-01T00:00:00.000Z", status="running")
    (tmp_path / "private").mkdir()
    (tmp_path / "private" / "client-secret.txt").write_text("s")
    assert [r.run_id for r in prune(tmp_path, older_than=parse_age("30d"), now=now, dry_run=True)] == [
        "old", "old-and-died"]
    assert (tmp_path / "runs" / "old").is_dir()                      # a dry run removes nothing
    removed = prune(tmp_path, older_than=parse_age("30d"), now=now)
    assert [r.run_id for r in removed] == ["old", "old-and-died"] and removed[0].bytes > 200
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["new", "old-but-running"]
    assert (tmp_path / "private" / "client-secret.txt").read_text() == "s"


def test_runs_prune_command(tmp_path):
    fake_run(tmp_path, "20250101T000000Z-keeper-aaaaaa", started="2025-01-01T00:00:00.000Z")
    r = CliRunner().invoke(cli, ["runs", "--state-dir", str(tmp_path), "prune", "--older-than", "30d"])
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert lines[0].startswith("removed 20250101T000000Z-keeper-aaaaaa  check  keeper  started 2025-01-01")
    assert lines[1].startswith("removed 1 run(s), ")
    r = CliRunner().invoke(_entry, ["runs", "--state-dir", str(tmp_path), "prune", "--older-than", "a month"])
    assert r.exit_code == 2 and "--older-than 'a month' is not a duration" in r.output


@pytest.mark.parametrize("text, seconds", [("30d", 30 * 86400), ("12h", 43200), ("2w", 14 * 86400),
                                           ("1d12h", 129600), ("45s", 45)])
def test_parse_age(text, seconds):
    assert parse_age(text).total_seconds() == seconds


def test_a_long_age_that_is_no_duration_is_quoted_clipped():
    with pytest.raises(InputError) as caught:
        parse_age("x" * 5000)
    assert "(5,000 characters)" in str(caught.value) and "x" * 100 not in str(caught.value)
