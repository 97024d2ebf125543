"""The password rules, time conversions and -Identity forms, on their own (no directory)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest

from runner.sim.directory.adtime import FOREVER, NEVER, from_filetime, ticks_to_duration, to_filetime
from runner.sim.directory.errors import NOT_COMPLEX, TOO_SHORT
from runner.sim.directory.identity import DN, GUID, SAM, SID, classify, sid_from_bytes, sid_to_bytes
from runner.sim.directory.policy import PasswordPolicy, character_categories, password_problem


@pytest.mark.parametrize(("password", "categories"), [
    ("abc", 1), ("abcDEF", 2), ("abc DEF", 2), ("abcDEF1", 3), ("aB1!", 4),
    ("日本語abc1", 3),          # alphabetic, neither upper nor lower case
    ("abc€1", 2),             # a currency sign is none of the five (Samba would count it)
])
def test_character_categories(password: str, categories: int) -> None:
    assert character_categories(password) == categories


@pytest.mark.parametrize(("password", "policy", "problem"), [
    ("Ab1-xyz", PasswordPolicy(), None),
    ("Ab1-xy", PasswordPolicy(), TOO_SHORT),
    ("abcdefgh", PasswordPolicy(complexity_enabled=False), None),
    ("ab", PasswordPolicy(complexity_enabled=False, min_password_length=0), None),
    ("😀😀😀Ab1", PasswordPolicy(min_password_length=9), None),   # length counts UTF-16 units
    ("xJDOEx-12", PasswordPolicy(), NOT_COMPLEX),
    ("Doe-Abcd-12", PasswordPolicy(), None),          # "Doe" is in the display name, not "Jo"
    ("Smith-ab-12", PasswordPolicy(), NOT_COMPLEX),
])
def test_password_problem(password: str, policy: PasswordPolicy, problem: str | None) -> None:
    assert password_problem(password, policy, sam_account_name="jdoe", display_name="Jo Smith_Jones") == problem


def test_check_password_script_protocol() -> None:
    """Samba runs the module with the password on stdin and the account in the environment."""
    def run(password: str, account: str, full_name: str) -> int:
        env = {**os.environ, "SAMBA_CPS_ACCOUNT_NAME": account, "SAMBA_CPS_FULL_NAME": full_name}
        return subprocess.run([sys.executable, "-m", "runner.sim.directory.policy"], input=password,
                              text=True, env=env, timeout=30, check=False).returncode
    assert run("Good-Pa55word", "jdoe", "Jane Doe") == 0
    assert run("Jane-Pa55word", "jdoe", "Jane Doe") == 1
    assert run("alllowercase", "jdoe", "Jane Doe") == 1


def test_policy_round_trips_through_domain_attributes() -> None:
    policy = PasswordPolicy(min_password_age=timedelta(0), max_password_age=timedelta(0),
                            lockout_duration=timedelta(0), lockout_threshold=5)
    attrs = policy.to_domain_attributes()
    assert attrs["maxPwdAge"] == FOREVER and attrs["lockoutDuration"] == FOREVER and attrs["minPwdAge"] == 0
    assert PasswordPolicy.from_domain_attributes(attrs) == policy


def test_filetimes() -> None:
    moment = datetime(2026, 11, 30, 9, 14, 5, 123456, tzinfo=timezone.utc)
    assert from_filetime(to_filetime(moment)) == moment
    assert from_filetime(0) is None and from_filetime(NEVER) is None
    assert to_filetime(datetime(1601, 1, 1, 0, 0, 1, tzinfo=timezone.utc)) == 10_000_000
    assert ticks_to_duration(-30 * 60 * 10_000_000) == timedelta(minutes=30)


@pytest.mark.parametrize(("text", "kind"), [
    ("CN=Jane Doe,OU=Staff,DC=contoso,DC=test", DN), ("cn=x", DN),
    ("{2F1E6C7D-9C4B-4D8E-A1F0-123456789ABC}", GUID), ("2f1e6c7d9c4b4d8ea1f0123456789abc", GUID),
    ("S-1-5-21-1-2-3-1104", SID), ("s-1-5-32-544", SID),
    ("jdoe", SAM), ("jdoe@contoso.test", SAM), ("CONTOSO\\jdoe", SAM),
])
def test_identity_forms(text: str, kind: str) -> None:
    assert classify(text).kind == kind


def test_sid_binary_round_trip() -> None:
    sid = "S-1-5-21-639522810-483206683-75548424-1102"
    assert sid_from_bytes(sid_to_bytes(sid)) == sid
    assert sid_to_bytes("S-1-5-32-544").hex() == "01020000000000052000000020020000"
