"""A run's result in the forms schedulers and monitoring read: one JSON document (errors
included), JUnit XML, a monitoring-plugin status line, and a one-line summary.

The monitoring-plugin form follows the Monitoring Plugins development guidelines
(https://www.monitoring-plugins.org/doc/guidelines.html): one line `NAME STATUS - text |
perfdata`, perfdata as `'label'=value[UOM];[warn];[crit];[min];[max]`, and the plugin's exit
status 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN. psrunner's exit codes map onto them:

    0 in place            -> 0 OK
    4 a person must act   -> 1 WARNING
    3 drift               -> 2 CRITICAL
    1, 2, 130             -> 3 UNKNOWN   (the check could not tell: failed, bad input, interrupted)

JUnit XML is the shape CI servers and log collectors ingest (testsuites / testsuite /
testcase with failure, error, skipped): one test case per stage; in a check, a stage that
would change is a failure ("drift"), one that waits for a person a failure ("action-required"),
a failed stage an error, a skipped one skipped."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any, Iterable

from .errors import InputError, RunnerError
from .results import ExitCode, RunResult, StageResult, Status
from .secrets import redact

NAGIOS = {ExitCode.OK: (0, "OK"), ExitCode.ACTION: (1, "WARNING"), ExitCode.DRIFT: (2, "CRITICAL")}
NAGIOS_UNKNOWN = (3, "UNKNOWN")
PLUGIN = "PSRUNNER"
REPORT_FORMATS = ("human", "json", "junit", "nagios")


def nagios_code(code: int) -> tuple[int, str]:
    """A psrunner exit code as a monitoring plugin's (exit status, word)."""
    return NAGIOS.get(code, NAGIOS_UNKNOWN)          # ExitCode members are ints: any int looks up


# ---------------------------------------------------------------------------- errors

def error_document(e: BaseException, exit_code: int) -> dict[str, Any]:
    """`{"error": {message, input, fix, exit_code}}`: what `--output json` prints for an error,
    so a script always reads one JSON document. A refused run that would change things also
    carries the plan it refused to apply (`plan`)."""
    if isinstance(e, RunnerError):
        message, fix = e.message, e.hint
        given = e.input if isinstance(e, InputError) else None
    else:
        message, fix, given = str(e) or type(e).__name__, None, None
    doc: dict[str, Any] = {"error": {"message": redact(message), "input": given,
                                     "fix": redact(fix) if fix else None, "exit_code": exit_code}}
    plan = getattr(e, "fields", {}).get("plan") if isinstance(e, RunnerError) else None
    if isinstance(plan, dict):
        doc["plan"] = plan
    return doc


def nagios_error(e: BaseException) -> str:
    message = e.message if isinstance(e, RunnerError) else (str(e) or type(e).__name__)
    return f"{PLUGIN} UNKNOWN - {_one_line(redact(message))}"


# ---------------------------------------------------------------------------- one result

def summary(res: RunResult, *, strict: bool = False) -> str:
    """One line for a log or a mail subject: what the run found, in words, and its run id."""
    return f"{res.runbook}: {verdict(res, strict=strict)} (run {res.run_id}, exit {int(res.exit_code(strict=strict))})"


def verdict(res: RunResult, *, strict: bool = False) -> str:
    """What the run found, in a few words: in place, drift in ..., a person must act: ..."""
    return _verdict(res, res.exit_code(strict=strict), strict)


def _verdict(res: RunResult, code: ExitCode, strict: bool = False) -> str:
    def ids(stages: Iterable[StageResult]) -> str:
        return ", ".join(s.id for s in stages)
    if code in (ExitCode.FAILED, ExitCode.USAGE):
        failed = [s for s in res.stages if s.status == Status.FAILED]
        first = failed[0] if failed else None
        why = (first.error or {}).get("message", "") if first else (res.error or {}).get("message", "")
        return f"failed: {ids(failed) or 'the run'}: {_one_line(str(why))}"
    if code == ExitCode.INTERRUPTED:
        return "interrupted"
    if code == ExitCode.DRIFT:
        drifted = [s for s in res.stages if s.changed or (strict and s.refusals)]
        return f"drift in {len(drifted)} stage(s): {ids(drifted)}"
    refused = f"; refused by the platform: {', '.join(r.item for _, r in res.refusals)}" if res.refusals else ""
    if code == ExitCode.ACTION:
        return f"{'done' if res.mode == 'run' else 'in place'}, a person must act: {ids(res.actions)}{refused}"
    if res.mode == "run":
        changed = [s for s in res.stages if s.changed]
        return (f"changed {ids(changed)}" if changed else "nothing to change") + refused
    return "in place" + refused


