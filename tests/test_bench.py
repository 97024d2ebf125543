"""The benchmark harness (bench/): how it finds sections and judges goals, that the tables in
BENCHMARKS.md and README.md are the ones bench/results.json gives, and a smoke of the
section that counts round trips. The figures themselves are measured by `make bench`."""

from __future__ import annotations

import sys
import types

import pytest

from bench import docs, harness


def test_goals_judge_values():
    assert harness.at_most(6).met(6) and not harness.at_most(6).met(7)
    assert harness.exactly(0).met(0) and not harness.exactly(0).met(1)
    assert harness.at_most(6).met(None) is None
    assert str(harness.at_most(0.6)) == "≤ 0.600" and str(harness.exactly(12)) == "= 12"


@pytest.fixture
def fake_section(monkeypatch):
    """A section module of the bench package, as another module would add one."""
    module = types.ModuleType("bench.fake_section")
    module.SECTION = "a fake section"
    module.ORDER = 1

    def measure(bench):
        bench.figure("fake.count", "requests", 7, "", harness.at_most(6))
        bench.figure("fake.time", "wall", 0.25, "s", note="no goal")
    module.measure = measure
    monkeypatch.setitem(sys.modules, "bench.fake_section", module)
    monkeypatch.setattr(harness.pkgutil, "iter_modules",
                        lambda paths: [types.SimpleNamespace(name="fake_section"),
                                       types.SimpleNamespace(name="harness")])
    return module


def test_a_module_with_measure_is_a_section_and_missing_sections_are_named(fake_section):
    results = harness.run(smoke=True, out=lambda s: None)
    (sec,) = results["sections"]
    assert (sec["module"], sec["title"], sec["error"]) == ("fake_section", "a fake section", None)
    assert [(f["key"], f["value"], f["goal"], f["met"]) for f in sec["figures"]] == [
        ("fake.count", 7, "≤ 6", False), ("fake.time", 0.25, None, None)]
    assert set(results["not_measured"]) == set(harness.EXPECTED)
    text = harness.report(results)
    assert "requests" in text and "goal ≤ 6" in text and "MISSED" in text
    assert "0 of 1 goals met" in text
    assert "not measured: no module bench/fanout.py yet" in text


def test_a_failing_section_is_reported_and_the_others_still_run(fake_section, monkeypatch):
    def broken(bench):
        raise RuntimeError("simulator would not start")
    broken_module = types.ModuleType("bench.broken")
    broken_module.measure = broken
    monkeypatch.setitem(sys.modules, "bench.broken", broken_module)
    monkeypatch.setattr(harness.pkgutil, "iter_modules",
                        lambda paths: [types.SimpleNamespace(name="broken"),
                                       types.SimpleNamespace(name="fake_section")])
    results = harness.run(smoke=True, out=lambda s: None)
    by_module = {s["module"]: s for s in results["sections"]}
    assert by_module["broken"]["error"] == "RuntimeError: simulator would not start"
    assert len(by_module["fake_section"]["figures"]) == 2
    assert "FAILED: RuntimeError: simulator would not start" in harness.report(results)


def test_the_docs_show_the_committed_results():
    """README.md's request table and BENCHMARKS.md's latest table are what `make bench`
    wrote from bench/results.json: run `make bench` (or `python -c 'from bench import docs,
    harness; docs.update_docs(harness.load())'`) after changing either."""
    for path, text in docs.rendered(harness.load()).items():
        assert path.read_text(encoding="utf-8") == text, f"{path.name} does not show bench/results.json"


def test_the_committed_results_cover_every_expected_section():
    results = harness.load()
    assert not results["smoke"]
    measured = {s["module"] for s in results["sections"] if not s["error"]}
    assert set(harness.EXPECTED) <= measured
