"""The Active Directory helpdesk runbooks end to end: psrunner over real pypsrp to the host
simulator, whose AD twins act on a directory: the in-memory one, and a real Samba AD DC
(marked `directory`). Lockout comes from real failed sign-ins, password rules from the DC.

Each runbook: plan, apply, re-apply; every refusal (outside the allowed OUs, a protected
account) before any change, exit 2; a password the DC refuses fails with the AD module's
message, exit 1, nothing changed."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from runner import api
from runner.results import RunStatus
from runner.secrets import Secret
from runner.sim.host import HostSimulator
from runner.sim.twin_types import HostState
from tests.directory.fixtures import Backend

START = "Start-Pa55word!"


class Lab:
    """A host simulator on `backend`'s directory, an OU of the test's own with one user, and
    the parameters that point a runbook at them."""

    def __init__(self, backend: Backend, host: HostSimulator, tmp: Path) -> None:
        self.backend, self.host, self.tmp = backend, host, tmp
        d = backend.directory
        self.ou = d.create_ou(backend.unique("Staff"))
        self.user = backend.unique("jdoe")
        d.create_user(self.user, START, parent_dn=self.ou, display_name="Jane Doe")

    def params(self, runbook: str, **extra: Any) -> dict[str, Any]:
        rb = api.load_runbook(runbook)
        given = {"identity": self.user, "allowed_ous": [self.ou], "host": self.host.host,
                 "host_port": self.host.port, "host_auth": "basic", "host_user": self.host.username,
                 "host_password": Secret(self.host.password, "host_password"),
                 "host_ca_bundle": str(self.host.ca_bundle), **extra}
        values, _ = api.resolve_params(rb, given)
        return values

    def run(self, runbook: str, mode: str = "run", *, interactive: bool = False, **extra: Any):
        rb = api.load_runbook(runbook)
        fn = api.run if mode == "run" else api.plan
        return fn(rb, self.params(runbook, **extra), state_dir=self.tmp / "state", interactive=interactive)

    def lock(self, who: str | None = None) -> None:
        for _ in range(3):                       # TEST_POLICY: locked after 3 bad passwords
            self.backend.directory.authenticate(who or self.user, "Not-The-Pa55word!")

    def get(self, *props: str):
        return self.backend.directory.get_user(self.user, list(props))


@pytest.fixture
def lab(directory_backend: Backend, tmp_path: Path):
    with HostSimulator(state=HostState(directory=directory_backend.directory)) as host:
        yield Lab(directory_backend, host, tmp_path)


def stage(result, sid: str):
    return result.stage(sid)


# ---------------------------------------------------------------------------- ad-user-status

def test_status_reports_a_lock_from_real_failed_sign_ins(lab: Lab):
    lab.lock()
    res = lab.run("ad-user-status")
    assert res.status == RunStatus.SUCCEEDED
    out = stage(res, "status").outputs
    assert out["locked_out"] is True and out["bad_password_count"] == 3 and out["enabled"] is True
    assert out["lockout_time"] and out["last_bad_password"] and out["password_last_set"]
    assert out["must_change_password"] is False and out["group_count"] == 1      # Domain Users
    assert res.headline.startswith(f"{lab.user} (Jane Doe) is enabled, locked out since ")
    assert "after 3 bad password(s)" in res.headline and res.headline.endswith("member of 1 group(s).")
    again = lab.run("ad-user-status")
    assert [s.status.value for s in again.stages] == ["ok"]


# ---------------------------------------------------------------------------- ad-unlock-account

def test_unlock_plan_apply_reapply_and_the_user_can_sign_in_again(lab: Lab):
    lab.lock()
    assert lab.backend.directory.authenticate(lab.user, START).reason == "locked-out"
    plan = lab.run("ad-unlock-account", "plan")
    assert stage(plan, "unlock").status.value == "changed" and lab.get("LockedOut")["LockedOut"] is True
    assert plan.headline.startswith(f"Account {lab.user} is locked since ")

    res = lab.run("ad-unlock-account")
    assert stage(res, "unlock").status.value == "changed"
    assert res.headline.startswith(f"Account {lab.user} was locked since ")
    assert res.headline.endswith("after 3 bad password(s); it is now unlocked.")
    assert stage(res, "unlock").diff["before"]["locked_out"] is True
    assert stage(res, "unlock").diff["after"]["locked_out"] is False
    assert lab.backend.directory.authenticate(lab.user, START).ok

    again = lab.run("ad-unlock-account")
    assert stage(again, "unlock").status.value == "ok"
    assert again.headline == f"Account {lab.user} is not locked out; nothing to do."


def test_outside_the_allowed_ous_is_refused_before_any_change(lab: Lab):
    lab.lock()
    other = lab.backend.directory.create_ou(lab.backend.unique("Other"))
    res = lab.run("ad-unlock-account", allowed_ous=[other])
    st = stage(res, "unlock")
    assert res.status == RunStatus.FAILED and st.error["exit_code"] == 2 and st.error["type"] == "Refused"
    assert res.headline == (f"Refused: {lab.user} is in {lab.ou}, outside the OUs this runbook may touch "
                            f"({other})")
    assert lab.get("LockedOut")["LockedOut"] is True


@pytest.mark.parametrize("runbook", ["ad-unlock-account", "ad-reset-password", "ad-user-status"])
def test_a_domain_admin_is_refused_before_any_change(lab: Lab, runbook: str):
    admin = lab.backend.unique("adm")
    d = lab.backend.directory
    d.create_user(admin, START, parent_dn=lab.ou, display_name="Jo Admin")
    d.add_group_member("Domain Admins", admin)
    lab.lock(admin)
    before = d.get_user(admin, ["LockedOut", "pwdLastSet"])
    extra = {"password_file": str(lab.tmp / "pw")} if runbook == "ad-reset-password" else {}
    res = lab.run(runbook, identity=admin, **extra)
    st = res.stages[0]
    assert st.status.value == "failed" and st.error["exit_code"] == 2
    assert res.headline.startswith(f"Refused: {admin} is a protected account (")
    assert "member of Domain Admins" in res.headline and "member of Administrators" in res.headline  # nested
    assert res.headline.endswith("); a helpdesk runbook never changes one: ask a domain administrator")
    after = d.get_user(admin, ["LockedOut", "pwdLastSet"])
    assert after["LockedOut"] is True and after["pwdLastSet"] == before["pwdLastSet"]
    assert not (lab.tmp / "pw").exists()


# ---------------------------------------------------------------------------- ad-reset-password

def test_reset_generates_a_password_the_dc_accepts_and_hands_it_over_once(lab: Lab):
    lab.lock()
    pw_file = lab.tmp / "handover" / "jdoe.txt"
    plan = lab.run("ad-reset-password", "plan", password_file=str(pw_file), unlock=True)
    assert stage(plan, "reset").status.value == "changed" and not pw_file.exists()
    assert plan.headline.startswith(f"A new password would be set for {lab.user} (")
    res = lab.run("ad-reset-password", password_file=str(pw_file), unlock=True)
    assert res.status == RunStatus.SUCCEEDED, res.stages[0].error
    assert res.headline == (f"A new password was set for {lab.user}; it must be changed at next logon; "
                            "the account was unlocked.")
    assert stat.S_IMODE(pw_file.stat().st_mode) == 0o600
    new = pw_file.read_text().strip()
    assert len(new) >= 16
    # the DC took it: the new password is right (773: it must be changed), the old one is not
    assert lab.backend.directory.authenticate(lab.user, new).reason == "must-change"
    assert lab.get("pwdLastSet")["pwdLastSet"] == 0 and lab.get("LockedOut")["LockedOut"] is False
    # the password is nowhere but in the file
    state = lab.tmp / "state"
    for f in state.rglob("*"):
        if f.is_file():
            assert new not in f.read_text(errors="replace"), f
    assert new not in repr(res.to_dict())


def test_a_password_the_dc_refuses_fails_with_the_ad_message_and_changes_nothing(lab: Lab):
    lab.lock()
    before = lab.get("pwdLastSet", "LockedOut")
    res = lab.run("ad-reset-password", new_password=Secret("abc", "new_password"),
                  password_file=str(lab.tmp / "pw"), unlock=True)
    st = stage(res, "reset")
    assert res.status == RunStatus.FAILED and st.error.get("exit_code", 1) == 1
    assert "The password does not meet the length, complexity, or history requirement of the domain." \
        in st.error["message"]
    assert st.error["records"][0]["fqid"] == (
        "ActiveDirectoryServer:1325,Microsoft.ActiveDirectory.Management.Commands.SetADAccountPassword")
    after = lab.get("pwdLastSet", "LockedOut")
    assert (after["pwdLastSet"], after["LockedOut"]) == (before["pwdLastSet"], True)
    assert not (lab.tmp / "pw").exists()


def test_without_a_terminal_or_a_file_the_password_has_nowhere_to_go(lab: Lab):
    before = lab.get("pwdLastSet")["pwdLastSet"]
    res = lab.run("ad-reset-password", "plan")
    st = stage(res, "reset")
    assert st.error["exit_code"] == 2 and "nowhere to go" in st.error["message"]
    assert lab.host.state.invocations == [] and lab.get("pwdLastSet")["pwdLastSet"] == before


def test_a_given_password_needs_no_terminal_and_is_not_handed_back(lab: Lab):
    given = "Given-Pa55word-2026!"
    res = lab.run("ad-reset-password", new_password=Secret(given, "new_password"))
    st = stage(res, "reset")
    assert res.status == RunStatus.SUCCEEDED and "one_time_password" not in st.outputs
    assert "The password you gave is set; it is not shown or kept anywhere." in st.messages
    assert lab.backend.directory.authenticate(lab.user, given).reason == "must-change"


def test_on_a_terminal_the_password_is_in_the_result_once_and_masked_in_every_record(lab: Lab):
    from runner import render_text
    res = lab.run("ad-reset-password", interactive=True)
    secret = stage(res, "reset").outputs["one_time_password"]
    assert isinstance(secret, Secret)
    shown = render_text.result(res, terminal=True)
    assert f"New password (shown once, kept nowhere): {secret.reveal()}" in shown
    assert secret.reveal() not in render_text.result(res, terminal=False)
    assert "New password: (not shown here: this output is not a terminal)" in render_text.result(res)
    assert lab.backend.directory.authenticate(lab.user, secret.reveal()).reason == "must-change"
    for f in (lab.tmp / "state").rglob("*"):
        if f.is_file():
            assert secret.reveal() not in f.read_text(errors="replace"), f
    assert os.environ.get("PSRUNNER_NEW_PASSWORD") is None


# ---------------------------------------------------------------------------- through the command

def psrunner(lab: Lab, *args: str) -> subprocess.CompletedProcess:
    pw = lab.tmp / "host-password"
    pw.write_text(lab.host.password)
    pw.chmod(0o600)                 # a secret file others can read is refused
    common = ["-p", f"allowed_ous={lab.ou}", "-p", f"host={lab.host.host}", "-p", f"host_port={lab.host.port}",
              "-p", "host_auth=basic", "-p", f"host_user={lab.host.username}",
              "-p", f"host_ca_bundle={lab.host.ca_bundle}", "--secret-file", f"host_password={pw}"]
    env = {**os.environ, "PSRUNNER_STATE_DIR": str(lab.tmp / "state")}
    return subprocess.run([sys.executable, "-m", "runner.cli", *args, *common], capture_output=True, text=True,
                          env=env, timeout=120, stdin=subprocess.DEVNULL)


def test_the_command_says_what_happened_first_and_refuses_with_exit_2(lab: Lab):
    lab.lock()
    r = psrunner(lab, "run", "ad-unlock-account", "-p", f"identity={lab.user}", "--yes")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0].startswith(f"Account {lab.user} was locked since ")
    assert r.stdout.splitlines()[1].startswith("Run ")
    admin = lab.backend.unique("adm")
    lab.backend.directory.create_user(admin, START, parent_dn=lab.ou)
    lab.backend.directory.add_group_member("Domain Admins", admin)
    r = psrunner(lab, "run", "ad-unlock-account", "-p", f"identity={admin}", "--yes")
    assert r.returncode == 2
    assert r.stdout.splitlines()[0].startswith(f"Refused: {admin} is a protected account (")


def test_canary_the_generated_password_is_nowhere_but_its_file(lab: Lab):
    handover = lab.tmp / "handover.txt"
    r = psrunner(lab, "run", "ad-reset-password", "-p", f"identity={lab.user}", "-p", f"password_file={handover}",
                 "--yes", "-vv")
    assert r.returncode == 0, r.stderr
    canary = handover.read_text().strip()
    assert lab.backend.directory.authenticate(lab.user, canary).reason == "must-change"
    assert canary not in r.stdout + r.stderr
    assert "New password" not in r.stdout           # not a terminal, and it went to the file
    files = [f for f in (lab.tmp / "state").rglob("*") if f.is_file()]
    assert any(f.name == "events.jsonl" for f in files) and any(f.name == "report.json" for f in files)
    for f in files:
        assert canary not in f.read_text(errors="replace"), f


def test_the_demo_domain_has_a_locked_user_and_a_protected_one():
    from runner.sim.directory.protection import protection_of
    from runner.sim.twins_ad import directory_of
    state = HostState()
    d = directory_of(state)
    assert d is directory_of(state)                                   # made once, on first use
    assert d.get_user("jdoe", ["LockedOut"])["LockedOut"] is True
    assert protection_of(d, "adm-jb").protected and not protection_of(d, "asmith").protected


def test_at_a_terminal_missing_parameters_are_asked_and_the_password_shown_once(lab: Lab):
    from tests.terminal import at_terminal
    pw = lab.tmp / "host-password"
    pw.write_text(lab.host.password)
    pw.chmod(0o600)                 # a secret file others can read is refused
    args = ["run", "ad-reset-password", "--yes", "-p", f"allowed_ous={lab.ou}", "-p", f"host={lab.host.host}",
            "-p", f"host_port={lab.host.port}", "-p", "host_auth=basic", "-p", f"host_user={lab.host.username}",
            "-p", f"host_ca_bundle={lab.host.ca_bundle}", "--secret-file", f"host_password={pw}"]
    env = {**os.environ, "PSRUNNER_STATE_DIR": str(lab.tmp / "state")}
    s = at_terminal(*args, env=env, answers={"  identity: ": "not a/name", "not accepted": lab.user})
    assert s.code == 0, s.terminal
    assert "identity (str): the account: its logon name (sAMAccountName) or distinguished name, e.g. jdoe" \
        in s.terminal
    assert "  not accepted: parameter 'identity': 'not a/name' does not match the expected form" in s.terminal
    shown = [ln for ln in s.terminal.splitlines() if ln.startswith("New password (shown once, kept nowhere): ")]
    assert len(shown) == 1
    new = shown[0].split(": ", 1)[1].strip()
    assert lab.backend.directory.authenticate(lab.user, new).reason == "must-change"
    for f in (lab.tmp / "state").rglob("*"):
        if f.is_file():
            assert new not in f.read_text(errors="replace"), f


def test_without_a_terminal_missing_parameters_are_refused_together(lab: Lab):
    r = psrunner(lab, "run", "ad-unlock-account", "--yes")
    assert r.returncode == 2 and "parameter 'identity' is required" in r.stderr
