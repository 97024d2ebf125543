"""An admin at a terminal whose output goes to a file or a pipe (`psrunner plan ... | tee
plan.txt`): device-code sign-in still happens, on the terminal, against the tenant simulator
through the real msal and requests."""

from __future__ import annotations

import os
import sys

import pytest

from runner.sim.demo import simulators
from tests.terminal import at_terminal


@pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pseudo-terminal")
def test_plan_piped_to_tee_signs_in_with_a_device_code_on_the_terminal(tmp_path):
    with simulators() as (world, tenant, _host):
        env = {**os.environ, "PSRUNNER_STATE_DIR": str(tmp_path / "state")}
        s = at_terminal("plan", "m365-backup-access-remove", "-p", f"tenant={world.tenant_domain}",
                        "-p", "graph_auth=device-code", "-p", f"authority_host={tenant.base_url}",
                        "-p", f"graph_endpoint={tenant.graph_endpoint}",
                        "-p", f"graph_ca_bundle={tenant.ca_bundle}", env=env, stdout_to_pipe=True)
    assert s.code == 0, s.terminal + s.stdout
    assert "enter the code" in s.terminal                     # the sign-in code, where the person is
    assert "enter the code" not in s.stdout                   # not in the file being written
    assert s.stdout.startswith("Plan ") and "ok              preflight" in s.stdout
    assert "signed in to tenant" in s.stdout and "(delegated, device-code)" in s.stdout
