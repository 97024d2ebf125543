"""Section 6: the same onboarding in tenants of 10, 1,000 and 10,000 service principals.

psrunner finds everything by key (uniqueName, appId, `appId in (...)`), never by listing, so
its requests must not grow with the tenant and its wall time must stay flat (runs without a
Windows host: the Graph part). Each size gets
simulators of its own, grown with `seed_service_principals`; no latency is injected, so the
wall time shows the work that grows with the tenant, if any (medians of `bench.repeats`)."""

from __future__ import annotations

from .harness import Bench, at_most, exactly
from .scenarios import Measured, Sims, sims, state_dir

SECTION = "6. Tenant size: requests and wall time stay flat"
ORDER = 60
SIZES = (10, 1_000, 10_000)
SMOKE_SIZES = (10, 100)
# "Flat" for wall time: the biggest tenant within this factor of the smallest (timings on a
# shared machine wobble by tens of percent).
FLAT = 1.5


def _fresh(s: Sims) -> Measured:
    with state_dir() as state:
        return s.fresh(state)[0]


def _median(runs: list[Measured]) -> tuple[int, float]:
    """The most requests any run sent, and the median wall time."""
    walls = sorted(m.wall for m in runs)
    return max(m.requests for m in runs), walls[len(walls) // 2]


def measure(bench: Bench) -> None:
    sizes = SMOKE_SIZES if bench.smoke else SIZES
    seen: dict[str, dict[int, tuple[int, float]]] = {"fresh": {}, "rerun": {}}
    for size in sizes:
        with sims() as s:
            s.tenant.seed_service_principals(size)
            seen["fresh"][size] = _median([_fresh(s) for _ in range(bench.repeats)])
            with state_dir() as state:
                first, values = s.fresh(state)
                s.converge(state, values, first.result)
                seen["rerun"][size] = _median([s.rerun(state, values) for _ in range(bench.repeats)])
    titles = {"fresh": "fresh onboarding", "rerun": "converged re-run"}
    small, big = sizes[0], sizes[-1]
    for key, by_size in seen.items():
        for size, (requests, wall) in by_size.items():
            bench.figure(f"size.{key}.{size}.requests", f"{titles[key]}, {size:,} SPs: requests", requests, "")
            bench.figure(f"size.{key}.{size}.wall", f"{titles[key]}, {size:,} SPs: wall", round(wall, 3), "s")
        bench.figure(f"size.{key}.growth.requests", f"{titles[key]}: requests added by {big:,} SPs",
                     by_size[big][0] - by_size[small][0], "", exactly(0))
        bench.figure(f"size.{key}.growth.wall", f"{titles[key]}: wall at {big:,} SPs / at {small:,}",
                     round(by_size[big][1] / by_size[small][1], 2), "x", at_most(FLAT))
