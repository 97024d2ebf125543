"""What a domain controller does, asserted once and run against both backends.

Each test runs on the in-memory directory and on a real Samba AD DC (`directory_backend`);
passing on both is what proves the in-memory directory faithful to a DC."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from runner.sim.directory.adtime import NEVER, from_filetime
from runner.sim.directory.errors import (
    IN_HISTORY,
    NOT_COMPLEX,
    TOO_SHORT,
    TOO_YOUNG,
    IdentityNotFound,
    InvalidOldPassword,
    InvalidProperty,
    PasswordPolicyError,
)
from runner.sim.directory.protection import protection_of

from .fixtures import TEST_POLICY, Backend

START = "Start-Pa55-word"
COMPLEXITY_MESSAGE = "The password does not meet the length, complexity, or history requirement of the domain."


def new_user(backend: Backend, prefix: str = "user", password: str | None = START, **kw) -> str:
    sam = backend.unique(prefix)
    backend.directory.create_user(sam, password, **kw)
    return sam


def near_now(moment: datetime | None, slack: float = 120) -> bool:
    return moment is not None and abs((moment - datetime.now(timezone.utc)).total_seconds()) < slack


# ------------------------------------------------------------------ reading accounts

def test_get_user_default_properties_and_identity_forms(directory_backend: Backend) -> None:
    d = directory_backend.directory
    sam = new_user(directory_backend, "jdoe", given_name="Jane", surname="Doe", display_name=None)
    user = d.get_user(sam)
    assert set(user) == {"DistinguishedName", "Enabled", "GivenName", "Name", "ObjectClass", "ObjectGUID",
                         "SamAccountName", "SID", "Surname", "UserPrincipalName"}
    assert user["Enabled"] is True and user["ObjectClass"] == "user"
    assert user["SamAccountName"] == sam and user["GivenName"] == "Jane" and user["Surname"] == "Doe"
    assert user["UserPrincipalName"] == f"{sam}@{d.dns_domain}"
    assert user["DistinguishedName"] == f"CN={sam},CN=Users,{d.domain_dn}"
    assert user["SID"].startswith("S-1-5-21-")
    for identity in (user["DistinguishedName"], user["DistinguishedName"].upper(), user["ObjectGUID"],
                     user["ObjectGUID"].upper(), user["SID"], sam.upper()):
        assert d.get_user(identity)["SID"] == user["SID"], identity
    assert d.get_user(sam)["samaccountname"] == sam     # property names are case-insensitive


@pytest.mark.parametrize("identity", ["nobody", "{upn}", "CN=nobody,CN=Users,{base}",
                                      "2f1e6c7d-9c4b-4d8e-a1f0-123456789abc", "S-1-5-21-1-2-3-99999"])
def test_unknown_identity_fails_like_the_module(directory_backend: Backend, identity: str) -> None:
    d = directory_backend.directory
    sam = new_user(directory_backend, "known")
    identity = identity.format(upn=f"{sam}@{d.dns_domain}", base=d.domain_dn)   # a UPN is no -Identity
    with pytest.raises(IdentityNotFound) as caught:
        d.get_user(identity)
    assert str(caught.value) == f"Cannot find an object with identity: '{identity}' under: '{d.domain_dn}'."
    assert caught.value.category == "ObjectNotFound"
    assert caught.value.fully_qualified_error_id("Get-ADUser") == (
        "ActiveDirectoryCmdlet:Microsoft.ActiveDirectory.Management.ADIdentityNotFoundException,"
        "Microsoft.ActiveDirectory.Management.Commands.GetADUser")


def test_extended_properties_of_a_fresh_account(directory_backend: Backend) -> None:
    d = directory_backend.directory
    sam = new_user(directory_backend, "fresh", display_name="Fresh Account")
    user = d.get_user(sam, ["LockedOut", "BadLogonCount", "PasswordLastSet", "PasswordExpired",
                            "PasswordNeverExpires", "AccountLockoutTime", "LastBadPasswordAttempt",
                            "LastLogonDate", "lockoutTime", "badPwdCount", "pwdLastSet", "adminCount",
                            "msDS-UserPasswordExpiryTimeComputed", "MemberOf", "DisplayName"])
    assert user["LockedOut"] is False and user["BadLogonCount"] == 0 and user["badPwdCount"] == 0
    assert user["AccountLockoutTime"] is None and user["lockoutTime"] is None
    assert user["LastBadPasswordAttempt"] is None and user["LastLogonDate"] is None
    assert near_now(user["PasswordLastSet"]) and from_filetime(user["pwdLastSet"]) == user["PasswordLastSet"]
    assert user["PasswordExpired"] is False and user["PasswordNeverExpires"] is False
    assert user["adminCount"] is None and user["MemberOf"] == [] and user["DisplayName"] == "Fresh Account"
    expiry = from_filetime(user["msDS-UserPasswordExpiryTimeComputed"])
    assert expiry - user["PasswordLastSet"] == TEST_POLICY.max_password_age


def test_all_properties_and_an_unknown_one(directory_backend: Backend) -> None:
    d = directory_backend.directory
    sam = new_user(directory_backend, "star")
    everything = d.get_user(sam, ["*"])
    for name in ("LockedOut", "PasswordLastSet", "pwdLastSet", "userAccountControl", "objectSid",
                 "msDS-User-Account-Control-Computed", "primaryGroupID", "Created"):
        assert name in everything, name
    assert "lockoutTime" not in everything        # * lists only attributes that are set
    with pytest.raises(InvalidProperty) as caught:
        d.get_user(sam, ["LockedOut", "FavouriteColour"])
    assert caught.value.message == "One or more properties are invalid.\nParameter name: FavouriteColour"


# ------------------------------------------------------------------ lockout

def test_bad_passwords_lock_the_account_and_unlock_lets_it_sign_in(directory_backend: Backend) -> None:
    d = directory_backend.directory
    sam = new_user(directory_backend, "lock")
    assert d.authenticate(sam, START).ok
    for count in (1, 2):
        result = d.authenticate(sam, f"Wrong-{count}-pass")
        assert (result.ok, result.reason) == (False, "bad-password")
        user = d.get_user(sam, ["BadLogonCount", "LockedOut", "LastBadPasswordAttempt"])
        assert user["BadLogonCount"] == count and user["LockedOut"] is False
        assert near_now(user["LastBadPasswordAttempt"])
    assert d.authenticate(sam, "Wrong-3-pass").reason == "bad-password"
    locked = d.get_user(sam, ["LockedOut", "AccountLockoutTime", "lockoutTime", "badPasswordTime", "BadLogonCount"])
    assert locked["LockedOut"] is True and locked["BadLogonCount"] == 3
    assert locked["lockoutTime"] == locked["badPasswordTime"] and near_now(locked["AccountLockoutTime"])

    right_while_locked = d.authenticate(sam, START)
    assert (right_while_locked.ok, right_while_locked.data) == (False, "775")
    assert "AcceptSecurityContext error, data 775" in right_while_locked.message
    assert d.authenticate(sam, "Wrong-4-pass").reason == "locked-out"
    assert d.get_user(sam, ["BadLogonCount", "lockoutTime"])["lockoutTime"] == locked["lockoutTime"]

    d.unlock_account(sam)
    unlocked = d.get_user(sam, ["LockedOut", "BadLogonCount", "lockoutTime", "AccountLockoutTime"])
    assert (unlocked["LockedOut"], unlocked["BadLogonCount"], unlocked["lockoutTime"]) == (False, 0, 0)
    assert unlocked["AccountLockoutTime"] is None
    assert d.authenticate(sam, START).ok


def test_unlock_of_an_account_that_is_not_locked_is_harmless(directory_backend: Backend) -> None:
    d = directory_backend.directory
    sam = new_user(directory_backend, "free")
    d.unlock_account(sam)
    assert d.get_user(sam, ["LockedOut"])["LockedOut"] is False and d.authenticate(sam, START).ok
    with pytest.raises(IdentityNotFound):
        d.unlock_account("no-such-user")


def test_a_good_sign_in_resets_the_bad_password_count(directory_backend: Backend) -> None:
    d = directory_backend.directory
    sam = new_user(directory_backend, "reset")
    assert d.authenticate(sam, "").reason == "bad-password"      # no password: no sign-in, not counted
    assert d.authenticate("no-such-user", START).reason == "bad-password"
    assert d.get_user(sam, ["BadLogonCount"])["BadLogonCount"] == 0
    d.authenticate(sam, "Wrong-1-pass")
    d.authenticate(sam, "Wrong-2-pass")
    assert d.authenticate(sam, START).ok
    user = d.get_user(sam, ["BadLogonCount", "LastLogonDate", "lastLogonTimestamp"])
    assert user["BadLogonCount"] == 0 and near_now(user["LastLogonDate"])
    d.authenticate(sam, "Wrong-3-pass")
    assert d.get_user(sam, ["LockedOut"])["LockedOut"] is False


def test_lockout_ends_after_the_duration_and_counting_restarts_after_the_window(directory_backend: Backend) -> None:
    d = directory_backend.directory
    # Samba compares with the time in whole seconds: a lock may last up to a second longer
    d.set_password_policy(TEST_POLICY.with_changes(lockout_duration=timedelta(seconds=1.5),
                                                   lockout_observation_window=timedelta(seconds=1.5)))
    sam = new_user(directory_backend, "expire")
    for n in range(3):
        d.authenticate(sam, f"Wrong-{n}-pass")
    assert d.get_user(sam, ["LockedOut"])["LockedOut"] is True
    directory_backend.advance(3)
    after = d.get_user(sam, ["LockedOut", "lockoutTime", "BadLogonCount"])
    # the lock is over, though lockoutTime and badPwdCount keep their values until a sign-in
    assert after["LockedOut"] is False and after["lockoutTime"] != 0 and after["BadLogonCount"] == 3
    assert d.authenticate(sam, START).ok
    assert d.get_user(sam, ["lockoutTime"])["lockoutTime"] == 0

    d.authenticate(sam, "Wrong-4-pass")
    d.authenticate(sam, "Wrong-5-pass")
    directory_backend.advance(3)
    d.authenticate(sam, "Wrong-6-pass")
    user = d.get_user(sam, ["BadLogonCount", "LockedOut"])
    assert (user["BadLogonCount"], user["LockedOut"]) == (1, False)


def test_without_a_threshold_nothing_is_counted(directory_backend: Backend) -> None:
    d = directory_backend.directory
    d.set_password_policy(TEST_POLICY.with_changes(lockout_threshold=0))
    sam = new_user(directory_backend, "nolock")
    for n in range(5):
        assert d.authenticate(sam, f"Wrong-{n}-pass").reason == "bad-password"
    user = d.get_user(sam, ["BadLogonCount", "LockedOut", "LastBadPasswordAttempt"])
    assert (user["BadLogonCount"], user["LockedOut"], user["LastBadPasswordAttempt"]) == (0, False, None)


def test_disabled_account_counts_bad_passwords_and_refuses_the_right_one(directory_backend: Backend) -> None:
    d = directory_backend.directory
    sam = new_user(directory_backend, "off")
    d.set_enabled(sam, False)
    assert d.get_user(sam)["Enabled"] is False
    assert d.authenticate(sam, "Wrong-1-pass").reason == "bad-password"
    assert d.get_user(sam, ["BadLogonCount"])["BadLogonCount"] == 1
    assert d.authenticate(sam, START).data == "533"
    d.set_enabled(sam, True)
    assert d.authenticate(sam, START).ok


def test_the_two_previous_passwords_do_not_count_as_bad(directory_backend: Backend) -> None:
    d = directory_backend.directory
    sam = new_user(directory_backend, "hist")
    for n in (1, 2):
        d.set_account_password(sam, f"Next-{n}-Pa55")
    assert d.authenticate(sam, START).reason == "bad-password"       # two back: not counted
    assert d.authenticate(sam, "Next-1-Pa55").reason == "bad-password"  # one back: not counted
    assert d.get_user(sam, ["BadLogonCount"])["BadLogonCount"] == 0
    assert d.authenticate(sam, "Never-used-9").reason == "bad-password"
    assert d.get_user(sam, ["BadLogonCount"])["BadLogonCount"] == 1


# ------------------------------------------------------------------ passwords

@pytest.mark.parametrize(("password", "reason"), [
    ("Ab1-xyz", None),                      # 7 characters, 4 categories
    ("Ab1-xy", TOO_SHORT),
    ("alllowercase1", NOT_COMPLEX),        # 2 categories
    ("abcdefg hij1", NOT_COMPLEX),         # a space is no category
    ("ABCdefghij", NOT_COMPLEX),
    ("{sam}-Xy9", NOT_COMPLEX),            # holds the account name
    ("Quentin-99x", NOT_COMPLEX),          # holds a displayName token
    ("Vo-Abcdef-9", None),                 # tokens under three characters are ignored
    ("Äbcdefgh-1", None),                  # upper case beyond ASCII counts
])
def test_reset_applies_length_and_complexity(directory_backend: Backend, password: str, reason: str | None) -> None:
    d = directory_backend.directory
    sam = new_user(directory_backend, "cx", display_name=f"Quentin Vo-{directory_backend.unique('x')}")
    password = password.format(sam=sam)
    before = d.get_user(sam, ["pwdLastSet"])["pwdLastSet"]
    if reason is None:
        d.set_account_password(sam, password)
        assert d.authenticate(sam, password).ok and not d.authenticate(sam, START).ok
        return
    with pytest.raises(PasswordPolicyError) as caught:
        d.set_account_password(sam, password)
    assert caught.value.reason == reason and caught.value.message == COMPLEXITY_MESSAGE
    assert caught.value.category == "InvalidData"
    assert caught.value.fully_qualified_error_id("Set-ADAccountPassword") == (
        "ActiveDirectoryServer:1325,Microsoft.ActiveDirectory.Management.Commands.SetADAccountPassword")
    # nothing half-done: the old password still signs in, pwdLastSet unchanged
    assert d.get_user(sam, ["pwdLastSet"])["pwdLastSet"] == before
    assert d.authenticate(sam, START).ok


def test_reset_ignores_history_and_minimum_age_but_a_change_does_not(directory_backend: Backend) -> None:
    d = directory_backend.directory
    sam = new_user(directory_backend, "chg")
    d.set_account_password(sam, "Second-Pa55")
    d.set_account_password(sam, START)                         # back to a password in history
    with pytest.raises(PasswordPolicyError) as caught:
        d.set_account_password(sam, "Second-Pa55", old_password=START)
    assert caught.value.reason == IN_HISTORY
    with pytest.raises(PasswordPolicyError) as caught:
        d.set_account_password(sam, START, old_password=START)   # the current one is in history too
    assert caught.value.reason == IN_HISTORY
    d.set_account_password(sam, "Third-Pa55", old_password=START)
    assert d.authenticate(sam, "Third-Pa55").ok

    d.set_password_policy(TEST_POLICY.with_changes(min_password_age=timedelta(days=1)))
    with pytest.raises(PasswordPolicyError) as caught:
        d.set_account_password(sam, "Fourth-Pa55", old_password="Third-Pa55")
    assert caught.value.reason == TOO_YOUNG
    d.set_account_password(sam, "Fourth-Pa55")                 # an administrator's reset is not
    assert d.authenticate(sam, "Fourth-Pa55").ok


def test_change_with_a_wrong_old_password(directory_backend: Backend) -> None:
    d = directory_backend.directory
    sam = new_user(directory_backend, "old")
    with pytest.raises(InvalidOldPassword) as caught:
        d.set_account_password(sam, "Other-Pa55", old_password="Not-the-0ne")
    assert caught.value.message == "The specified network password is not correct"
    assert caught.value.fully_qualified_error_id("Set-ADAccountPassword").startswith("ActiveDirectoryServer:86,")
    assert d.authenticate(sam, START).ok
    assert d.get_user(sam, ["BadLogonCount"])["BadLogonCount"] == 0


def test_after_a_reset_only_the_new_password_signs_in(directory_backend: Backend) -> None:
    d = directory_backend.directory
    sam = new_user(directory_backend, "newpw")
    d.set_account_password(sam, "Brand-New-Pa55")
    assert d.authenticate(sam, START).reason == "bad-password"
    assert d.authenticate(sam, "Brand-New-Pa55").ok


def test_a_reset_neither_unlocks_nor_keeps_must_change(directory_backend: Backend) -> None:
    d = directory_backend.directory
    sam = new_user(directory_backend, "rl")
    for n in range(3):
        d.authenticate(sam, f"Wrong-{n}-pass")
    d.set_change_password_at_logon(sam, True)
    d.set_account_password(sam, "After-Reset-1")
    user = d.get_user(sam, ["LockedOut", "PasswordLastSet", "PasswordExpired"])
    assert user["LockedOut"] is True
    assert near_now(user["PasswordLastSet"]) and user["PasswordExpired"] is False


def test_creating_a_user_with_a_refused_password_creates_nothing(directory_backend: Backend) -> None:
    d = directory_backend.directory
    sam = directory_backend.unique("weak")
    with pytest.raises(PasswordPolicyError):
        d.create_user(sam, "weak")
    with pytest.raises(IdentityNotFound):
        d.get_user(sam)


# ------------------------------------------------------------------ must change at next logon

def test_must_change_at_next_logon(directory_backend: Backend) -> None:
    d = directory_backend.directory
    sam = new_user(directory_backend, "must")
    d.set_change_password_at_logon(sam, True)
    user = d.get_user(sam, ["pwdLastSet", "PasswordLastSet", "PasswordExpired",
                            "msDS-UserPasswordExpiryTimeComputed", "msDS-User-Account-Control-Computed"])
    assert user["pwdLastSet"] == 0 and user["PasswordLastSet"] is None and user["PasswordExpired"] is True
    assert user["msDS-UserPasswordExpiryTimeComputed"] == 0
    assert user["msDS-User-Account-Control-Computed"] == 0x800000
    assert d.authenticate(sam, START).data == "773"
    assert d.authenticate(sam, "Wrong-1-pass").reason == "bad-password"
    assert d.get_user(sam, ["BadLogonCount"])["BadLogonCount"] == 1

    d.set_change_password_at_logon(sam, False)
    user = d.get_user(sam, ["PasswordLastSet", "PasswordExpired"])
    assert near_now(user["PasswordLastSet"]) and user["PasswordExpired"] is False
    assert d.authenticate(sam, START).ok


def test_must_change_has_no_effect_while_the_password_never_expires(directory_backend: Backend) -> None:
    d = directory_backend.directory
    sam = new_user(directory_backend, "never", password_never_expires=True)
    d.set_change_password_at_logon(sam, True)
    user = d.get_user(sam, ["pwdLastSet", "PasswordExpired", "PasswordNeverExpires",
                            "msDS-UserPasswordExpiryTimeComputed"])
    assert (user["pwdLastSet"], user["PasswordExpired"], user["PasswordNeverExpires"]) == (0, False, True)
    assert user["msDS-UserPasswordExpiryTimeComputed"] == NEVER
    assert d.authenticate(sam, START).ok


# ------------------------------------------------------------------ groups and protection

def test_group_membership_direct_and_nested(directory_backend: Backend) -> None:
    d = directory_backend.directory
    sam = new_user(directory_backend, "member")
    inner, outer = directory_backend.unique("Inner"), directory_backend.unique("Outer")
    inner_dn, outer_dn = d.create_group(inner), d.create_group(outer)
    d.add_group_member(inner, sam)
    d.add_group_member(outer, inner)
    d.add_group_member(inner, sam)                     # again: no error, no duplicate
    direct = d.principal_group_membership(sam)
    assert sorted(g["Name"] for g in direct) == sorted(["Domain Users", inner])
    assert {g["GroupScope"] for g in direct} == {"Global"} and {g["GroupCategory"] for g in direct} == {"Security"}
    assert d.get_user(sam, ["MemberOf"])["MemberOf"] == [inner_dn]    # the primary group is not in memberOf
    token = {g["Name"] for g in d.token_groups(sam)}
    assert {"Domain Users", "Users", inner, outer} <= token
    assert outer_dn in {g["DistinguishedName"] for g in d.token_groups(sam)}


def test_protected_accounts(directory_backend: Backend) -> None:
    d = directory_backend.directory
    plain = new_user(directory_backend, "plain")
    assert protection_of(d, plain).protected is False

    marked = new_user(directory_backend, "marked", admin_count=1)
    assert protection_of(d, marked).reasons == ("adminCount is 1",)

    nested = new_user(directory_backend, "nested")
    team = directory_backend.unique("Tier0")
    d.create_group(team)
    d.add_group_member(team, nested)
    d.add_group_member("Domain Admins", team)
    verdict = protection_of(d, nested)
    assert verdict.protected and "member of Domain Admins" in verdict.reasons
    assert "member of Administrators" in verdict.reasons      # Domain Admins sits in Administrators

    operator = new_user(directory_backend, "oper")
    d.add_group_member("Account Operators", operator)
    assert protection_of(d, operator).reasons == ("member of Account Operators",)

    admin = protection_of(d, "Administrator")
    assert admin.protected and "it is the built-in Administrator account" in admin.reasons


# ------------------------------------------------------------------ the domain policy

def test_default_domain_password_policy(directory_backend: Backend) -> None:
    d = directory_backend.directory
    d.set_password_policy(TEST_POLICY.with_changes(min_password_length=9, lockout_threshold=5))
    policy = d.default_password_policy()
    assert list(policy) == ["ComplexityEnabled", "DistinguishedName", "LockoutDuration",
                            "LockoutObservationWindow", "LockoutThreshold", "MaxPasswordAge", "MinPasswordAge",
                            "MinPasswordLength", "objectClass", "objectGuid", "PasswordHistoryCount",
                            "ReversibleEncryptionEnabled"]
    assert policy["MinPasswordLength"] == 9 and policy["LockoutThreshold"] == 5
    assert policy["DistinguishedName"] == d.domain_dn and policy["ComplexityEnabled"] is True
    assert policy["LockoutDuration"] == timedelta(minutes=30) and policy["MaxPasswordAge"] == timedelta(days=42)
    assert policy["PasswordHistoryCount"] == 3 and policy["objectClass"] == ["domainDNS"]
    sam = new_user(directory_backend, "len9")
    with pytest.raises(PasswordPolicyError) as caught:
        d.set_account_password(sam, "Ab1-xyzw")
    assert caught.value.reason == TOO_SHORT
