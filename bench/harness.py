"""The benchmark harness behind `make bench`.

A *figure* is one measured value with its unit and, where the project has set one, its goal.
Every module of this package that defines `measure(bench)` is one section of the report:
`SECTION` is its title, `ORDER` its place. The harness imports each, lets it record its
figures through `Bench.figure`, prints them beside their goals, and writes them all to
bench/results.json (docs.py turns that file into the tables of BENCHMARKS.md and README.md).
A new figure is a new module here; the harness does not change.

A module that fails is reported with its error and the others still run; sections the
project expects but no module provides yet (EXPECTED) are listed as not measured, never
filled with a made-up value."""

from __future__ import annotations

import importlib
import json
import os
import platform
import pkgutil
import statistics
import sys
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results.json"

# Sections the project asks for (module name -> what it measures), so that one nobody has
# written yet shows up as missing instead of silently absent.
EXPECTED: dict[str, str] = {
    "graph_chain": "Graph requests and sequential round trips per scenario",
    "graph_wall": "wall time of the Graph part at 0 / 50 / 200 ms per request",
    "host_wsman": "WSMan requests and wall time per host stage at 0 / 20 ms",
    "startup": "start-up of --help, list, show and the import audit",
    "fanout": "fan-out: 1, 10, 100 tenants at --parallel 16, wall and peak RSS",
    "tenant_size": "10 / 1,000 / 10,000 service principals: requests and wall stay flat",
}
_NOT_SECTIONS = {"harness", "docs", "scenarios", "conftest"}


@dataclass(frozen=True)
class Goal:
    """What a figure should be: `value <op> limit`."""
    op: str                 # "<=", ">=" or "=="
    limit: float

    def met(self, value: float | None) -> bool | None:
        if value is None:
            return None
        return {"<=": value <= self.limit, ">=": value >= self.limit, "==": value == self.limit}[self.op]

    def __str__(self) -> str:
        sign = {"<=": "≤", ">=": "≥", "==": "="}[self.op]
        return f"{sign} {_number(self.limit)}"


def at_most(limit: float) -> Goal:
    return Goal("<=", limit)


def exactly(limit: float) -> Goal:
    return Goal("==", limit)


@dataclass
class Figure:
    key: str                            # stable id, e.g. "graph.fresh-secret.round-trips"
    title: str                          # what a reader sees
    value: float | None                 # None: not measured (note says why)
    unit: str
    goal: str | None = None
    met: bool | None = None
    note: str = ""
    detail: dict[str, Any] = field(default_factory=dict)

    def shown(self) -> str:
        if self.value is None:
            return "—"
        return f"{_number(self.value)} {self.unit}".strip()


@dataclass
class Section:
    module: str
    title: str
    order: int
    figures: list[Figure] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0


class Bench:
    """What a section's `measure` gets: where to record figures, and how hard to try.
    In a smoke run (`--smoke`) every timing is taken once and sizes are cut down, so the
    harness and every module can be exercised in seconds; its numbers mean nothing."""

    def __init__(self, *, smoke: bool = False) -> None:
        self.smoke = smoke
        self.repeats = 1 if smoke else 5
        self._section: Section | None = None

    def figure(self, key: str, title: str, value: float | None, unit: str = "",
               goal: Goal | None = None, note: str = "", **detail: Any) -> Figure:
        assert self._section is not None, "figure() is for a section's measure()"
        fig = Figure(key=key, title=title, value=value, unit=unit, goal=str(goal) if goal else None,
                     met=goal.met(value) if goal else None, note=note, detail=detail)
        self._section.figures.append(fig)
        return fig

    def median(self, run: Callable[[], float], repeats: int | None = None) -> tuple[float, list[float]]:
        """The median of `repeats` values of `run()` (seconds, usually), and all of them."""
        samples = [run() for _ in range(repeats or self.repeats)]
        return statistics.median(samples), samples


def sections(only: Iterable[str] = ()) -> list[tuple[str, Any]]:
    """(name, module) of every section module here, `only` those when given."""
    wanted = set(only)
    found = []
    for info in pkgutil.iter_modules([str(HERE)]):
        name = info.name
        if name.startswith("_") or name in _NOT_SECTIONS or (wanted and name not in wanted):
            continue
        module = importlib.import_module(f"bench.{name}")
        if callable(getattr(module, "measure", None)):
            found.append((name, module))
    return sorted(found, key=lambda nm: (getattr(nm[1], "ORDER", 99), nm[0]))


