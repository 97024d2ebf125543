"""Credentials and what is kept of them on disk: a secret whose value nobody has (the process
died inside `addPassword`) is found and replaced by the next run, "ok" means this machine
holds the value (or handed it over), and private files and folders are private."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from runner.secrets import write_private
from runner.sim.tenant import TenantSimulator

from ..cli_invoke import psrunner
from .graph_harness import UNIQUE, connect, onboard, tenant_view

GRAPH_ONBOARDING = Path(__file__).resolve().parents[1] / "data" / "graph-onboarding.toml"


def cli_args(sim: TenantSimulator, tmp_path: Path, credential: str = "secret") -> list[str]:
    secret = write_private(tmp_path / "operator.secret", sim.operator.client_secret)
    params = {"tenant": sim.tenant_domain, "graph_client_id": sim.operator.client_id, "graph_ca_bundle": sim.ca_bundle,
              "authority_host": sim.base_url, "graph_endpoint": sim.graph_endpoint, "credential": credential,
              "app_unique_name": UNIQUE}
    return [*(a for k, v in params.items() for a in ("-p", f"{k}={v}")),
            "--secret-file", f"graph_client_secret={secret}"]


def wait_for(condition, timeout: float = 30.0) -> None:
    """Until `condition()` holds (the simulator finished serving a request, say)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the condition never came true"
        time.sleep(0.02)


@pytest.mark.skipif(sys.platform == "win32", reason="kill -9")
def test_a_secret_whose_value_nobody_has_is_removed_and_replaced_by_the_next_run(sim, tmp_path):
    held = sim.faults.add("latency", method="POST", path=r"/addPassword$", count=1, seconds=0.5)
    proc = subprocess.Popen([sys.executable, "-m", "runner.cli", "run", str(GRAPH_ONBOARDING),
                             *cli_args(sim, tmp_path), "--yes", "-q"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=os.environ.copy())
    try:
        assert held.hit.wait(120), "addPassword never arrived"
        proc.send_signal(signal.SIGKILL)              # inside the call: its write lands, its answer is lost
    finally:
        proc.wait(timeout=60)
    wait_for(lambda: tenant_view(sim)["secrets"] == 1)
    lost = tenant_view(sim)["app"]["passwordCredentials"][0]
    assert not list((tmp_path / "state" / "private").rglob("client-secret-*.txt"))    # nobody has its value

    (run_id,) = [p.name for p in (tmp_path / "state" / "runs").iterdir()]
    r = psrunner("resume", run_id, "--yes", "-o", "json", "-q")
    assert r.exit_code == 0, r.output
    view = tenant_view(sim)
    (kept,) = view["app"]["passwordCredentials"]
    assert kept["keyId"] != lost["keyId"]
    (value_file,) = (tmp_path / "state" / "private").rglob("client-secret-*.txt")
    assert sim.state.check_secret(view["app"], value_file.read_text())
    assert f"removed client secret {lost['displayName']!r} ({lost['keyId']}): an interrupted run created it and " \
           "its value was never stored" in r.output

    writes = sim.requests.snapshot()["writes"]
    r = psrunner("run", str(GRAPH_ONBOARDING), *cli_args(sim, tmp_path), "--yes", "-o", "json", "-q")
    assert r.exit_code == 0 and sim.requests.snapshot()["writes"] == writes      # converged: ok, no write


def test_ok_needs_a_secret_this_machine_holds_or_handed_over(sim, tmp_path):
    first = onboard(connect(sim, tmp_path / "a"), tmp_path / "a")["client_secret"].outputs
    # another machine (another state directory) never had this value: it makes its own
    other = onboard(connect(sim, tmp_path / "b"), tmp_path / "b")["client_secret"]
    assert other.changed and other.outputs["key_id"] != first["key_id"]
    assert any("this machine never had its value" in w and "remove the old one once no client uses it" in w
               for w in other.warnings)
    assert not any("rotate" in w for w in other.warnings)        # no advice to set a parameter that is not there
    # the first machine handed its value over (the file went into a vault): still ok, and it says so
    Path(first["secret_file"]).unlink()
    again = onboard(connect(sim, tmp_path / "a"), tmp_path / "a")["client_secret"]
    assert not again.changed and again.outputs["key_id"] == first["key_id"]
    assert again.messages[0].endswith(f"its value was handed over in {first['secret_file']} (no longer there)")
    assert tenant_view(sim)["secrets"] == 2


def test_private_folders_are_private_whichever_file_comes_first(tmp_path):
    cache = tmp_path / "state" / "private" / "graph" / "contoso" / "msal-cache.json"
    write_private(cache, "{}")
    for folder in (tmp_path / "state", tmp_path / "state" / "private", cache.parent.parent, cache.parent):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600


def test_a_token_cache_readable_by_others_is_made_private(sim, tmp_path, caplog):
    from tests.integration.test_graph_stages import device_settings

    conn = connect(sim, tmp_path, interactive=True, **device_settings(sim, tmp_path))
    conn.claims()
    conn.close()
    cache = conn.signin.token_cache
    os.chmod(cache, 0o644)
    again = connect(sim, tmp_path, interactive=False, **device_settings(sim, tmp_path))
    again.claims()                                   # signs in silently from the cache
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    assert any("was readable by others" in r.getMessage() and "(0600)" in r.getMessage() for r in caplog.records)
