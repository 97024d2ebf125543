"""Section 3: WSMan requests and wall time per host stage of a converged run, with 0 and
20 ms added to every answer of the host simulator.

Per stage, the requests are the host simulator's count between the stage's start and end
events; the run's total adds what happens outside any stage (closing the pool). Wall times
are medians of `bench.repeats` runs."""

from __future__ import annotations

import statistics
from typing import Any

from runner import api

from .harness import Bench, at_most, exactly
from .scenarios import sims, state_dir

SECTION = "3. WSMan requests and wall time per host stage (converged run)"
ORDER = 30
LATENCIES = (0.0, 0.02)
HOST_STAGES = ("host-facts", "spo-module", "spo-settings", "appinv-grant")


def measure(bench: Bench) -> None:
    with sims() as s, state_dir() as state:
        first, values = s.fresh(state, host=True)
        s.converge(state, values, first.result)
        for latency in LATENCIES:
            if latency:
                s.host.faults.set("slow", seconds=latency)
            try:
                runs = [_converged(s, state, values) for _ in range(bench.repeats)]
            finally:
                s.host.faults.clear("slow")
            ms = int(latency * 1000)
            per_stage, total, pools = runs[-1]
            for stage in HOST_STAGES:
                wall = statistics.median(r[0][stage][1] for r in runs)
                if not latency:
                    bench.figure(f"wsman.{stage}.requests", f"{stage}: requests", per_stage[stage][0], "")
                bench.figure(f"wsman.{stage}.{ms}ms", f"{stage} at {ms} ms: wall", round(wall, 3), "s")
            if not latency:
                bench.figure("wsman.total.requests", "the four host stages, pool closed: requests", total, "",
                             at_most(12))
                bench.figure("wsman.pools", "runspace pools opened", pools, "", exactly(1))


def _converged(s: Any, state: Any, values: dict[str, Any]) -> tuple[dict[str, tuple[int, float]], int, int]:
    """One converged run: {stage: (WSMan requests, seconds)}, the run's total, pools opened."""
    marks: dict[str, int] = {}
    per_stage: dict[str, tuple[int, float]] = {}

    def on_event(ev: dict[str, Any]) -> None:
        stage = ev.get("stage")
        if stage not in HOST_STAGES:
            return
        if ev["type"] == "stage.start":
            marks[stage] = s.host.counter.snapshot()["requests"]
        elif ev["type"] == "stage.end" and stage in marks:
            per_stage[stage] = (s.host.counter.snapshot()["requests"] - marks[stage], ev["data"]["duration"])

    before = s.host.counter.snapshot()
    result = api.run(s.onboard, values, state_dir=state, on_event=on_event)
    after = s.host.counter.snapshot()
    assert result.status.value == "succeeded", result.status
    return per_stage, after["requests"] - before["requests"], after["pool_opens"] - before["pool_opens"]
