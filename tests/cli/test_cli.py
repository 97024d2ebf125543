"""The command line: exact output and exit codes for the interfaces other tools script against."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from runner import __version__
from runner.cli import main


def invoke(*args, input=None):
    """Run the CLI the way the console script does (main() maps errors to exit codes)."""
    runner = CliRunner()
    return runner.invoke(_entry, list(args), input=input, catch_exceptions=False)


import click  # noqa: E402


@click.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.pass_context
def _entry(ctx):
    main(ctx.args)


def test_version():
    r = invoke("--version")
    assert r.exit_code == 0 and r.output == f"psrunner, version {__version__}\n"


def test_list_human_and_json():
    r = invoke("list")
    assert r.exit_code == 0
    assert "sharepoint-scripts         admin               Write the SharePoint set-up scripts" in r.output
    r = invoke("list", "--output", "json")
    items = json.loads(r.output)
    assert {"name", "title", "audience"} <= set(items[0])
    assert "sharepoint-scripts" in [i["name"] for i in items]


def test_show_json_has_params_and_stages():
    r = invoke("show", "sharepoint-scripts", "-o", "json")
    d = json.loads(r.output)
    assert d["params"][0] == {"name": "dest", "type": "str", "required": True, "default": None,
                              "help": "folder to write the scripts into (created if missing)"}
    assert [(s["id"], s["kind"], s["template"]) for s in d["stages"]][0] == \
        ("module-script", "local.script_file", "sharepoint/spo_module")


def test_plan_run_and_rerun_json(tmp_path):
    dest = tmp_path / "out"
    r = invoke("plan", "sharepoint-scripts", "-p", f"dest={dest}", "-o", "json", "-q")
    assert r.exit_code == 0, r.output
    plan = json.loads(r.output)
    assert plan["status"] == "succeeded" and plan["mode"] == "plan"
    assert [s["status"] for s in plan["stages"]] == ["changed"] * 3 and not dest.exists()
    assert plan["metrics"]["changed"] == 3
    r = invoke("run", "sharepoint-scripts", "-p", f"dest={dest}", "--yes", "-o", "json", "-q")
    first = json.loads(r.output)
    assert [s["changed"] for s in first["stages"]] == [True] * 3 and len(list(dest.iterdir())) == 3
    r = invoke("run", "sharepoint-scripts", "-p", f"dest={dest}", "--yes", "-o", "json", "-q")
    second = json.loads(r.output)
    assert [s["status"] for s in second["stages"]] == ["ok"] * 3 and second["changed"] is False


def test_run_without_terminal_needs_yes_for_changes(tmp_path):
    r = invoke("run", "sharepoint-scripts", "-p", f"dest={tmp_path / 'o'}", "-q")
    assert r.exit_code == 2
    assert r.output.endswith("error: this run would change things and no terminal is attached to confirm\n"
                             "  fix: review the plan above, then run again with --yes\n")
    assert not (tmp_path / "o").exists()


def test_check_exits_3_on_drift_and_0_when_converged(tmp_path):
    dest = tmp_path / "o"
    assert invoke("check", "sharepoint-scripts", "-p", f"dest={dest}", "-q").exit_code == 3
    invoke("run", "sharepoint-scripts", "-p", f"dest={dest}", "--yes", "-q")
    assert invoke("check", "sharepoint-scripts", "-p", f"dest={dest}", "-q").exit_code == 0


@pytest.mark.parametrize("args, message", [
    (["plan", "nope"], "error: no runbook named 'nope'\n"
                       "  fix: `psrunner list` shows them all; "
                       "or give a path to a .toml file\n"),
    (["plan", "sharepoint-scripts"], "error: parameter 'dest' is required\n"
                                     "  fix: give -p dest=./spo-scripts (folder to write the scripts into (created if missing))\n"),
    (["plan", "sharepoint-scripts", "-p", "dest=/tmp/x", "-p", "colour=red"],
     "error: unknown parameter 'colour' for runbook 'sharepoint-scripts'\n  fix: parameters: dest, admin_url, spo_user, legacy_auth, disable_custom_app_auth\n"),
    (["plan", "sharepoint-scripts", "-p", "dest"],
     "error: -p 'dest' is not of the form key=value\n  fix: write -p name=value\n"),
    (["render", "sharepoint-scripts", "--stage", "nope"],
     "error: runbook 'sharepoint-scripts' has no stage 'nope'\n"
     "  fix: choose one of: module-script, settings-script, facts-script\n"),
    (["plan", "--output", "yaml", "sharepoint-scripts"], None),
])
def test_bad_input_exits_2_naming_the_input(args, message):
    r = invoke(*args)
    assert r.exit_code == 2
    if message:
        assert r.output == message


def test_bad_runbook_file_exits_2_naming_file_and_key(tmp_path):
    f = tmp_path / "bad.toml"
    f.write_text('name = "bad"\ntitle = "Bad"\n[[stages]]\nid = "a"\nkind = "local.file"\ncolour = 1\n')
    r = invoke("plan", str(f))
    assert r.exit_code == 2
    assert r.output == (f"error: {f}: stages.a.colour: unknown key\n"
                        "  fix: allowed keys here: concurrent, explain, id, inputs, kind, on_failure, target, template, "
                        "timeout, title, vars, when\n")


def test_render_prints_the_script_alone():
    r = invoke("render", "sharepoint-scripts", "--stage", "facts-script")
    assert r.exit_code == 0
    assert r.output.startswith("# psrunner-template: windows/host_facts\n")


def test_runs_lists_and_shows(tmp_path):
    r = invoke("plan", "sharepoint-scripts", "-p", f"dest={tmp_path}", "-o", "json", "-q")
    run_id = json.loads(r.output)["run_id"]
    r = invoke("runs")
    assert r.output.startswith(f"{run_id}  plan   succeeded        sharepoint-scripts")
    r = invoke("runs", "show", run_id, "-o", "json")
    assert json.loads(r.output)["run_id"] == run_id
    assert invoke("runs", "show", "nope").exit_code == 2


def test_help_and_list_do_not_import_heavy_libraries():
    code = ("import sys\nfrom runner.cli import main\n"
            "for argv in (['--help'], ['list'], ['show', 'm365-backup-access']):\n"
            "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
            "heavy = sorted(m for m in ('msal', 'pypsrp', 'cryptography', 'requests', 'psrpcore') if m in sys.modules)\n"
            "print('HEAVY', heavy)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip().splitlines()[-1] == "HEAVY []", out.stderr


def test_show_human_describes_params_plainly():
    r = invoke("show", "m365-backup-access")
    assert r.exit_code == 0
    lines = r.output.splitlines()
    assert "  tenant                      str, required" in lines
    assert "  cloud                       global|usgov|usgovdod|china, default global" in lines
    assert "  host_password               secret, optional" in lines
    assert any("(secret: from $PSRUNNER_HOST_PASSWORD, --secret-file host_password=PATH, or a prompt)" in ln
               for ln in lines)