def nagios(res: RunResult, *, strict: bool = False) -> tuple[str, int]:
    """(the status line, the plugin's exit status) for a check."""
    code = res.exit_code(strict=strict)
    status, word = nagios_code(code)
    m = res.metrics
    perf = [("stages", len(res.stages)), ("ok", m.get("ok", 0)),
            ("would_change", sum(1 for s in res.stages if s.changed)),
            ("action_required", len(res.actions)), ("failed", m.get("failed", 0)),
            ("refused", len(res.refusals))]
    data = " ".join(f"'{k}'={v};;;0" for k, v in perf) + f" 'duration'={_duration(res):.1f}s;;;0"
    return f"{PLUGIN} {word} - {res.runbook}: {_one_line(_verdict(res, code, strict))} | {data}", status


def junit(res: RunResult, *, strict: bool = False) -> str:
    """JUnit XML for one run: a test suite of its stages."""
    root = ET.Element("testsuites", name=f"psrunner {res.mode}")
    root.append(junit_suite(res, name=res.runbook, strict=strict))
    return xml_document(root)


def junit_suite(res: RunResult, *, name: str, strict: bool = False) -> ET.Element:
    suite = ET.Element("testsuite", name=name, timestamp=res.started or "", time=f"{_duration(res):.3f}")
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for s in res.stages:
        case = ET.SubElement(suite, "testcase", classname=f"{name}.{res.runbook}", name=s.id,
                             time=f"{s.duration:.3f}")
        counts["tests"] += 1
        outcome = _junit_outcome(res, s, strict)
        if outcome is not None:
            tag, kind, message = outcome
            counts[{"failure": "failures", "error": "errors", "skipped": "skipped"}[tag]] += 1
            el = ET.SubElement(case, tag, message=_one_line(message))
            if tag != "skipped":
                el.set("type", kind)
                el.text = "\n".join(s.messages)
        if s.refusals and not strict:
            out = ET.SubElement(case, "system-out")
            out.text = "\n".join(f"refused by the platform since {r.since}: {r.item} = {r.wanted}: {r.reason}"
                                 for r in s.refusals)
    if not res.stages and res.error:
        counts["tests"], counts["errors"] = 1, 1
        case = ET.SubElement(suite, "testcase", classname=name, name="run")
        ET.SubElement(case, "error", type=str(res.error.get("type", "error")),
                      message=_one_line(str(res.error.get("message", ""))))
    for k, v in counts.items():
        suite.set(k, str(v))
    return suite


def _junit_outcome(res: RunResult, s: StageResult, strict: bool) -> tuple[str, str, str] | None:
    if s.status == Status.FAILED:
        return "error", str((s.error or {}).get("type", "failed")), str((s.error or {}).get("message", "failed"))
    if s.status == Status.SKIPPED:
        return "skipped", "skipped", s.messages[0] if s.messages else "skipped"
    if s.status == Status.ACTION_REQUIRED and res.mode != "plan":
        return "failure", "action-required", "a person must act: " + str((s.action or {}).get("summary")
                                                                        or (s.messages or [""])[0])
    if res.mode == "check" and (s.changed or (strict and s.refusals)):
        what = s.messages[0] if s.messages else "would change"
        return "failure", "drift", what
    return None


def xml_document(root: ET.Element) -> str:
    """`root` as an indented XML document, redacted like every output."""
    ET.indent(root)
    return redact('<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode")) + "\n"


def _duration(res: RunResult) -> float:
    return float(sum(s.duration for s in res.stages))


def _one_line(text: str) -> str:
    """One line, with no `|` (which would start a monitoring plugin's perfdata)."""
    return " ".join(str(text).split()).replace("|", "/")


__all__ = ["REPORT_FORMATS", "error_document", "junit", "junit_suite", "nagios", "nagios_code", "nagios_error",
           "summary", "verdict"]
