"""windows-service-status and windows-service-restart end to end: psrunner over real pypsrp
to the host simulator's service model (dependants, a service that cannot stop, one that hangs
in StopPending, one that dies while starting, a disabled one)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from runner import api
from runner.results import RunStatus
from runner.secrets import Secret
from runner.sim.host import HostSimulator
from runner.sim.twin_types import HostState
from runner.sim.twins_services import demo_services


@pytest.fixture
def host(tmp_path: Path):
    with HostSimulator(state=HostState(services=demo_services())) as sim:
        yield sim


def run(host: HostSimulator, tmp: Path, runbook: str, mode: str = "run", **given: Any):
    rb = api.load_runbook(runbook)
    values, _ = api.resolve_params(rb, {
        "host": host.host, "host_port": host.port, "host_auth": "basic", "host_user": host.username,
        "host_password": Secret(host.password, "host_password"), "host_ca_bundle": str(host.ca_bundle), **given})
    return (api.run if mode == "run" else api.plan)(rb, values, state_dir=tmp / "state")


def svc(host: HostSimulator, name: str):
    return host.state.services[name.lower()]


def test_status_reads_a_service_and_its_dependants(host, tmp_path):
    res = run(host, tmp_path, "windows-service-status", service="spooler")
    assert res.status == RunStatus.SUCCEEDED
    assert res.headline == ("Print Spooler (Spooler) is Running, start type Automatic; dependants: Fax Running.")
    out = res.stage("status").outputs
    assert out["depends_on"] == ["RPCSS"] and out["can_stop"] is True
    missing = run(host, tmp_path, "windows-service-status", service="nope")
    st = missing.stage("status")
    assert st.status.value == "failed"
    assert "Cannot find any service with service name 'nope'." in st.error["message"]
    assert st.error["records"][0]["fqid"] == "NoServiceFoundForGivenName,Microsoft.PowerShell.Commands.GetServiceCommand"


def test_restart_with_dependants_plan_apply_and_leave(host, tmp_path):
    plan = run(host, tmp_path, "windows-service-restart", "plan", service="Spooler")
    assert plan.stage("restart").status.value == "changed"
    assert plan.headline == "Print Spooler (Spooler) is Running; a run would restart it and its running dependants (Fax)."
    assert host.state.invocations[-1][1]["Apply"] is False
    svc(host, "Fax").status = "Running"
    res = run(host, tmp_path, "windows-service-restart", service="Spooler", timeout=5)
    assert res.status == RunStatus.SUCCEEDED, res.stage("restart").error
    assert res.headline.startswith("Print Spooler (Spooler) was Running; it is Running again after ")
    assert res.headline.endswith("; dependants restarted: Fax.")
    diff = res.stage("restart").diff
    assert diff["before"]["status"] == diff["after"]["status"] == "Running"
    assert svc(host, "Fax").status == "Running"
    # if_running=leave converges: a running service is left alone, a stopped one started
    again = run(host, tmp_path, "windows-service-restart", service="Spooler", if_running="leave")
    assert again.stage("restart").status.value == "ok"
    assert again.headline == "Print Spooler (Spooler) is running; left alone."
    svc(host, "Spooler").status = "Stopped"
    started = run(host, tmp_path, "windows-service-restart", service="Spooler", if_running="leave")
    assert started.stage("restart").status.value == "changed" and svc(host, "Spooler").status == "Running"


@pytest.mark.parametrize("name, reason", [
    ("BackupAgent", "Backup Agent (BackupAgent) did not stop within 1 s; it is StopPending"),
    ("LegacyApp", "Legacy Line-of-Business App (LegacyApp) did not start: it stopped again while starting "
                  "(the System event log says why)"),
])
def test_a_service_that_hangs_or_dies_fails_the_run_saying_what_it_does(host, tmp_path, name, reason):
    res = run(host, tmp_path, "windows-service-restart", service=name, timeout=1)
    st = res.stage("restart")
    assert res.status == RunStatus.FAILED and st.error.get("exit_code", 1) == 1
    assert st.error["message"].endswith(reason)
    assert res.headline == f"Failed: windows/service_restart: {reason}"


@pytest.mark.parametrize("name, message, fqid", [
    ("RPCSS", "Service 'Remote Procedure Call (RPC) (RPCSS)' cannot be stopped due to the following error: "
              "Cannot stop RPCSS service on computer '.'.",
     "CouldNotStopService,Microsoft.PowerShell.Commands.StopServiceCommand"),
    ("RemoteRegistry", "Exception calling \"Start\" with \"0\" argument(s): \"Cannot start service RemoteRegistry "
                       "on computer '.'.\"", "InvalidOperationException"),
])
def test_cmdlet_errors_as_windows_powershell_writes_them(host, tmp_path, name, message, fqid):
    res = run(host, tmp_path, "windows-service-restart", service=name, timeout=1)
    st = res.stage("restart")
    assert message in st.error["message"] and st.error["records"][0]["fqid"] == fqid
