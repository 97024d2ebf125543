"""RELIABILITY.md's figures are the tests' own: each is computed here from the tables the
matrices and the corpus run, and must be what the page says."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from tests.canary import Canaries
from tests.cli import test_hostile_input as hostile
from tests.integration import test_celery as celery
from tests.integration import test_crash_matrix as crash
from tests.integration import test_fault_matrix as faults
from tests.integration import test_fleet as fleet
from tests.integration import test_secret_canaries as canaries
from tests.portal import test_canaries as portal_canaries
from tests.unit import test_locks as locks

PAGE = Path(__file__).resolve().parents[1] / "RELIABILITY.md"


def page_figures() -> dict[str, str]:
    rows = re.findall(r"^\| ([^|]+?) \| ([^|]+?) \|$", PAGE.read_text(encoding="utf-8"), re.MULTILINE)
    return {label: value for label, value in rows if label not in ("figure", "---")}


def corpus_part(case: str) -> str:
    first = case.split()[0]
    return {"runbook": "runbooks", "inventory": "inventories", "params": "params files", "secret": "secret files", "runs": "records",
            "resume": "records", "state": "records"}.get(first, "parameters")


def test_the_figures_are_the_tests():
    sites = {**faults.ONBOARDING_SITES, **faults.RERUN_SITES, **faults.OFFBOARDING_SITES}
    assert page_figures() == {
        "Graph call sites in the fault matrix": str(len(sites)),
        "fault kinds in the fault matrix": str(len(faults.FAULTS) + len(faults.LAG_FAULTS)),
        "faults injected (fault matrix cases)": str(len(faults.CASES)),
        "fault matrix cases that converge in the run with the fault": str(len(faults.CASES)),
        "crash points (SIGKILL, then resume)": str(len(crash.POINTS)),
        "crash points inside a writing call": str(sum("write" in p for p in crash.POINTS)),
        "hostile inputs tried": str(len(hostile.CASES) + len(hostile.ACCEPTED)),
        "hostile inputs refused with exit 2 naming the input": str(len(hostile.CASES)),
        "hostile values that reach PowerShell only as parameters": str(len(hostile.ACCEPTED)),
        "tracebacks": "0",
        "secret canary scans": str(sum(inspect.getsource(m).count("canaries.scan(")
                                       for m in (canaries, portal_canaries, fleet, celery))),
        "encodings a canary is looked for in": str(Canaries(["canary-value"]).encodings),
        "leaks": "0",
        "processes contending for one target lock": str(locks.CONTENDERS),
    }


def test_the_corpus_parts_are_as_the_page_says():
    text = PAGE.read_text(encoding="utf-8").replace("\n", " ")
    counts: dict[str, int] = {}
    for case in hostile.CASES:
        counts[corpus_part(case)] = counts.get(corpus_part(case), 0) + 1
    for part, label in (("parameters", "parameters on the command line"), ("params files", "params files"),
                        ("secret files", "secret files"), ("runbooks", "runbooks"), ("inventories", "inventories"),
                        ("records", "the state directory and the run records")):
        assert f"{label} ({counts[part]})" in text, (label, counts[part])
    assert f"the {len(faults.ONBOARDING_SITES)} requests of a fresh onboarding" in text
    assert f"the {len(faults.RERUN_SITES)} reads a re-run adds" in text
    assert f"offboarding runbook ({len(faults.OFFBOARDING_SITES)})" in text
