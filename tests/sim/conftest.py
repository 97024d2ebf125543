"""Fixtures of the simulator tests: a started tenant simulator per test, on the module's CA
(`tls`, tests/conftest.py); test_host_sim.py defines its own `sim`, the host simulator."""

from __future__ import annotations

import pytest

from runner.sim.tenant import TenantSimulator


@pytest.fixture
def sim(tls):
    s = TenantSimulator(tls=tls).start()
    s.device_pending_polls = 0  # approve on the first poll unless a test wants pending answers
    yield s
    s.stop()
