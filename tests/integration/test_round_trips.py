"""The chain of Graph requests the main runbooks send, counted exactly: requests and
sequential round trips (sign-in included) for a fresh onboarding, a converged re-run, a
check and an offboarding, without a Windows host (the Graph part). These are the counts `make bench` reports (bench/graph_chain.py
measures them the same way, through bench/scenarios.py); timings are only benchmarked.

Round trips are counted by the tenant simulator from request lifetimes, with latency held
on every request so that requests sent together overlap (docs/simulators.md)."""

from __future__ import annotations

import pytest

from bench.scenarios import sims, state_dir

LATENCY = 0.2       # as bench/graph_chain.py: requests sent together overlap on a busy machine too


@pytest.fixture(scope="module")
def chain():
    """Each scenario measured once: {scenario: (requests, round trips, writes)}."""
    out = {}
    with sims() as s:
        with state_dir() as state:
            fresh, values = s.fresh(state, latency=LATENCY)
            s.converge(state, values, fresh.result)
            for name, m in (("fresh-secret", fresh), ("rerun", s.rerun(state, values, latency=LATENCY)),
                            ("check", s.check(state, values, latency=LATENCY)),
                            ("offboard", s.offboard_run(state, values, latency=LATENCY))):
                out[name] = (m.requests, m.round_trips, m.writes, m.status)
        with state_dir() as state:
            both, _ = s.fresh(state, latency=LATENCY, credential="both")
            out["fresh-both"] = (both.requests, both.round_trips, both.writes, both.status)
    return out


@pytest.mark.parametrize("scenario, requests, round_trips", [
    # sign-in (2); the application, resource service principals and app management policy read
    # in one $batch; the application; its service principal; the three consent batches and the
    # secret together (then the certificate)
    ("fresh-secret", 9, 6),
    ("fresh-both", 10, 7),
    ("rerun", 2, 2),
    ("check", 2, 2),
    ("offboard", 3, 3),
])
def test_requests_and_round_trips(chain, scenario, requests, round_trips):
    got = chain[scenario]
    assert got[3] in ("succeeded", "action-required"), got
    assert (got[0], got[1]) == (requests, round_trips)


def test_a_converged_tenant_is_read_not_written(chain):
    assert chain["rerun"][2] == 0 and chain["check"][2] == 0


def test_wsman_requests_of_a_converged_runs_host_stages():
    """The host stages of a converged run, one pool (what bench/host_wsman.py reports): host-facts
    opens the pool (Create, Receive) and runs its pipeline (Command, Receive); spo-module is
    decided from host-facts' facts; spo-settings exchanges the session key (Send, Receive) for
    its SecureString and runs its pipeline; appinv-grant looks for a grant with the PowerShell 7
    facts host-facts read; the pool's Delete releases the pipelines."""
    from bench.host_wsman import HOST_STAGES, _converged

    with sims() as s, state_dir() as state:
        first, values = s.fresh(state, host=True)
        s.converge(state, values, first.result)
        per_stage, total, pools = _converged(s, state, values)
    assert {stage: per_stage[stage][0] for stage in HOST_STAGES} == {
        "host-facts": 4, "spo-module": 0, "spo-settings": 4, "appinv-grant": 2}
    assert (total, pools) == (11, 1)
