"""Twins of the Active Directory templates (ps_templates/activedirectory/), acting on the host's
directory (`HostState.directory`): a real Samba DC over LDAPS when a test hands one in, the
in-memory domain otherwise (`psrunner demo`, `sim serve`).

Each twin does what its template does, in the same order: Get-ADUser, the guardrails
(`refusal`, the template's Get-PsrunnerRefusal), then the change, then a read back. Cmdlet
failures come from the directory as `DirectoryError`s and leave as the error record the
ActiveDirectory module writes for that cmdlet (message, exception type, category,
FullyQualifiedErrorId: runner/sim/directory/errors.py names the sources).

Not modelled: fine-grained password policies (Get-ADUserResultantPasswordPolicy answers
$null, as it does for an account no PSO applies to)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any, Callable

from ..powershell.result import template_result
from .directory.adobject import ADObject
from .directory.adtime import from_filetime
from .directory.base import Directory
from .directory.errors import DirectoryError
from .directory.protection import protection_of
from .twin_types import HostState, SimSecureString, TwinError, TwinOutput, twin
from .world import SimWorld

# What the templates ask Get-ADUser for ($PsrunnerStateProperties in _state.inc.j2).
STATE_PROPERTIES = ("DisplayName", "LockedOut", "AccountLockoutTime", "BadLogonCount",
                    "LastBadPasswordAttempt", "PasswordLastSet", "PasswordExpired",
                    "PasswordNeverExpires", "LastLogonDate", "adminCount", "pwdLastSet",
                    "msDS-UserPasswordExpiryTimeComputed")
NEVER_EXPIRES = 0x7FFFFFFFFFFFFFFF
# "Password must meet complexity requirements": display-name tokens are split at these.
NAME_DELIMITERS = re.compile(r"[,.\-_#\s]+")


def directory_of(state: HostState) -> Directory:
    """The host's directory; the demo domain when nobody handed one in."""
    if state.directory is None:
        state.directory = demo_directory()
    return state.directory


def demo_directory() -> Directory:
    """contoso.test for the demo and `sim serve`: OU=Staff with jdoe (locked out after five bad
    passwords) and asmith, and adm-jb, a Domain Admins member under the same OU."""
    from .directory.memory import InMemoryDirectory
    from .directory.policy import PasswordPolicy
    d = InMemoryDirectory(policy=PasswordPolicy(lockout_threshold=5, min_password_length=10,
                                                min_password_age=timedelta(0)))
    staff = d.create_ou("Staff")
    d.create_user("jdoe", "Welcome-2026!", parent_dn=staff, given_name="Jane", surname="Doe",
                  display_name="Jane Doe")
    d.create_user("asmith", "Spring-2026!", parent_dn=staff, display_name="Alex Smith")
    d.create_user("adm-jb", "Kestrel-2026!x", parent_dn=staff, display_name="Jo Admin")
    d.add_group_member("Domain Admins", "adm-jb")
    for _ in range(5):
        d.authenticate("jdoe", "not-her-password")
    return d


def _param(params: dict[str, Any], name: str) -> Any:
    return next((v for k, v in params.items() if k.lower() == name.lower()), None)


def _cmdlet(name: str, call: Callable[[], Any]) -> Any:
    """Run a directory call as cmdlet `name` would: its errors as the module's error records."""
    try:
        return call()
    except DirectoryError as e:
        raise TwinError(e.message, exception_type=e.exception_type, category=e.category,
                        fqid=e.fully_qualified_error_id(name), target=e.target) from None


def _get_user(d: Directory, identity: str) -> ADObject:
    return _cmdlet("Get-ADUser", lambda: d.get_user(identity, STATE_PROPERTIES))


def refusal(d: Directory, user: ADObject, allowed_ous: list[str]) -> str | None:
    """Why a helpdesk runbook must not touch `user`, or None (Get-PsrunnerRefusal)."""
    dn = str(user["DistinguishedName"])
    if not any(ou and dn.lower().endswith("," + ou.lower()) for ou in allowed_ous):
        return (f"{user['SamAccountName']} is in {dn.split(',', 1)[1]}, outside the OUs this runbook may "
                f"touch ({'; '.join(allowed_ous)})")
    why = _cmdlet("Get-ADUser", lambda: protection_of(d, dn))
    if why.protected:
        return (f"{user['SamAccountName']} is a protected account ({', '.join(why.reasons)}); a helpdesk "
                f"runbook never changes one: ask a domain administrator")
    return None


def _iso(when: datetime | None) -> str | None:
    return None if when is None else when.strftime("%Y-%m-%dT%H:%M:%SZ")


def when_text(when: datetime | None) -> str:
    """Format-PsrunnerWhen."""
    return "never" if when is None else when.strftime("%Y-%m-%d %H:%M UTC")


