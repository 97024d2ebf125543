"""Section 2: wall time of the Graph part at 0, 50 and 200 ms per HTTP request, beside what
the round trips alone cost (round trips x latency) and beside CLI for Microsoft 365's model
(its requests x latency: it sends each after the one before).

The Graph part is a whole run of the onboarding without a Windows host (its host stages
skipped). Each figure is the median of `bench.repeats` runs; a fresh onboarding is a new
application in a new state directory each time."""

from __future__ import annotations

from .harness import Bench, at_most
from .scenarios import CLI_M365_REQUESTS, Measured, Sims, sims, state_dir

SECTION = "2. Wall time of the Graph part (median), beside round trips x latency"
ORDER = 20
LATENCIES = (0.0, 0.05, 0.2)
GOALS = {("fresh", 0.05): at_most(0.6), ("rerun", 0.05): at_most(0.3)}


def _fresh(s: Sims, latency: float) -> Measured:
    with state_dir() as state:
        return s.fresh(state, latency=latency)[0]


def measure(bench: Bench) -> None:
    with sims() as s:
        for latency in LATENCIES:
            _record(bench, "fresh", "fresh onboarding, secret", latency,
                    [_fresh(s, latency) for _ in range(bench.repeats)])
        with state_dir() as state:
            first, values = s.fresh(state)
            s.converge(state, values, first.result)
            for latency in LATENCIES:
                _record(bench, "rerun", "converged re-run", latency,
                        [s.rerun(state, values, latency=latency) for _ in range(bench.repeats)])


def _record(bench: Bench, key: str, title: str, latency: float, runs: list[Measured]) -> None:
    ms = int(latency * 1000)
    walls = sorted(m.wall for m in runs)
    bench.figure(f"graph-wall.{key}.{ms}ms", f"{title} at {ms} ms: wall", round(walls[len(walls) // 2], 3), "s",
                 GOALS.get((key, latency)), samples=[round(m.wall, 3) for m in runs])
    if latency:
        rt = max(m.round_trips for m in runs)
        bench.figure(f"graph-wall.{key}.{ms}ms.model", f"{title} at {ms} ms: {rt} round trips x latency",
                     round(rt * latency, 3), "s")
        cli = CLI_M365_REQUESTS[key]
        bench.figure(f"graph-wall.{key}.{ms}ms.cli-m365", f"{title} at {ms} ms: CLI for M365 model "
                     f"({cli} x latency)", round(cli * latency, 3), "s")
