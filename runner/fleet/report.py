"""A fleet operation's aggregate report, in the three forms a fleet is read in: a table for
people, JSON for scripts, JUnit XML for CI and monitoring (one test suite per target, its
stages as test cases). Written to <state>/fleet/<fleet id>/ as report.txt, report.json and
report.xml; each target's own run directory holds its detail."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from ..outputs import junit_suite, xml_document
from ..results import ExitCode, RunResult
from ..rundir import atomic_write, dumps
from .result import FleetResult

WORDS = {ExitCode.OK: "in place", ExitCode.DRIFT: "drift", ExitCode.ACTION: "a person must act",
         ExitCode.FAILED: "failed", ExitCode.USAGE: "bad input", ExitCode.INTERRUPTED: "interrupted"}


def _found(fleet: FleetResult, code: int) -> str:
    """What a target's exit code says, in words fit for the mode (a plan places nothing)."""
    if code == ExitCode.OK and fleet.mode != "check":
        return "done" if fleet.mode == "run" else "planned"
    return WORDS.get(code, str(code))


def table(fleet: FleetResult, width: int = 100) -> str:
    """One line a target (name, exit code, what it found, its run or why), then the totals."""
    name_w = max([len("target")] + [len(t.target) for t in fleet.targets])
    lines = [f"{'target':<{name_w}}  exit  {'found':<18}  run / why"]
    counts: dict[str, int] = {}
    for t in fleet.targets:
        word = _found(fleet, t.exit_code)
        counts[word] = counts.get(word, 0) + 1
        why = t.run_id if t.exit_code == ExitCode.OK and t.run_id else t.summary
        line = f"{t.target:<{name_w}}  {t.exit_code:>4}  {word:<18}  {why}"
        lines.append(line if len(line) <= width else line[: width - 3] + "...")
    total = ", ".join(f"{n} {w}" for w, n in counts.items())
    lines += ["", f"{fleet.mode} of {fleet.runbook} on {len(fleet.targets)} target(s): {total or 'none'}; "
                  f"exit {int(fleet.exit_code)}"]
    if fleet.report_dir:
        lines.append(f"report: {fleet.report_dir}")
    return "\n".join(lines) + "\n"


def junit(fleet: FleetResult, *, strict: bool = False) -> str:
    root = ET.Element("testsuites", name=f"psrunner fleet {fleet.mode} {fleet.runbook}")
    for t in fleet.targets:
        if t.result is not None:
            root.append(junit_suite(RunResult.from_dict(t.result), name=t.target, strict=strict))
            continue
        suite = ET.SubElement(root, "testsuite", name=t.target, tests="1", failures="0", errors="1",
                              skipped="0", time=f"{t.duration:.3f}")
        case = ET.SubElement(suite, "testcase", classname=t.target, name="target", time=f"{t.duration:.3f}")
        ET.SubElement(case, "error", type=t.status, message=t.summary)
    return xml_document(root)


def write_reports(fleet: FleetResult, state_dir: Path, *, strict: bool = False) -> Path:
    """report.json, report.xml and report.txt under <state>/fleet/<fleet id>/."""
    out = Path(state_dir) / "fleet" / fleet.fleet_id
    fleet.report_dir = str(out)
    atomic_write(out / "report.json", dumps(fleet.to_dict(), indent=2) + "\n")
    atomic_write(out / "report.xml", junit(fleet, strict=strict))
    atomic_write(out / "report.txt", table(fleet))
    return out


__all__ = ["junit", "table", "write_reports"]