def account_state(d: Directory, user: ADObject) -> dict[str, Any]:
    """Get-PsrunnerAccountState: the account as the AD runbooks report it, with its plain line."""
    expiry = int(user["msDS-UserPasswordExpiryTimeComputed"] or 0)
    expires = from_filetime(expiry) if 0 < expiry < NEVER_EXPIRES else None
    must_change = int(user["pwdLastSet"] or 0) == 0
    groups = len(_cmdlet("Get-ADPrincipalGroupMembership",
                         lambda: d.principal_group_membership(user["DistinguishedName"])))
    who = user["SamAccountName"] + (f" ({user['DisplayName']})" if user["DisplayName"] else "")
    line = f"{who} is {'enabled' if user['Enabled'] else 'disabled'}"
    if user["LockedOut"]:
        line += (f", locked out since {when_text(user['AccountLockoutTime'])} after "
                 f"{user['BadLogonCount']} bad password(s)")
    else:
        line += ", not locked out"
    if must_change:
        line += "; the password must be changed at next logon"
    else:
        line += f"; password set {when_text(user['PasswordLastSet'])}"
        if user["PasswordNeverExpires"]:
            line += ", never expires"
        elif user["PasswordExpired"]:
            line += ", expired"
        elif expires:
            line += f", expires {when_text(expires)}"
    line += f"; last logon {when_text(user['LastLogonDate'])}; member of {groups} group(s)."
    return {
        "identity": user["SamAccountName"], "display_name": user["DisplayName"] or "",
        "distinguished_name": user["DistinguishedName"], "enabled": bool(user["Enabled"]),
        "locked_out": bool(user["LockedOut"]), "lockout_time": _iso(user["AccountLockoutTime"]),
        "bad_password_count": int(user["BadLogonCount"]),
        "last_bad_password": _iso(user["LastBadPasswordAttempt"]),
        "password_last_set": _iso(user["PasswordLastSet"]), "password_expires": _iso(expires),
        "password_expired": bool(user["PasswordExpired"]),
        "password_never_expires": bool(user["PasswordNeverExpires"]),
        "must_change_password": must_change, "last_logon": _iso(user["LastLogonDate"]),
        "group_count": groups, "headline": line,
    }


def ad_twin(template_id: str) -> Callable[[Callable[..., dict[str, Any]]], Callable[..., dict[str, Any]]]:
    """Register the twin of an AD template. Every one starts as its template does: Get-ADUser,
    the guardrails (a refusal ends it there), the account's state; `fn(directory, user,
    before, params)` does the rest and returns the result."""
    def deco(fn: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
        @twin(template_id)
        def run(state: HostState, world: SimWorld, params: dict[str, Any]) -> TwinOutput:
            d = directory_of(state)
            user = _get_user(d, str(_param(params, "Identity")))
            why = refusal(d, user, [str(o) for o in (_param(params, "AllowedOUs") or [])])
            if why:
                return TwinOutput(template_result(changed=False, status="refused", reason=why))
            return TwinOutput(fn(d, user, account_state(d, user), params))
        return fn
    return deco


@ad_twin("activedirectory/ad_user_status")
def ad_user_status(d: Directory, user: ADObject, s: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    return template_result(changed=False, before=s, after=s, data=s, messages=[s["headline"]])


@ad_twin("activedirectory/ad_unlock_account")
def ad_unlock_account(d: Directory, user: ADObject, before: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    sam, dn = before["identity"], before["distinguished_name"]
    if not before["locked_out"]:
        line = f"Account {sam} is not locked out; nothing to do."
        return template_result(changed=False, before=before, after=before, data={**before, "headline": line},
                               messages=[line])
    since = f"since {when_text(user['AccountLockoutTime'])} after {before['bad_password_count']} bad password(s)"
    if not _param(params, "Apply"):
        line = f"Account {sam} is locked {since}; a run unlocks it."
        return template_result(changed=True, before=before, after=before, data={**before, "headline": line},
                               messages=[line])
    _cmdlet("Unlock-ADAccount", lambda: d.unlock_account(dn))
    after = account_state(d, _get_user(d, dn))
    if after["locked_out"]:
        return template_result(changed=True, status="failed", before=before, after=after, data=after,
                               reason=f"Unlock-ADAccount returned but {sam} is still locked out")
    line = f"Account {sam} was locked {since}; it is now unlocked."
    return template_result(changed=True, before=before, after=after, data={**after, "headline": line},
                           messages=[line])


def _secure(value: Any, name: str) -> str:
    if not isinstance(value, SimSecureString):
        raise TwinError(f"Cannot process argument transformation on parameter '{name}'. Cannot convert the "
                        f"\"{value}\" value of type \"System.String\" to type \"System.Security.SecureString\".",
                        exception_type="System.Management.Automation.ParameterBindingArgumentTransformationException",
                        category="InvalidData", fqid=f"ParameterArgumentTransformationError,{name}", target=name)
    return value.value


@ad_twin("activedirectory/ad_reset_password")
def ad_reset_password(d: Directory, user: ADObject, before: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    sam, dn = before["identity"], before["distinguished_name"]
    new = _param(params, "NewPassword")
    if not _param(params, "Apply") or new is None:
        policy = _cmdlet("Get-ADDefaultDomainPasswordPolicy", d.default_password_policy)
        tokens = [t for t in NAME_DELIMITERS.split(user["DisplayName"] or "") if len(t) >= 3]
        rules = {"source": "domain", "min_length": int(policy["MinPasswordLength"]),
                 "complexity": bool(policy["ComplexityEnabled"]),
                 "history": int(policy["PasswordHistoryCount"]), "avoid": [sam, *tokens]}
        line = f"A new password would be set for {sam} ({rules['min_length']}+ characters, domain policy)."
        return template_result(changed=True, before=before, after=before,
                               data={"account": before, "policy": rules, "headline": line}, messages=[line])
    password = _secure(new, "NewPassword")
    _cmdlet("Set-ADAccountPassword", lambda: d.set_account_password(dn, password))
    done = []
    change_at_logon = _param(params, "ChangePasswordAtLogon")
    if change_at_logon is None or change_at_logon:
        _cmdlet("Set-ADUser", lambda: d.set_change_password_at_logon(dn, True))
        done.append("it must be changed at next logon")
    if _param(params, "Unlock") and before["locked_out"]:
        _cmdlet("Unlock-ADAccount", lambda: d.unlock_account(dn))
        done.append("the account was unlocked")
    after = account_state(d, _get_user(d, dn))
    line = f"A new password was set for {sam}" + "".join(f"; {x}" for x in done) + "."
    return template_result(changed=True, before=before, after=after, data={"account": after, "headline": line},
                           messages=[line])
