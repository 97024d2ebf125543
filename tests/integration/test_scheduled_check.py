"""`check` a scheduler can trust, through the command line against both simulators: after a
run with the runbook's defaults it exits 4 while a person's action is pending and 0 once it
is done, a setting the platform refuses for good is reported (dated) and not counted as
drift unless --strict, drift injected into the simulated tenant is exit 3, and every form
(JSON, JUnit, nagios, --summary) says the same."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import click
import pytest
from click.testing import CliRunner

from runner.cli import main
from runner.sim.demo import complete_appinv_as_admin, simulators, write_sim_params

RUNBOOK = "m365-backup-access"


@click.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.pass_context
def _entry(ctx):
    main(ctx.args)


def psrunner(*args: str):
    """`psrunner ARGS` in this process (stdin is not a terminal): (exit code, stdout)."""
    r = CliRunner().invoke(_entry, list(args), catch_exceptions=False)
    return r.exit_code, r.stdout


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """The simulators and a params file with the runbook's defaults (legacy_auth among them:
    the value the platform refuses for good), but for where the simulators are."""
    base = tmp_path_factory.mktemp("lab")
    with simulators() as (world, tenant, host):
        pf, files = write_sim_params(base, tenant, host, world)
        args = ["--params-file", str(pf), "-q"]
        for name, path in files.items():
            args += ["--secret-file", f"{name}={path}"]
        yield world, tenant, args, base / "state"


def test_check_after_run_settles_and_only_real_drift_is_drift(lab, monkeypatch):
    world, tenant, args, state = lab
    monkeypatch.setenv("PSRUNNER_STATE_DIR", str(state))
    code, out = psrunner("run", RUNBOOK, *args, "--yes", "-o", "json")
    first = json.loads(out)
    assert code == 4 and first["status"] == "action-required"          # the appinv hand-off waits
    (refusal,) = [r for s in first["stages"] for r in s["refusals"]]
    assert (refusal["item"], refusal["since"], refusal["first_run"]) == (
        "LegacyAuthProtocolsEnabled", "2026-05-01", first["run_id"])

    # the same parameters: in place but for the person's action; the refusal is not drift
    writes = tenant.requests.snapshot()["writes"]
    code, out = psrunner("check", RUNBOOK, *args, "-o", "json")
    check = json.loads(out)
    assert code == 4 and check["mode"] == "check" and check["changed"] is False
    spo = next(s for s in check["stages"] if s["id"] == "spo-settings")
    assert spo["status"] == "ok" and spo["refusals"][0]["first_run"] == first["run_id"]
    assert spo["messages"][0] == ("nothing to change but what the platform refuses for good: "
                                  "LegacyAuthProtocolsEnabled (not drift; `check --strict` counts it)")
    assert tenant.requests.snapshot()["writes"] == writes                      # a check writes nothing
    assert psrunner("check", RUNBOOK, *args, "--strict")[0] == 3

    code, out = psrunner("check", RUNBOOK, *args)
    assert code == 4 and "Action required (a person must finish these):" in out
    assert "Refused by the platform for good (not drift: `check --strict` counts them):" in out
    assert f"LegacyAuthProtocolsEnabled = true (spo-settings): refused since 2026-05-01; first met by run " \
           f"{first['run_id']}" in out
    assert "to stop asking, accept the value the platform keeps: -p legacy_auth=false" in out

    # the person acts: in place
    app_id = next(s for s in first["stages"] if s["id"] == "application")["outputs"]["app_id"]
    complete_appinv_as_admin(world, app_id, "localhost")
    code, out = psrunner("check", RUNBOOK, *args, "--summary")
    assert code == 0
    assert out.startswith(f"{RUNBOOK}: in place; refused by the platform: LegacyAuthProtocolsEnabled (run ")
    assert out.endswith(", exit 0)\n") and out.count("\n") == 1
    code, out = psrunner("check", RUNBOOK, *args, "-o", "nagios")
    assert code == 0 and out.startswith(f"PSRUNNER OK - {RUNBOOK}: in place") and out.count("\n") == 1
    assert "'would_change'=0;;;0 'action_required'=0;;;0 'failed'=0;;;0 'refused'=1;;;0" in out

    # someone changes a setting behind psrunner's back: drift
    with world.lock:
        world.sharepoint.disable_custom_app_authentication = True
    code, out = psrunner("check", RUNBOOK, *args)
    assert code == 3 and "would change" in out
    code, out = psrunner("check", RUNBOOK, *args, "-o", "nagios")
    assert code == 2 and out.startswith(f"PSRUNNER CRITICAL - {RUNBOOK}: drift in 1 stage(s): spo-settings |")
    code, out = psrunner("check", RUNBOOK, *args, "-o", "junit")
    assert code == 3
    suite = ET.fromstring(out).find("testsuite")
    assert suite.get("failures") == "1" and suite.get("errors") == "0"
    failed = [c for c in suite.iter("testcase") if c.find("failure") is not None]
    assert [(c.get("name"), c.find("failure").get("type")) for c in failed] == [("spo-settings", "drift")]

    # the run puts it back; the refusal stays reported, not retried as news
    code, out = psrunner("run", RUNBOOK, *args, "--yes", "-o", "json")
    assert code == 0 and json.loads(out)["status"] == "succeeded"
    assert world.sharepoint.disable_custom_app_authentication is False
    assert psrunner("check", RUNBOOK, *args)[0] == 0


def test_json_output_is_one_document_even_for_errors(lab, monkeypatch):
    world, tenant, args, state = lab
    monkeypatch.setenv("PSRUNNER_STATE_DIR", str(state))
    code, out = psrunner("check", RUNBOOK, *args, "-p", "host_port=99999", "-o", "json")
    assert code == 2
    doc = json.loads(out)
    assert set(doc) == {"error"} and set(doc["error"]) == {"message", "input", "fix", "exit_code"}
    assert doc["error"]["input"] == "host_port" and doc["error"]["exit_code"] == 2
    # a usage error that click itself finds, in the same form
    code, out = psrunner("check", RUNBOOK, "--no-such-option", "-o", "json")
    assert code == 2 and "--no-such-option" in json.loads(out)["error"]["message"]
    # a run without --yes and without a terminal: the error carries the plan it refused to apply
    code, out = psrunner("run", RUNBOOK, *args, "-p", "app_unique_name=another-app", "--output=json")
    doc = json.loads(out)
    assert code == 2 and doc["error"]["input"] == "--yes" and doc["plan"]["mode"] == "plan"
    # and the monitoring form of an error is UNKNOWN
    code, out = psrunner("check", RUNBOOK, *args, "-p", "host_port=99999", "-o", "nagios")
    assert code == 3 and out.startswith("PSRUNNER UNKNOWN - ") and out.count("\n") == 1


def test_the_scheduled_job_example_settles(tmp_path):
    """examples/check-and-remediate.sh from a scheduler, as a new user would try it: the first
    tick remediates, the next one finds everything in place but the person's action, and does
    not call the run again."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "examples" / "check-and-remediate.sh"
    with simulators() as (world, tenant, host):
        pf, files = write_sim_params(tmp_path / "sim", tenant, host, world)
        env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
               "PSRUNNER_STATE_DIR": str(tmp_path / "state"), "REPORT_DIR": str(tmp_path / "reports")}
        for name, path in files.items():
            env[f"PSRUNNER_{name.upper()}"] = path.read_text()

        def tick():
            return subprocess.run(["bash", str(script), str(pf)], capture_output=True, text=True, env=env,
                                  timeout=120, stdin=subprocess.DEVNULL)

        first = tick()
        assert first.returncode == 4, first.stderr
        assert first.stdout.splitlines() == [
            "drift found: remediating", f"remediated; a person must act: see {tmp_path / 'reports'}/run.json"]
        writes = tenant.requests.snapshot()["writes"]
        second = tick()
        assert second.returncode == 4, second.stderr
        assert second.stdout == f"in place; a person must act: see {tmp_path / 'reports'}/check.json\n"
        assert tenant.requests.snapshot()["writes"] == writes          # no run, no Set-SPOTenant again
        applied = [tid for tid, params in host.state.invocations if params.get("Apply")]
        assert applied.count("sharepoint/spo_tenant_settings") == 1
