"""The crash matrix: a real `psrunner run m365-backup-access` process killed with SIGKILL at
every stage boundary and inside every writing call, then `resume`d.

The simulators (in this process) hold the request or PowerShell pipeline where the process
must die: a latency fault on that Graph request (released once the process is dead, so the
write lands with nobody to read its answer), or a slow twin on the host. The test waits for
the hold to be reached (an event, not a sleep) and kills. Afterwards the run directory is
never corrupt (run.json, every stage file and every event line read back; `runs` lists the
run as interrupted), and `resume` ends with the same tenant and host as an uninterrupted
run: one app, one service principal, 46 distinct assignments, one secret and one
certificate whose secret halves this machine holds, the module installed. RELIABILITY.md
quotes the number of crash points."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from runner import api
from runner.graph.certs import load_certificate
from runner.graph.credentials import key_thumbprint
from runner.rundir import RunDir, list_runs
from runner.secrets import Secret

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")

RUNBOOK = "m365-backup-access"
UNIQUE = "m365-backup-access"

# crash point -> where it is held: ("graph", METHOD, path pattern, which matching request) or
# ("host", template id). "start" points are the boundary before a stage's first effect,
# "write" points are inside a call that changes the tenant or the host. On a fresh tenant the
# first call of the service-principal, consent, secret and certificate stages is their write
# (they know from this run that nothing is there yet), so those boundaries are write points.
POINTS: dict[str, tuple] = {
    "preflight start (sign-in)": ("graph", "POST", r"/oauth2/v2\.0/token$", 1),
    "host-facts start": ("host", "windows/host_facts"),
    "application start (its reads, one $batch)": ("graph", "POST", r"/v1\.0/\$batch$", 1),
    "application write (create)": ("graph", "PATCH", r"/v1\.0/applications\(uniqueName=", 1),
    "service-principal start and write (create)": ("graph", "PATCH", r"/v1\.0/servicePrincipals\(appId=", 1),
    "consent start and write (first $batch of grants)": ("graph", "POST", r"/v1\.0/\$batch$", 2),
    "consent write (second $batch of grants)": ("graph", "POST", r"/v1\.0/\$batch$", 3),
    "secret start and write (addPassword)": ("graph", "POST", r"/addPassword$", 1),
    "certificate start and write (key upload)": ("graph", "PATCH", r"/v1\.0/applications/[0-9a-f-]+$", 1),
    "spo-module write (Install-Module)": ("host", "sharepoint/spo_module"),
    "spo-settings write (Set-SPOTenant)": ("host", "sharepoint/spo_tenant_settings"),
    "appinv-grant start": ("host", "sharepoint/appinv_verify"),
}
HOST_HOLD = 1.0        # seconds a held twin waits before it acts (it acts: the client died, not the pipeline)


def hold(tenant, host, point: tuple):
    """Arm the hold; return (the event that says it is reached, how to let it go)."""
    if point[0] == "host":
        host.state.delays[point[1]] = HOST_HOLD
        return host.state.twin_started(point[1]), lambda: None
    _, method, path, nth = point
    if nth > 1:                      # let the first ones pass: a rule that matches but does nothing
        tenant.faults.add("latency", method=method, path=path, count=nth - 1, seconds=0.001)
    fault = tenant.faults.add("latency", method=method, path=path, count=1, seconds=120)
    return fault.hit, fault.release.set


def assert_run_dir_whole(state: Path) -> str:
    (run,) = list_runs(state)
    assert run["status"] == "interrupted", run
    rd = RunDir.open(state, run["run_id"])
    rd.read_info()
    for f in (rd.path / RunDir.STAGES).glob("*.json"):
        json.loads(f.read_text())
    assert all(e["run_id"] == run["run_id"] for e in rd.events())
    rd.load_result()
    return run["run_id"]


def assert_converged(world, tenant, host, state: Path) -> None:
    st = tenant.state
    with st.lock:
        (app,) = [a for a in st.applications.values() if a.get("uniqueName") == UNIQUE]
        sps = [s for s in st.service_principals.values() if s["appId"] == app["appId"]]
    assert len(sps) == 1
    pairs = [(a["resourceId"], a["appRoleId"]) for a in st.assignments_of(sps[0]["id"])]
    assert len(pairs) == len(set(pairs)) == 46
    private = state / "private"
    (secret,) = app["passwordCredentials"]                        # no duplicate, none nobody has
    (value,) = private.rglob(f"client-secret-*-{secret['keyId']}.txt")
    assert st.check_secret(app, value.read_text())
    (key,) = app["keyCredentials"]
    (pfx,) = private.rglob("*.pfx")
    password = Secret(pfx.with_name(pfx.name + "-password.txt").read_text())
    assert load_certificate(pfx, password).thumbprint == key_thumbprint(key)
    assert host.state.modules.get("Microsoft.Online.SharePoint.PowerShell")


@pytest.mark.parametrize("point", list(POINTS))
def test_sigkill_then_resume_converges_and_the_run_directory_stays_whole(lab, point):
    world, tenant, host, args, env, tmp = lab
    state = tmp / "state"
    reached, let_go = hold(tenant, host, POINTS[point])
    proc = subprocess.Popen([sys.executable, "-m", "runner.cli", "run", RUNBOOK, *args, "--yes", "-q"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    try:
        while not reached.wait(0.05):                  # the hold is reached, or the process is gone
            assert proc.poll() is None, f"the run ended before {point}: {proc.stderr.read()[-2000:]}"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    let_go()
    assert tenant.requests.wait_idle(60)                     # what was held has landed
    if POINTS[point][0] == "host":
        host.state.delays.clear()
        assert host.state.wait_idle(60)                      # the twin the dead client left running

    run_id = assert_run_dir_whole(state)
    result = api.resume(run_id, state_dir=state)
    assert result.status.value in ("succeeded", "action-required"), [(s.id, s.messages) for s in result.stages]
    assert not [s.id for s in result.stages if s.status.value == "failed"]
    assert_converged(world, tenant, host, state)
    assert list_runs(state)[0]["status"] == result.status.value
