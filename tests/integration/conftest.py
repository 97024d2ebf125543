"""Fixtures of the integration tests. `lab`: both simulators, with a params file and 0600
secret files that point psrunner at them, and an environment whose state directory is the
test's own. `sim`: a started tenant simulator per test, on the module's CA (`tls`,
tests/conftest.py); a module that needs the host simulator alone defines its own `sim`."""

from __future__ import annotations

import os

import pytest

from runner.sim.demo import simulators, write_sim_params
from runner.sim.tenant import TenantSimulator


@pytest.fixture
def lab(tmp_path):
    """(world, tenant, host, the params arguments of a command line, env, tmp_path)."""
    with simulators() as (world, tenant, host):
        pf, files = write_sim_params(tmp_path / "sim", tenant, host, world)
        secret_args = [a for k, v in files.items() for a in ("--secret-file", f"{k}={v}")]
        env = {**os.environ, "PSRUNNER_STATE_DIR": str(tmp_path / "state")}
        yield world, tenant, host, ["--params-file", str(pf), *secret_args], env, tmp_path


@pytest.fixture
def sim(tls):
    s = TenantSimulator(tls=tls).start()
    yield s
    s.stop()
