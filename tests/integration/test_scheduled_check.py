"""`check` a scheduler can trust, through the command line against both simulators: check
after run exits 0 with default parameters; 4 while a person's action is pending; 3 after
drift is injected. A setting the platform refuses for good is reported (dated) and not
counted as drift unless --strict, and every form (JSON, JUnit, nagios, --summary) says the
same."""

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
    """The simulators and a params file with the runbook's defaults but for where the
    simulators are."""
    base = tmp_path_factory.mktemp("lab")
    with simulators() as (world, tenant, host):
        pf, files = write_sim_params(base, tenant, host, world)
        args = ["--params-file", str(pf), "-q"]
        for name, path in files.items():
            args += ["--secret-file", f"{name}={path}"]
        yield world, tenant, args, base / "state"


def test_check_after_run_exits_0_with_defaults_4_while_a_person_must_act_3_after_drift(lab, monkeypatch):
    world, tenant, args, state = lab
    monkeypatch.setenv("PSRUNNER_STATE_DIR", str(state))
    code, out = psrunner("run", RUNBOOK, *args, "--yes", "-o", "json")
    first = json.loads(out)
    assert code == 0 and first["status"] == "succeeded", [(s["id"], s["status"]) for s in first["stages"]]
    grant = next(s for s in first["stages"] if s["id"] == "appinv-grant")
    assert grant["status"] == "skipped" and grant["messages"][0].startswith("skipped as obsolete")
    assert [r for s in first["stages"] for r in s["refusals"]] == []

    # check after run exits 0 with default parameters, and writes nothing
    writes = tenant.requests.snapshot()["writes"]
    code, out = psrunner("check", RUNBOOK, *args, "-o", "json")
    check = json.loads(out)
    assert code == 0 and check["mode"] == "check" and check["changed"] is False
    assert tenant.requests.snapshot()["writes"] == writes
    code, out = psrunner("check", RUNBOOK, *args, "--summary")
    assert code == 0 and out.startswith(f"{RUNBOOK}: in place (run ") and out.count("\n") == 1
    code, out = psrunner("check", RUNBOOK, *args, "-o", "nagios")
    assert code == 0 and out.startswith(f"PSRUNNER OK - {RUNBOOK}: in place") and out.count("\n") == 1
    assert "'would_change'=0;;;0 'action_required'=0;;;0 'failed'=0;;;0 'refused'=0;;;0" in out

    # 4 while a person's action is pending: the appinv.aspx steps a vendor insists on
    manual = ["-p", "appinv_manual_steps=true"]
    code, out = psrunner("check", RUNBOOK, *args, *manual)
    assert code == 4 and "Action required (a person must finish these):" in out
    code, out = psrunner("check", RUNBOOK, *args, *manual, "-o", "nagios")
    assert code == 1 and out.startswith(f"PSRUNNER WARNING - {RUNBOOK}:")
    app_id = next(s for s in first["stages"] if s["id"] == "application")["outputs"]["app_id"]
    complete_appinv_as_admin(world, app_id, "localhost")
    code, out = psrunner("check", RUNBOOK, *args, *manual, "-o", "json")
    grant = next(s for s in json.loads(out)["stages"] if s["id"] == "appinv-grant")
    assert code == 0 and grant["status"] == "skipped" and not grant["action"]
    assert any("present" in m and "but without effect" in m for m in grant["messages"])

    # 3 after drift is injected: someone changes a setting behind psrunner's back
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

    # the run puts it back
    code, out = psrunner("run", RUNBOOK, *args, "--yes", "-o", "json")
    assert code == 0 and json.loads(out)["status"] == "succeeded"
    assert world.sharepoint.disable_custom_app_authentication is False
    assert psrunner("check", RUNBOOK, *args)[0] == 0


def test_a_setting_the_platform_refuses_for_good_is_reported_not_drift(lab, monkeypatch):
    """The vendor's LegacyAuthProtocolsEnabled = true: refused since 2026-05-01, reported with
    its date, not counted as drift unless --strict."""
    world, tenant, args, state = lab
    monkeypatch.setenv("PSRUNNER_STATE_DIR", str(state))
    legacy = ["-p", "legacy_auth=true"]
    code, out = psrunner("run", RUNBOOK, *args, *legacy, "--yes", "-o", "json")
    first = json.loads(out)
    assert code == 0, [(s["id"], s["status"]) for s in first["stages"]]
    (refusal,) = [r for s in first["stages"] for r in s["refusals"]]
    assert (refusal["item"], refusal["since"], refusal["first_run"]) == (
        "LegacyAuthProtocolsEnabled", "2026-05-01", first["run_id"])

    code, out = psrunner("check", RUNBOOK, *args, *legacy, "-o", "json")
    check = json.loads(out)
    assert code == 0 and check["mode"] == "check" and check["changed"] is False
    spo = next(s for s in check["stages"] if s["id"] == "spo-settings")
    assert spo["status"] == "ok" and spo["refusals"][0]["first_run"] == first["run_id"]
    assert spo["messages"][0] == ("nothing to change but what the platform refuses for good: "
                                  "LegacyAuthProtocolsEnabled (not drift; `check --strict` counts it)")
    assert psrunner("check", RUNBOOK, *args, *legacy, "--strict")[0] == 3

    code, out = psrunner("check", RUNBOOK, *args, *legacy)
    assert code == 0
    assert "Refused by the platform for good (not drift: `check --strict` counts them):" in out
    assert f"LegacyAuthProtocolsEnabled = true (spo-settings): refused since 2026-05-01; first met by run " \
           f"{first['run_id']}" in out
    assert "to stop asking, accept the value the platform keeps: -p legacy_auth=false" in out
    code, out = psrunner("check", RUNBOOK, *args, *legacy, "--summary")
    assert code == 0
    assert out.startswith(f"{RUNBOOK}: in place; refused by the platform: LegacyAuthProtocolsEnabled (run ")
    assert out.endswith(", exit 0)\n") and out.count("\n") == 1
    code, out = psrunner("check", RUNBOOK, *args, *legacy, "-o", "nagios")
    assert code == 0 and "'refused'=1;;;0" in out


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
    tick remediates, the next one finds everything in place, and does not call the run again."""
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
        assert first.returncode == 0, first.stderr
        assert first.stdout.splitlines() == ["drift found: remediating", "remediated"]
        writes = tenant.requests.snapshot()["writes"]
        second = tick()
        assert second.returncode == 0, second.stderr
        assert second.stdout == "in place: nothing to do\n"
        assert tenant.requests.snapshot()["writes"] == writes          # no run, no Set-SPOTenant again
        applied = [tid for tid, params in host.state.invocations if params.get("Apply")]
        assert applied.count("sharepoint/spo_tenant_settings") == 1
