"""Fixtures of the simulator tests: one throwaway CA per module and a started tenant
simulator per test (test_host_sim.py defines its own `sim`, the host simulator)."""

from __future__ import annotations

import pytest

from runner.sim.tenant import TenantSimulator
from runner.sim.tls import make_tls


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    return make_tls(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def sim(tls):
    s = TenantSimulator(tls=tls).start()
    s.device_pending_polls = 0  # approve on the first poll unless a test wants pending answers
    yield s
    s.stop()
