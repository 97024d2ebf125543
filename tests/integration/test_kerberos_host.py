"""Real Kerberos to a host: the Samba AD DC's KDC issues the tickets, the host simulator accepts
them with the keytab of its HTTP/ service principal (SPNEGO through pyspnego and GSSAPI), and
the main runbook signs in to it with host_auth=kerberos and no password, after kinit, over
plain HTTP with WinRM message encryption. The host is reached at loopback while the ticket is
for its real name (host_kerberos_name), so no hosts file is edited."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from runner.sim.directory.kerberos import kinit
from runner.sim.demo import demo_host, write_sim_params
from runner.sim.host import HostSimulator
from runner.sim.tenant import TenantSimulator
from runner.sim.world import SimWorld

pytestmark = [pytest.mark.directory, pytest.mark.kerberos]
pytest.importorskip("gssapi", reason="pyspnego's kerberos extra (make venv with libkrb5-dev installed)")

RUNBOOK = "m365-backup-access"


@pytest.fixture(scope="module")
def realm(kerberos_service: dict, kerberos_realm: Path) -> dict:
    """The host's name, its keytab, and the admin who may sign in to it (tests/directory)."""
    return {"name": kerberos_service["host"], "keytab": kerberos_service["keytab"],
            "principal": kerberos_service["principal"], "password": kerberos_service["password"],
            "conf": kerberos_realm}


@pytest.fixture
def kerberos_host(realm, tmp_path, monkeypatch):
    """Both simulators; the host takes Kerberos only, from the realm's admin."""
    monkeypatch.setenv("KRB5_CONFIG", str(realm["conf"]))          # for the acceptor, in this process
    world = SimWorld()
    with TenantSimulator(world=world) as tenant, \
            HostSimulator(world=world, scheme="http", auth="kerberos", keytab=realm["keytab"],
                          principals=[realm["principal"]]) as host:
        demo_host(host.state)
        params, files = write_sim_params(tmp_path / "sim", tenant, host, world)
        args = ["--params-file", str(params), "-p", "host_user=", "-p", f"host_kerberos_name={realm['name']}",
                *(a for k, v in files.items() if k != "host_password" for a in ("--secret-file", f"{k}={v}"))]
        yield host, args


def psrunner(args: list[str], realm: dict, tmp_path: Path, ccache: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PSRUNNER_STATE_DIR": str(tmp_path / "state"), "KRB5_CONFIG": str(realm["conf"]),
           "KRB5CCNAME": f"FILE:{ccache}"}
    return subprocess.run([sys.executable, "-m", "runner.cli", *args], capture_output=True, text=True, env=env,
                          timeout=300, stdin=subprocess.DEVNULL)


def test_the_runbook_signs_in_with_kerberos_and_no_password_after_kinit(kerberos_host, realm, tmp_path):
    host, args = kerberos_host
    ccache = tmp_path / "ccache"
    kinit(realm["conf"], realm["principal"], realm["password"], ccache)
    done = psrunner(["run", RUNBOOK, *args, "--yes", "-o", "json", "-q"], realm, tmp_path, ccache)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]      # done, settled
    stages = {s["id"]: s["status"] for s in json.loads(done.stdout)["stages"]}
    assert stages["host-facts"] == "ok" and stages["spo-module"] == "changed"
    assert host.state.modules.get("Microsoft.Online.SharePoint.PowerShell")        # it did act on the host
    assert host.signed_in and set(host.signed_in) == {(realm["principal"], "kerberos")}
    counts = host.counter.snapshot()
    assert counts["requests"] > 0 and counts["encrypted"] == counts["requests"]     # every envelope sealed
    assert realm["password"] not in done.stdout + done.stderr


def test_without_a_ticket_the_host_refuses_and_the_run_says_so(kerberos_host, realm, tmp_path):
    host, args = kerberos_host
    done = psrunner(["plan", RUNBOOK, *args], realm, tmp_path, tmp_path / "no-ccache")
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-2000:]
    assert "authentication failed for (current user) with kerberos: no Kerberos ticket to present" in done.stdout
    assert host.signed_in == [] and host.counter.snapshot()["requests"] == 0
