"""Benchmarks of the main runbook against the simulators: wall time per phase, and the
request counts the simulators saw (recorded in the benchmark's extra_info).

    make bench
"""

from __future__ import annotations

import pytest

from runner import api
from runner.sim.demo import SimCounters, admin_follows_actions, sim_params, simulators
from runner.results import RunStatus


@pytest.fixture
def env(tmp_path):
    with simulators() as (world, tenant, host):
        rb = api.load_runbook("m365-backup-access")
        given = sim_params(tenant, host, world)
        values, _ = api.resolve_params(rb, given, environ={})
        yield world, tenant, host, rb, values, tmp_path


COUNTS: dict[str, dict] = {}


def _record(benchmark, counters, result):
    m = counters()
    benchmark.extra_info.update(m)
    COUNTS[benchmark.name] = m
    benchmark.extra_info["status"] = result.status.value
    return m


def test_bench_fresh_onboarding(benchmark, env):
    world, tenant, host, rb, values, tmp = env
    counters = SimCounters(tenant, host)

    def fresh():
        # a new app each round: a different unique name
        fresh.n += 1
        v = {**values, "app_unique_name": f"bench-{fresh.n}"}
        counters.mark()
        return api.run(rb, v, state_dir=tmp, extra_metrics=counters)
    fresh.n = 0
    result = benchmark.pedantic(fresh, rounds=3, iterations=1)
    assert result.status in (RunStatus.SUCCEEDED, RunStatus.ACTION_REQUIRED)
    m = _record(benchmark, counters, result)
    assert m["psrp_pool_opens"] == 1


def test_bench_converged_rerun(benchmark, env):
    world, tenant, host, rb, values, tmp = env
    counters = SimCounters(tenant, host)
    first = api.run(rb, values, state_dir=tmp)
    admin_follows_actions(first, world, values)     # as in the demo: the hand-off, the refusal accepted
    api.run(rb, values, state_dir=tmp)

    def rerun():
        counters.mark()
        return api.run(rb, values, state_dir=tmp, extra_metrics=counters)
    result = benchmark.pedantic(rerun, rounds=5, iterations=1)
    m = _record(benchmark, counters, result)
    assert result.status == RunStatus.SUCCEEDED and m["graph_writes"] == 0


def test_bench_plan(benchmark, env):
    world, tenant, host, rb, values, tmp = env
    counters = SimCounters(tenant, host)

    def plan():
        counters.mark()
        return api.plan(rb, values, state_dir=tmp, extra_metrics=counters)
    result = benchmark.pedantic(plan, rounds=5, iterations=1)
    m = _record(benchmark, counters, result)
    assert m["graph_writes"] == 0