def run(*, smoke: bool = False, only: Iterable[str] = (), out: Callable[[str], None] = print) -> dict[str, Any]:
    """Measure every section and return the results (what results.json holds)."""
    bench = Bench(smoke=smoke)
    done: list[Section] = []
    for name, module in sections(only):
        sec = Section(name, getattr(module, "SECTION", name), getattr(module, "ORDER", 99))
        bench._section = sec
        t0 = time.monotonic()
        out(f"measuring {name}: {sec.title} ...")
        try:
            module.measure(bench)
        except Exception as e:          # one broken section must not hide the others
            sec.error = f"{type(e).__name__}: {e}"
            out(traceback.format_exc())
        sec.seconds = round(time.monotonic() - t0, 1)
        bench._section = None
        done.append(sec)
    present = {s.module for s in done}
    missing = {k: v for k, v in EXPECTED.items() if k not in present and not only}
    return {"generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "smoke": smoke,
            "machine": machine(), "sections": [asdict(s) for s in done], "not_measured": missing}


def machine() -> dict[str, Any]:
    """Where the figures were taken: timings mean little without it."""
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info: dict[str, Any] = {"python": platform.python_version(), "platform": platform.platform(),
                            "cpu": cpu, "cpus": os.cpu_count()}
    if hasattr(os, "getloadavg"):
        info["load_average"] = [round(x, 2) for x in os.getloadavg()]
    return info


def report(results: dict[str, Any]) -> str:
    """The figures as text: per section, each figure, its measured value and its goal."""
    lines = []
    met = total = 0
    for sec in results["sections"]:
        lines.append(f"\n== {sec['title']}  ({sec['seconds']} s)")
        if sec["error"]:
            lines.append(f"   FAILED: {sec['error']}")
        width = max([len(f["title"]) for f in sec["figures"]] + [10])
        for f in sec["figures"]:
            fig = Figure(**f)
            verdict = ""
            if fig.met is not None:
                total += 1
                met += bool(fig.met)
                verdict = "met" if fig.met else "MISSED"
            goal = f"goal {fig.goal}" if fig.goal else ""
            note = f"  ({fig.note})" if fig.note else ""
            lines.append(f"   {fig.title:<{width}}  {fig.shown():>14}  {goal:<12} {verdict}{note}".rstrip())
    for name, what in results.get("not_measured", {}).items():
        lines.append(f"\n== {what}\n   not measured: no module bench/{name}.py yet")
    m = results["machine"]
    lines.append(f"\n{met} of {total} goals met{' (smoke run: numbers mean nothing)' if results['smoke'] else ''}; "
                 f"{m['cpus']} x {m['cpu'] or 'cpu'}, Python {m['python']}")
    return "\n".join(lines)


def write(results: dict[str, Any], path: Path = RESULTS) -> None:
    path.write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def load(path: Path = RESULTS) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def figures(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every figure of `results` by key."""
    return {f["key"]: f for sec in results["sections"] for f in sec["figures"]}


def _number(v: float) -> str:
    if isinstance(v, int) or float(v).is_integer():
        return f"{int(v):,}"
    return f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}"


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m bench", description="Measure psrunner against the simulators.")
    ap.add_argument("--smoke", action="store_true", help="every figure once, small sizes; writes nothing")
    ap.add_argument("--only", action="append", default=[], metavar="MODULE", help="only this section (repeatable)")
    ap.add_argument("--no-docs", action="store_true", help="leave BENCHMARKS.md and README.md as they are")
    args = ap.parse_args(argv)
    results = run(smoke=args.smoke, only=args.only, out=lambda s: print(s, file=sys.stderr, flush=True))
    print(report(results))
    if not args.smoke and not args.only:
        write(results)
        print(f"\nwrote {RESULTS.relative_to(HERE.parent)}")
        if not args.no_docs:
            from .docs import update_docs
            for path in update_docs(results):
                print(f"updated the tables in {path.relative_to(HERE.parent)}")
    return 1 if any(s["error"] for s in results["sections"]) else 0
