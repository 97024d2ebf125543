"""Section 1: Graph requests and sequential round trips per scenario.

Counts are exact (the same code sends the same requests every time), so one run of each
scenario is enough; a test (tests/integration/test_round_trips.py) holds the same numbers.
Round trips are counted by the tenant simulator from request lifetimes with LATENCY held on
every request, so that requests sent together visibly overlap."""

from __future__ import annotations

from .harness import Bench, at_most, exactly
from .scenarios import sims, state_dir

SECTION = "1. Graph requests and sequential round trips (sign-in included; 200 ms per request)"
ORDER = 10
# Long enough that requests sent together overlap even when a busy machine starts one of
# their threads tens of milliseconds late (at 50 ms, a loaded machine sometimes counts the
# secret, sent alongside the consents, as a round trip of its own).
LATENCY = 0.2

# The chain the project aims for (issue 11): fresh onboarding with a secret in at most six
# round trips, a converged re-run or a check in at most three.
GOALS = {"fresh-secret": at_most(6), "rerun": at_most(3), "check": at_most(3)}
TITLES = {"fresh-secret": "fresh onboarding, secret", "fresh-both": "fresh onboarding, secret + certificate",
          "rerun": "converged re-run", "check": "check (converged)", "offboard": "offboarding"}


def measure(bench: Bench) -> None:
    with sims() as s:
        runs = {}
        with state_dir() as state:
            runs["fresh-secret"], values = s.fresh(state, latency=LATENCY)
            s.converge(state, values, runs["fresh-secret"].result)
            runs["rerun"] = s.rerun(state, values, latency=LATENCY)
            runs["check"] = s.check(state, values, latency=LATENCY)
            runs["offboard"] = s.offboard_run(state, values, latency=LATENCY)
        with state_dir() as state:
            runs["fresh-both"], _ = s.fresh(state, latency=LATENCY, credential="both")
    for key, m in runs.items():
        title = TITLES[key]
        bench.figure(f"graph.{key}.requests", f"{title}: requests", m.requests, "", status=m.status)
        bench.figure(f"graph.{key}.round-trips", f"{title}: round trips", m.round_trips, "",
                     GOALS.get(key), status=m.status)
        if key in ("rerun", "check"):
            bench.figure(f"graph.{key}.writes", f"{title}: writes", m.writes, "", exactly(0))
