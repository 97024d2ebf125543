"""A person at a keyboard: questions asked when stdin is a terminal wherever stdout goes,
names guessed when mistyped, everything missing reported at once, a way back after a failed
or interrupted run. Exact output where a person reads it."""

from __future__ import annotations

import json
import os
import sys

import click
import pytest
from click.testing import CliRunner

from runner.cli import main
from tests.terminal import at_terminal

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pseudo-terminal")


@click.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.pass_context
def _entry(ctx):
    main(ctx.args)


def invoke(*args, env=None):
    return CliRunner().invoke(_entry, list(args), catch_exceptions=False, env=env)


@pytest.fixture
def env(tmp_path):
    return {**os.environ, "PSRUNNER_STATE_DIR": str(tmp_path / "state")}


# ---------------------------------------------------------------------------- a terminal on stdin

@posix_only
def test_run_piped_to_tee_still_asks_on_the_terminal(tmp_path, env):
    dest = tmp_path / "scripts"
    s = at_terminal("run", "sharepoint-scripts", "-p", f"dest={dest}", env=env,
                    answers={"Apply these changes? [y/N]": "y"}, stdout_to_pipe=True)
    assert s.code == 0, s.terminal + s.stdout
    assert "Apply these changes? [y/N]" in s.terminal          # asked where the person is
    assert s.stdout.startswith("Plan ")                         # the plan went down the pipe
    assert "\nRun " in s.stdout and "3 stages: 3 changed" in s.stdout
    assert sorted(p.name for p in dest.iterdir()) == ["host_facts.ps1", "spo_module.ps1", "spo_tenant_settings.ps1"]


@posix_only
def test_a_no_at_the_question_changes_nothing(tmp_path, env):
    dest = tmp_path / "scripts"
    s = at_terminal("run", "sharepoint-scripts", "-p", f"dest={dest}", env=env,
                    answers={"Apply these changes? [y/N]": "n"}, stdout_to_pipe=True)
    assert s.code == 0 and "nothing changed" in s.terminal and not dest.exists()


def test_show_secret_into_a_pipe_says_why_it_printed_nothing(tmp_path, env):
    r = invoke("run", "sharepoint-scripts", "-p", f"dest={tmp_path / 'o'}", "--yes", "--show-secret", "-q",
               env=env)
    assert r.exit_code == 0
    assert r.output.endswith(
        "--show-secret: nothing printed, because stdout is not a terminal (a secret must not land in a "
        "pipe or a file); the report names the 0600 file that holds it\n")


@posix_only
def test_a_tenant_id_without_admin_url_is_asked_for_it_before_signing_in(tmp_path, env):
    import socket
    with socket.create_server(("127.0.0.1", 0)) as s:
        port = s.getsockname()[1]               # closed again: a sign-in service that refuses
    secret = tmp_path / "operator.secret"
    secret.write_text("not used")
    secret.chmod(0o600)
    s = at_terminal("plan", "m365-backup-access", "-p", "tenant=8f7c1b2a-3d4e-4f50-9a6b-7c8d9e0f1a2b",
                    "-p", "graph_auth=secret", "-p", "graph_client_id=11111111-2222-3333-4444-555555555555",
                    "-p", f"authority_host=https://127.0.0.1:{port}", "--secret-file", f"graph_client_secret={secret}",
                    env={**env, "PSRUNNER_ALLOW_TEST_ENDPOINTS": "1"}, columns=120,
                    answers={"  admin_url: ": "fabrikam-admin", "not accepted": "https://fabrikam-admin.sharepoint.com"})
    asked = ("admin_url (str): the SharePoint admin URL (derived from the tenant domain when not given), e.g. "
             "https://contoso-admin.sharepoint.com\n"
             "  needed: the SharePoint tenant name cannot be derived from a tenant id "
             "(8f7c1b2a-3d4e-4f50-9a6b-7c8d9e0f1a2b)\n"
             "  admin_url: fabrikam-admin\n"
             "  not accepted: parameter 'admin_url': 'fabrikam-admin' does not match the expected form")
    assert asked in s.terminal
    assert s.code == 1                  # then the run tries to sign in (and cannot), not before
    assert s.terminal.index(asked) < s.terminal.index("cannot reach the sign-in service")
    (run_dir,) = (tmp_path / "state" / "runs").iterdir()
    params = json.loads((run_dir / "run.json").read_text())["params"]
    assert params["admin_url"] == "https://fabrikam-admin.sharepoint.com"


# ---------------------------------------------------------------------------- mistyped names

@pytest.mark.parametrize("args, message", [
    (["plan", "m365-backup-access", "-p", "tenat=contoso.onmicrosoft.com"],
     "error: unknown parameter 'tenat' for runbook 'm365-backup-access'\n"
     "  fix: did you mean tenant? (-p tenant=...)\n"),
    (["plan", "m365-backup-access", "-p", "tenant=contoso.onmicrosoft.com", "-p", "host=h",
      "--secret-file", "host_pasword=/dev/null"],
     "error: unknown parameter 'host_pasword' for runbook 'm365-backup-access'\n"
     "  fix: did you mean host_password? (--secret-file host_password=PATH)\n"),
    (["plan", "m365-backup-access", "-p", "colour=red"],
     "error: unknown parameter 'colour' for runbook 'm365-backup-access'\n"
     "  fix: `psrunner show m365-backup-access` lists its 42 parameters\n"),
    (["plan", "m365-backup-acess"],
     "error: no runbook named 'm365-backup-acess'\n  fix: did you mean m365-backup-access?\n"),
    (["render", "m365-backup-access", "--stage", "spo-modul"],
     "error: runbook 'm365-backup-access' has no stage 'spo-modul'\n"
     "  fix: did you mean --stage spo-module? (stages: preflight, host-facts, application, service-principal, "
     "consent, secret, certificate, spo-module, spo-settings, appinv-grant, handoff)\n"),
])
def test_a_mistyped_name_gets_a_guess(args, message, env):
    r = invoke(*args, env=env)
    assert r.exit_code == 2
    assert r.output == message


