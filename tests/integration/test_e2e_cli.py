"""The mission end to end, through the `psrunner` command as an admin or a scheduler runs it,
against both simulators over real msal / requests / pypsrp: plan, run, re-run, and a run
interrupted with Ctrl-C mid-stage, then resumed."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.terminal import at_terminal, psrunner

RUNBOOK = "m365-backup-access"


def apps_named(tenant, unique_name):
    return [a for a in tenant.state.applications.values() if a.get("uniqueName") == unique_name]


def test_plan_run_rerun_through_the_cli(lab):
    world, tenant, host, args, env, _ = lab
    before = tenant.requests.snapshot()
    r = psrunner("plan", RUNBOOK, *args, "-o", "json", "-q", env=env)
    assert r.returncode == 0, r.stderr
    plan = json.loads(r.stdout)
    assert plan["mode"] == "plan"
    assert tenant.requests.snapshot()["writes"] == before["writes"]            # plan wrote nothing
    assert apps_named(tenant, "m365-backup-access") == []
    assert {s["id"]: s["status"] for s in plan["stages"]}["application"] == "changed"

    r = psrunner("run", RUNBOOK, *args, "--yes", "-o", "json", "-q", env=env)
    assert r.returncode == 0, r.stderr                                 # done, nothing left for a person
    first = json.loads(r.stdout)
    by_id = {s["id"]: s for s in first["stages"]}
    assert first["status"] == "succeeded"
    # appinv.aspx on SharePoint Online is obsolete: skipped with why, nothing pending, the XML kept
    assert by_id["appinv-grant"]["status"] == "skipped" and not by_id["appinv-grant"]["action"]
    assert by_id["appinv-grant"]["messages"][0].startswith("skipped as obsolete: ")
    xml = (Path(first["run_dir"]) / "scripts" / "appinv-grant.xml").read_text()
    assert xml.startswith('<AppPermissionRequests AllowAppOnlyPolicy="true">')
    assert by_id["spo-settings"]["status"] == "changed" and by_id["spo-settings"]["refusals"] == []
    (app,) = apps_named(tenant, "m365-backup-access")
    sp = tenant.state.sp_by_app_id(app["appId"])
    assert len(tenant.state.assignments_of(sp["id"])) == 46
    assert len(app["passwordCredentials"]) == 1 and len(app["keyCredentials"]) == 1
    assert world.sharepoint.disable_custom_app_authentication is False
    assert host.state.modules["Microsoft.Online.SharePoint.PowerShell"]
    secret_file = Path(by_id["secret"]["outputs"]["secret_file"])
    assert oct(secret_file.stat().st_mode & 0o777) == "0o600"
    assert secret_file.read_text().strip() not in r.stdout + r.stderr

    writes = tenant.requests.snapshot()["writes"]
    r = psrunner("run", RUNBOOK, *args, "--yes", "-o", "json", "-q", env=env)
    assert r.returncode == 0, r.stderr
    second = json.loads(r.stdout)
    assert second["status"] == "succeeded"
    assert {s["id"]: s["status"] for s in second["stages"]} == {
        s["id"]: "skipped" if s["id"] == "appinv-grant" else "ok" for s in second["stages"]}
    assert tenant.requests.snapshot()["writes"] == writes                      # converged: no write
    assert len(apps_named(tenant, "m365-backup-access")) == 1                  # never a second app
    assert len(tenant.state.assignments_of(sp["id"])) == 46                    # never a duplicate


def test_human_report_names_the_handoff_and_the_notices(lab):
    world, tenant, host, args, env, _ = lab
    # --show-secret prints the secret on a terminal only; here stdout is a pipe
    r = psrunner("run", RUNBOOK, *args, "--yes", "--show-secret", env=env)
    assert r.returncode == 0, r.stderr                  # done, and nothing left for a person
    out = r.stdout
    assert 'Hand-off (for "Add Microsoft 365 Organization Manually"):' in out
    assert "Application (client) ID" in out and "Directory (tenant) ID" in out
    assert "Action required" not in out and "_layouts/15/appinv.aspx" not in out
    assert out.count("skipped as obsolete: SharePoint Online has ignored appinv.aspx (ACS app-only) grants") == 1
    for date in ("2026-04-02", "2026-05-01", "2026-10-01 -> 2027-04-01"):
        assert date in out
    secret = Path(json.loads((next((lab[5] / "state" / "runs").iterdir()) / "report.json").read_text())
                  ["stages"][5]["outputs"]["secret_file"]).read_text().strip()
    assert secret not in out and secret not in r.stderr

    # a vendor that insists on appinv.aspx: the exact steps, and exit 4 until a person acts
    r = psrunner("run", RUNBOOK, *args, "-p", "appinv_manual_steps=true", "--yes", env=env)
    assert r.returncode == 4, r.stderr
    assert "Action required (a person must finish these):" in r.stdout
    assert "_layouts/15/appinv.aspx" in r.stdout and '<AppPermissionRequests AllowAppOnlyPolicy="true">' in r.stdout


@pytest.mark.skipif(sys.platform == "win32", reason="sends SIGINT to a child process")
def test_interrupted_run_resumes_without_repeating_done_stages(lab):
    world, tenant, host, args, env, tmp = lab
    host.state.delays["sharepoint/spo_module"] = 60.0       # a slow Install-Module
    proc = subprocess.Popen([sys.executable, "-m", "runner.cli", "run", RUNBOOK, *args, "--yes"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            stdin=subprocess.DEVNULL)
    # Ctrl-C once Install-Module runs on the host (however long getting there takes)
    assert host.state.twin_started("sharepoint/spo_module").wait(120), "spo-module never started"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    (run_dir,) = (tmp / "state" / "runs").iterdir()
    report = json.loads((run_dir / "report.json").read_text())
    assert report["status"] == "interrupted"
    statuses = {s["id"]: s["status"] for s in report["stages"]}
    assert statuses["consent"] == "changed" and statuses["spo-module"] == "failed"
    assert statuses["spo-settings"] == "skipped"
    assert host.counter.by_action().get("Signal", 0) >= 1            # the remote pipeline was stopped
    assert "Microsoft.Online.SharePoint.PowerShell" not in host.state.modules

    assert out.rstrip().endswith(f"to continue: psrunner resume {run_dir.name}")   # what to type next

    host.state.delays.clear()
    writes = tenant.requests.snapshot()["writes"]
    # no secrets given: resume asks the same files the first attempt read them from; like
    # run, without a terminal to ask on it needs --yes
    r = psrunner("resume", run_dir.name, "-q", env=env)
    assert r.returncode == 2 and "run again with --yes" in r.stderr
    r = psrunner("resume", run_dir.name, "--yes", "-o", "json", "-q", env=env)
    assert r.returncode == 0, r.stderr                  # done and settled
    resumed = json.loads(r.stdout)
    assert resumed["run_id"] == run_dir.name and resumed["resumed_from"] == run_dir.name
    by_id = {s["id"]: s for s in resumed["stages"]}
    for done in ("application", "service-principal", "consent", "secret", "certificate"):
        assert by_id[done]["messages"][-1].endswith("not repeated on resume"), done
    assert by_id["spo-module"]["status"] == "changed"
    assert by_id["spo-settings"]["status"] == "changed"                    # as in any first run
    assert tenant.requests.snapshot()["writes"] == writes          # no Graph stage was repeated
    assert len(apps_named(tenant, "m365-backup-access")) == 1


@pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pseudo-terminal")
def test_show_secret_prints_the_new_secret_on_a_terminal_only(lab):
    world, tenant, host, args, env, tmp = lab
    out = at_terminal("run", RUNBOOK, *args, "--yes", "--show-secret", "-q", env=env).terminal
    (secret_file,) = (tmp / "state" / "private").rglob("client-secret-*.txt")
    assert "Client secret value" in out and secret_file.read_text().strip() in out
