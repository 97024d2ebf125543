"""User accounts as the ActiveDirectory module shows them, computed from LDAP attributes.

Both backends hand `shape_user` the same raw attributes (typed: ints, strings, lists; SIDs and
GUIDs as strings); the real one as a DC returns them, the in-memory one as it computes them
(`computed_user_account_control`, `password_expiry_time` below, the way a DC does). So a
twin sees one shape whatever the backend.

How Get-ADUser's properties derive from attributes (source: Microsoft TechNet Wiki "Active
Directory: Get-ADUser Default and Extended Properties", and a recorded `Get-ADUser
-Properties *`; flag values from Microsoft Learn "User-Account-Control attribute" and
"ms-DS-User-Account-Control-Computed attribute"):

| property | from |
|---|---|
| Enabled | userAccountControl without ACCOUNTDISABLE (0x2) |
| LockedOut | msDS-User-Account-Control-Computed has UF_LOCKOUT (0x10) |
| PasswordExpired | msDS-User-Account-Control-Computed has UF_PASSWORD_EXPIRED (0x800000) |
| PasswordNeverExpires | userAccountControl has DONT_EXPIRE_PASSWORD (0x10000) |
| PasswordNotRequired | userAccountControl has PASSWD_NOTREQD (0x20) |
| AccountLockoutTime | lockoutTime as a date (0: none) |
| BadLogonCount | badPwdCount |
| LastBadPasswordAttempt | badPasswordTime as a date |
| PasswordLastSet | pwdLastSet as a date (0: none, "must change") |
| LastLogonDate | lastLogonTimestamp as a date |
| AccountExpirationDate | accountExpires as a date (0 or never: none) |
| MemberOf | memberOf (direct groups, without the primary group) |
| ObjectClass | objectClass (the last value) |
| SID, Surname, Created | objectSid, sn, whenCreated |
| Name, ObjectGUID, SamAccountName, UserPrincipalName, GivenName, DisplayName, DistinguishedName | the attribute of that name |

The ten default properties (returned without -Properties) are DistinguishedName, Enabled,
GivenName, Name, ObjectClass, ObjectGUID, SamAccountName, SID, Surname, UserPrincipalName."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

from .adobject import ADObject
from .adtime import NEVER, TICKS_PER_SECOND, from_filetime, to_filetime
from .errors import InvalidProperty
from .policy import PasswordPolicy

# userAccountControl (Microsoft Learn, "User-Account-Control attribute")
ACCOUNTDISABLE = 0x2
PASSWD_NOTREQD = 0x20
NORMAL_ACCOUNT = 0x200
WORKSTATION_TRUST_ACCOUNT = 0x1000
DONT_EXPIRE_PASSWORD = 0x10000
# msDS-User-Account-Control-Computed
UF_LOCKOUT = 0x10
UF_PASSWORD_EXPIRED = 0x800000

# The modelled LDAP attributes of a user and how their values are typed.
INT, TEXT, TEXTS, SID, GUID, TIME = "int", "text", "texts", "sid", "guid", "time"
USER_ATTRIBUTES: dict[str, str] = {
    "distinguishedName": TEXT, "cn": TEXT, "name": TEXT, "objectClass": TEXTS,
    "objectGUID": GUID, "objectSid": SID, "sAMAccountName": TEXT, "userPrincipalName": TEXT,
    "givenName": TEXT, "sn": TEXT, "displayName": TEXT, "userAccountControl": INT,
    "msDS-User-Account-Control-Computed": INT, "msDS-UserPasswordExpiryTimeComputed": INT,
    "pwdLastSet": INT, "lockoutTime": INT, "badPwdCount": INT, "badPasswordTime": INT,
    "lastLogonTimestamp": INT, "lastLogon": INT, "logonCount": INT, "accountExpires": INT,
    "adminCount": INT, "memberOf": TEXTS, "primaryGroupID": INT, "whenCreated": TIME,
}
_ATTRIBUTE_NAMES = {name.lower(): name for name in USER_ATTRIBUTES}


def _when(attr: str) -> Callable[[dict[str, Any]], Any]:
    return lambda raw: from_filetime(raw.get(attr))


def _flag(attr: str, bit: int, present: bool = True) -> Callable[[dict[str, Any]], bool]:
    return lambda raw: bool(int(raw.get(attr) or 0) & bit) == present


def _plain(attr: str) -> Callable[[dict[str, Any]], Any]:
    return lambda raw: raw.get(attr)


DEFAULT_PROPERTIES: dict[str, Callable[[dict[str, Any]], Any]] = {
    "DistinguishedName": _plain("distinguishedName"),
    "Enabled": _flag("userAccountControl", ACCOUNTDISABLE, present=False),
    "GivenName": _plain("givenName"),
    "Name": _plain("name"),
    "ObjectClass": lambda raw: (raw.get("objectClass") or [None])[-1],
    "ObjectGUID": _plain("objectGUID"),
    "SamAccountName": _plain("sAMAccountName"),
    "SID": _plain("objectSid"),
    "Surname": _plain("sn"),
    "UserPrincipalName": _plain("userPrincipalName"),
}
EXTENDED_PROPERTIES: dict[str, Callable[[dict[str, Any]], Any]] = {
    "AccountExpirationDate": _when("accountExpires"),
    "AccountLockoutTime": _when("lockoutTime"),
    "BadLogonCount": lambda raw: int(raw.get("badPwdCount") or 0),
    "Created": _plain("whenCreated"),
    "DisplayName": _plain("displayName"),
    "LastBadPasswordAttempt": _when("badPasswordTime"),
    "LastLogonDate": _when("lastLogonTimestamp"),
    "LockedOut": _flag("msDS-User-Account-Control-Computed", UF_LOCKOUT),
    "MemberOf": lambda raw: list(raw.get("memberOf") or []),
    "PasswordExpired": _flag("msDS-User-Account-Control-Computed", UF_PASSWORD_EXPIRED),
    "PasswordLastSet": _when("pwdLastSet"),
    "PasswordNeverExpires": _flag("userAccountControl", DONT_EXPIRE_PASSWORD),
    "PasswordNotRequired": _flag("userAccountControl", PASSWD_NOTREQD),
}
_PROPERTY_NAMES = {name.lower(): name for name in (*DEFAULT_PROPERTIES, *EXTENDED_PROPERTIES)}


def requested_properties(properties: Iterable[str]) -> tuple[list[str], list[str], bool]:
    """Split -Properties into friendly properties and LDAP attributes (canonical spelling);
    "*" asks for everything. An unknown name fails as the module fails, naming it."""
    friendly: list[str] = []
    ldap: list[str] = []
    everything = False
    for name in properties:
        key = name.strip().lower()
        if key == "*":
            everything = True
        elif key in _PROPERTY_NAMES:
            friendly.append(_PROPERTY_NAMES[key])
        elif key in _ATTRIBUTE_NAMES:
            ldap.append(_ATTRIBUTE_NAMES[key])
        else:
            raise InvalidProperty(name)
    return friendly, ldap, everything


def shape_user(raw: dict[str, Any], properties: Iterable[str] = ()) -> ADObject:
    """Get-ADUser's answer for the account with attributes `raw` and -Properties `properties`.

    Asked-for LDAP attributes appear under their own names (None when not set); with "*" every
    set attribute appears, as the module lists them."""
    friendly, ldap, everything = requested_properties(properties)
    out: dict[str, Any] = {name: fn(raw) for name, fn in DEFAULT_PROPERTIES.items()}
    for name, fn in EXTENDED_PROPERTIES.items():
        if everything or name in friendly:
            out[name] = fn(raw)
    attrs = [a for a in USER_ATTRIBUTES if raw.get(a) not in (None, [])] if everything else ldap
    for attr in attrs:
        value = raw.get(attr)
        out[attr] = list(value) if isinstance(value, list) else value
    return ADObject(out)


# ------------------------------------------------------------------ what a DC computes

def lockout_in_force(lockout_time: int, policy: PasswordPolicy, now: datetime) -> bool:
    """A lockout lasts lockoutDuration from lockoutTime, or until unlocked when it is 0."""
    if not lockout_time:
        return False
    if not policy.lockout_duration:
        return True
    return from_filetime(lockout_time) + policy.lockout_duration > now  # type: ignore[operator]


def effective_max_age(policy: PasswordPolicy) -> timedelta | None:
    """The maximum password age in force, None when passwords never expire. Samba 4.17 treats a
    maxPwdAge under one day as "never" (seen on a provisioned DC: 2 s gives
    msDS-UserPasswordExpiryTimeComputed = 0x7FFFFFFFFFFFFFFF)."""
    if not policy.max_password_age or policy.max_password_age < timedelta(days=1):
        return None
    return policy.max_password_age


def password_expiry_time(raw: dict[str, Any], policy: PasswordPolicy) -> int:
    """msDS-UserPasswordExpiryTimeComputed (MS-ADTS 3.1.1.4.4): 0 when the password must be
    changed (pwdLastSet 0), never with DONT_EXPIRE_PASSWORD or no maximum age, else
    pwdLastSet + maxPwdAge."""
    uac = int(raw.get("userAccountControl") or 0)
    if uac & DONT_EXPIRE_PASSWORD:
        return NEVER
    last_set = int(raw.get("pwdLastSet") or 0)
    if last_set == 0:
        return 0
    max_age = effective_max_age(policy)
    if max_age is None:
        return NEVER
    return last_set + round(max_age.total_seconds() * TICKS_PER_SECOND)


def computed_user_account_control(raw: dict[str, Any], policy: PasswordPolicy, now: datetime) -> int:
    """msDS-User-Account-Control-Computed: UF_LOCKOUT while a lockout is in force,
    UF_PASSWORD_EXPIRED when the password must be changed or has expired (never with
    DONT_EXPIRE_PASSWORD)."""
    flags = 0
    if lockout_in_force(int(raw.get("lockoutTime") or 0), policy, now):
        flags |= UF_LOCKOUT
    expiry = password_expiry_time(raw, policy)
    if expiry != NEVER and expiry <= to_filetime(now):
        flags |= UF_PASSWORD_EXPIRED
    return flags