def test_a_mistyped_command_gets_a_guess():
    r = invoke("paln", "m365-backup-access")
    assert r.exit_code == 2
    assert r.output.endswith("Error: No such command 'paln'. Did you mean 'plan'?\n")


def test_every_missing_required_parameter_at_once(env):
    env = {k: v for k, v in env.items() if k != "PSRUNNER_HOST_PASSWORD"}
    r = invoke("plan", "m365-backup-access", "-p", "host=mgmt01.contoso.local", "-p", "host_user=CONTOSO\\admin",
               env=env)
    assert r.exit_code == 2
    assert r.output == (
        "error: 2 required parameters are missing: tenant, host_password\n"
        "  fix: add -p tenant=contoso.onmicrosoft.com; set PSRUNNER_HOST_PASSWORD "
        "(or --secret-file host_password=PATH); `psrunner show m365-backup-access` says what each one is\n")


# ---------------------------------------------------------------------------- after a failure

def _failed_run(tmp_path, env):
    """A run of sharepoint-scripts whose destination is a file: every stage fails to write."""
    dest = tmp_path / "dest"
    dest.write_text("a file where the folder should be")
    r = invoke("run", "sharepoint-scripts", "-p", f"dest={dest}", "--yes", env=env)
    assert r.exit_code == 1, r.output
    (run_dir,) = (tmp_path / "state" / "runs").iterdir()
    return dest, run_dir.name, r.output


def test_a_failed_run_ends_with_the_command_that_continues_it(tmp_path, env):
    _, run_id, out = _failed_run(tmp_path, env)
    assert out.endswith(f"to continue: psrunner resume {run_id}\n")          # the default state dir
    r = invoke("runs", "show", run_id, "--state-dir", str(tmp_path / "state"), env={"PSRUNNER_STATE_DIR": ""})
    assert r.exit_code == 0
    assert r.output.endswith(f"to continue: psrunner resume {run_id} --state-dir {tmp_path / 'state'}\n")


def test_runs_show_takes_state_dir_before_or_after_show(tmp_path, env):
    _, run_id, _ = _failed_run(tmp_path, env)
    state = str(tmp_path / "state")
    elsewhere = {"PSRUNNER_STATE_DIR": str(tmp_path / "elsewhere")}
    after = invoke("runs", "show", run_id, "--state-dir", state, "-o", "json", env=elsewhere)
    before = invoke("runs", "--state-dir", state, "show", run_id, "-o", "json", env=elsewhere)
    assert after.exit_code == before.exit_code == 0
    assert json.loads(after.output)["run_id"] == json.loads(before.output)["run_id"] == run_id


def test_resume_without_a_terminal_needs_yes(tmp_path, env):
    dest, run_id, _ = _failed_run(tmp_path, env)
    dest.unlink()
    r = invoke("resume", run_id, "-q", env=env)
    assert r.exit_code == 2
    assert r.output.endswith("error: this run would change things and no terminal is attached to confirm\n"
                             "  fix: review the plan above, then run again with --yes\n")
    assert not dest.exists()
    r = invoke("resume", run_id, "--yes", "-q", "-o", "json", env=env)
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["status"] == "succeeded" and len(list(dest.iterdir())) == 3


@posix_only
def test_resume_asks_on_a_terminal(tmp_path, env):
    dest, run_id, _ = _failed_run(tmp_path, env)
    dest.unlink()
    s = at_terminal("resume", run_id, env=env, answers={"Apply these changes? [y/N]": "n"})
    assert s.code == 0 and "nothing changed" in s.terminal and not dest.exists()
    s = at_terminal("resume", run_id, env=env, answers={"Apply these changes? [y/N]": "y"})
    assert s.code == 0, s.terminal
    assert len(list(dest.iterdir())) == 3


def test_list_json_carries_whole_descriptions():
    from runner.catalog import builtin_dir
    from runner.runbook_loader import tomllib
    r = invoke("list", "--output", "json")
    described = {b["name"]: b["description"] for b in json.loads(r.output)}
    for name, text in described.items():
        written = tomllib.loads((builtin_dir() / f"{name}.toml").read_text(encoding="utf-8"))["description"]
        assert text == written.strip(), name
    assert described["m365-backup-access"].endswith("reported as refused or without effect, with what to do instead.")


def test_errors_wrap_to_the_terminal_under_themselves(env):
    env = {k: v for k, v in env.items() if k != "PSRUNNER_HOST_PASSWORD"}
    r = invoke("plan", "m365-backup-access", "-p", "host=mgmt01.contoso.local", "-p", "host_user=CONTOSO\\admin",
               env={**env, "COLUMNS": "80"})
    assert r.exit_code == 2
    assert r.output == (
        "error: 2 required parameters are missing: tenant, host_password\n"
        "  fix: add -p tenant=contoso.onmicrosoft.com; set PSRUNNER_HOST_PASSWORD (or\n"
        "       --secret-file host_password=PATH); `psrunner show m365-backup-access`\n"
        "       says what each one is\n")
