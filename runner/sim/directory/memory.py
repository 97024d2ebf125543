"""`InMemoryDirectory`: an Active Directory domain in a dict, for machines without Samba.

It keeps what a DC keeps (LDAP attributes, password hashes with history, the domain policy)
and decides what a DC decides, in the order Samba 4.17 decides it:

- a sign-in checks, in turn: lockout in force (data 775, nothing counted), the password
  (wrong: data 52e, and with a lockout threshold badPwdCount grows, restarting at 1 when the
  last bad password is older than the observation window, unless the wrong password is one of
  the two before the current one; reaching the threshold sets lockoutTime), then disabled
  (533), must change (773), expired (532). A good sign-in clears badPwdCount and lockoutTime
  and stamps lastLogonTimestamp when it is unset or 14 days (msDS-LogonTimeSyncInterval) old.
- a password change checks the old password (00000056), the minimum age (unless pwdLastSet is
  0), the history (the current password is refused even without a history), then length and
  complexity; a reset only the last two. Every accepted password enters the history.

The behaviour tests in tests/directory run the same assertions against this class and against
a real Samba DC; where they pass on both, this class behaves as the DC does."""

from __future__ import annotations

import hashlib
import itertools
import secrets
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from .accounts import (
    ACCOUNTDISABLE,
    DONT_EXPIRE_PASSWORD,
    NORMAL_ACCOUNT,
    UF_PASSWORD_EXPIRED,
    computed_user_account_control,
    lockout_in_force,
    password_expiry_time,
)
from .adobject import ADObject
from .adtime import from_filetime, to_filetime
from .base import BindResult, Directory
from .errors import (
    IN_HISTORY,
    TOO_YOUNG,
    IdentityNotFound,
    InvalidOldPassword,
    PasswordPolicyError,
)
from .groups import (
    BUILTIN_GROUPS,
    DOMAIN_GROUPS,
    GLOBAL_SECURITY,
    shape_group,
)
from .identity import DN, GUID, SAM, SID, classify, normalize_dn
from .policy import PasswordPolicy, password_problem

LOGON_TIME_SYNC_INTERVAL = timedelta(days=14)


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class _Entry:
    attrs: dict[str, Any]
    password_hash: str | None = None
    history: list[str] = field(default_factory=list)   # newest first, current included
    members: list[str] = field(default_factory=list)   # groups: member DNs

    @property
    def dn(self) -> str:
        return self.attrs["distinguishedName"]


class InMemoryDirectory(Directory):
    """A domain with the containers, built-in groups and accounts a fresh Samba DC has."""

    def __init__(self, dns_domain: str = "contoso.test", *, admin_password: str | None = None,
                 policy: PasswordPolicy | None = None,
                 clock: Callable[[], datetime] = _utcnow) -> None:
        self.dns_domain = dns_domain.lower()
        self.netbios_domain = self.dns_domain.split(".")[0].upper()[:15]
        self.domain_dn = ",".join(f"DC={part}" for part in self.dns_domain.split("."))
        self.domain_sid = "S-1-5-21-" + "-".join(str(secrets.randbelow(2**31)) for _ in range(3))
        self._guid = str(uuid.uuid4())
        self._policy = policy or PasswordPolicy()
        self._clock = clock
        self._salt = secrets.token_bytes(16)
        self._lock = threading.RLock()
        self._entries: dict[str, _Entry] = {}
        self._rids = itertools.count(1103)
        self._provision(admin_password)

    # ------------------------------------------------------------ provisioning
    def _provision(self, admin_password: str | None) -> None:
        for cn in ("Users", "Computers", "Builtin"):
            self._add(f"CN={cn},{self.domain_dn}", ["top", "container"], cn)
        self._add(f"OU=Domain Controllers,{self.domain_dn}", ["top", "organizationalUnit"], "Domain Controllers")
        for rid, (name, group_type) in DOMAIN_GROUPS.items():
            self._add_group(f"CN={name},CN=Users,{self.domain_dn}", name, f"{self.domain_sid}-{rid}", group_type)
        for sid, (name, group_type) in BUILTIN_GROUPS.items():
            self._add_group(f"CN={name},CN=Builtin,{self.domain_dn}", name, sid, group_type)
        admin = self._add_user("Administrator", rid=500, admin_count=1,
                               password=admin_password or secrets.token_urlsafe(18) + "-Aa1")
        self._add_user("Guest", rid=501, enabled=False)
        self._add_user("krbtgt", rid=502, enabled=False, admin_count=1)
        for group in ("Domain Admins", "Schema Admins", "Enterprise Admins",
                      "Group Policy Creator Owners", "Administrators"):
            self._find(group, "group").members.append(admin.dn)
        for group, members in (("Administrators", ("Domain Admins", "Enterprise Admins")),
                               ("Users", ("Domain Users",)), ("Guests", ("Domain Guests",))):
            self._find(group, "group").members += [self._find(m, "group").dn for m in members]

    def _add(self, dn: str, object_class: list[str], name: str, **attrs: Any) -> _Entry:
        entry = _Entry({"distinguishedName": dn, "name": name, "cn": name, "objectClass": object_class,
                        "objectGUID": str(uuid.uuid4()), "whenCreated": self._now().replace(microsecond=0),
                        **attrs})
        self._entries[normalize_dn(dn)] = entry
        return entry

    def _add_group(self, dn: str, name: str, sid: str, group_type: int) -> _Entry:
        return self._add(dn, ["top", "group"], name, sAMAccountName=name, objectSid=sid, groupType=group_type)

    def _add_user(self, sam: str, *, rid: int | None = None, parent_dn: str | None = None,
                  password: str | None = None, enabled: bool = True, admin_count: int | None = None,
                  given_name: str | None = None, surname: str | None = None,
                  display_name: str | None = None, password_never_expires: bool = False) -> _Entry:
        name = display_name or sam
        dn = f"CN={name},{parent_dn or 'CN=Users,' + self.domain_dn}"
        enabled = enabled and password is not None     # a DC enables no account without a password
        uac = NORMAL_ACCOUNT | (0 if enabled else ACCOUNTDISABLE) | (DONT_EXPIRE_PASSWORD if password_never_expires else 0)
        entry = self._add(
            dn, ["top", "person", "organizationalPerson", "user"], name,
            sAMAccountName=sam, userPrincipalName=f"{sam}@{self.dns_domain}",
            objectSid=f"{self.domain_sid}-{rid or next(self._rids)}", userAccountControl=uac,
            primaryGroupID=513, pwdLastSet=0, badPwdCount=0, badPasswordTime=0, lastLogon=0,
            logonCount=0, accountExpires=0x7FFFFFFFFFFFFFFF, givenName=given_name, sn=surname,
            displayName=display_name, adminCount=admin_count)
        if password is not None:
            self._store_password(entry, password)
        return entry

    # ------------------------------------------------------------ lookups
    def _now(self) -> datetime:
        return self._clock()

    def _find(self, identity: str, object_class: str = "user") -> _Entry:
        ident = classify(identity)
        for entry in self._entries.values():
            if object_class not in entry.attrs["objectClass"]:
                continue
            a = entry.attrs
            if ((ident.kind == DN and normalize_dn(a["distinguishedName"]) == normalize_dn(ident.value))
                    or (ident.kind == GUID and a["objectGUID"] == ident.value)
                    or (ident.kind == SID and a.get("objectSid", "").upper() == ident.value.upper())
                    or (ident.kind == SAM and (a.get("sAMAccountName") or "").lower() == ident.value.lower())):
                return entry
        raise IdentityNotFound(identity, self.domain_dn)

    def _groups_of(self, dn: str) -> list[_Entry]:
        key = normalize_dn(dn)
        return [e for e in self._entries.values()
                if "group" in e.attrs["objectClass"] and any(normalize_dn(m) == key for m in e.members)]

    def _primary_group(self, entry: _Entry) -> _Entry:
        return self._find(f"{self.domain_sid}-{entry.attrs['primaryGroupID']}", "group")

    def _hash(self, password: str) -> str:
        return hashlib.sha256(self._salt + password.encode("utf-16-le")).hexdigest()

    # ------------------------------------------------------------ the interface
    def _user_attributes(self, identity: str) -> dict[str, Any]:
        with self._lock:
            entry = self._find(identity)
            raw = {k: v for k, v in entry.attrs.items() if v is not None}
            raw["memberOf"] = sorted((g.dn for g in self._groups_of(entry.dn)), key=str.lower)
            raw["msDS-User-Account-Control-Computed"] = computed_user_account_control(raw, self._policy, self._now())
            raw["msDS-UserPasswordExpiryTimeComputed"] = password_expiry_time(raw, self._policy)
            return raw

    def _domain_guid(self) -> str:
        return self._guid

    def password_policy(self) -> PasswordPolicy:
        return self._policy

    def set_password_policy(self, policy: PasswordPolicy) -> None:
        with self._lock:
            self._policy = policy

    def unlock_account(self, identity: str) -> None:
        with self._lock:
            entry = self._find(identity)
            entry.attrs["lockoutTime"] = 0
            entry.attrs["badPwdCount"] = 0

    def set_account_password(self, identity: str, new_password: str, *,
                             old_password: str | None = None) -> None:
        with self._lock:
            entry = self._find(identity)
            a = entry.attrs
            if old_password is not None:
                if self._hash(old_password) != entry.password_hash:
                    raise InvalidOldPassword(target=identity)
                last_set = from_filetime(a.get("pwdLastSet"))
                if last_set and last_set + self._policy.min_password_age > self._now():
                    raise PasswordPolicyError(TOO_YOUNG, target=identity)
                new_hash = self._hash(new_password)
                if new_hash == entry.password_hash or new_hash in entry.history:
                    raise PasswordPolicyError(IN_HISTORY, target=identity)
            problem = password_problem(new_password, self._policy, sam_account_name=a["sAMAccountName"],
                                       display_name=a.get("displayName"))
            if problem:
                raise PasswordPolicyError(problem, target=identity)
            self._store_password(entry, new_password)

    def _store_password(self, entry: _Entry, password: str) -> None:
        entry.password_hash = self._hash(password)
        entry.history = [entry.password_hash, *entry.history][:self._policy.password_history_count]
        entry.attrs["pwdLastSet"] = to_filetime(self._now())

    def set_change_password_at_logon(self, identity: str, value: bool) -> None:
        with self._lock:
            self._find(identity).attrs["pwdLastSet"] = 0 if value else to_filetime(self._now())

    def set_enabled(self, identity: str, enabled: bool) -> None:
        with self._lock:
            a = self._find(identity).attrs
            a["userAccountControl"] = (a["userAccountControl"] & ~ACCOUNTDISABLE) | (0 if enabled else ACCOUNTDISABLE)

    def principal_group_membership(self, identity: str) -> list[ADObject]:
        with self._lock:
            entry = self._find(identity)
            groups = [*self._groups_of(entry.dn), self._primary_group(entry)]
            return [shape_group(g.attrs) for g in sorted(groups, key=lambda g: g.dn.lower())]

    def token_groups(self, identity: str) -> list[ADObject]:
        with self._lock:
            entry = self._find(identity)
            seen: dict[str, _Entry] = {}
            todo = [*self._groups_of(entry.dn), self._primary_group(entry)]
            while todo:
                group = todo.pop()
                if normalize_dn(group.dn) not in seen:
                    seen[normalize_dn(group.dn)] = group
                    todo += self._groups_of(group.dn)
            return [shape_group(g.attrs) for g in sorted(seen.values(), key=lambda g: g.dn.lower())]

    def authenticate(self, identity: str, password: str) -> BindResult:
        if not password:       # an empty simple bind is anonymous, never a sign-in
            return BindResult(False, "52e")
        with self._lock:
            try:
                entry = self._find(identity)
            except IdentityNotFound:
                return BindResult(False, "52e")
            a, policy, now = entry.attrs, self._policy, self._now()
            if lockout_in_force(int(a.get("lockoutTime") or 0), policy, now):
                return BindResult(False, "775")
            if entry.password_hash is None or self._hash(password) != entry.password_hash:
                self._count_bad_password(entry, password, now)
                return BindResult(False, "52e")
            if a["userAccountControl"] & ACCOUNTDISABLE:
                return BindResult(False, "533")
            if not a["userAccountControl"] & DONT_EXPIRE_PASSWORD:
                if not a.get("pwdLastSet"):
                    return BindResult(False, "773")
                if computed_user_account_control(a, policy, now) & UF_PASSWORD_EXPIRED:
                    return BindResult(False, "532")
            a["badPwdCount"] = 0
            if a.get("lockoutTime"):
                a["lockoutTime"] = 0
            stamp = from_filetime(a.get("lastLogonTimestamp"))
            if stamp is None or now - stamp >= LOGON_TIME_SYNC_INTERVAL:
                a["lastLogonTimestamp"] = to_filetime(now)
            return BindResult(True)

    def _count_bad_password(self, entry: _Entry, password: str, now: datetime) -> None:
        policy, a = self._policy, entry.attrs
        if not policy.lockout_threshold or self._hash(password) in entry.history[1:3]:
            return
        last_bad = from_filetime(a.get("badPasswordTime"))
        if last_bad is None or now - last_bad >= policy.lockout_observation_window:
            a["badPwdCount"] = 1
        else:
            a["badPwdCount"] = int(a.get("badPwdCount") or 0) + 1
        a["badPasswordTime"] = to_filetime(now)
        if a["badPwdCount"] >= policy.lockout_threshold:
            a["lockoutTime"] = to_filetime(now)

    # ------------------------------------------------------------ setting the scene
    def create_ou(self, name: str, parent_dn: str | None = None) -> str:
        with self._lock:
            return self._add(f"OU={name},{parent_dn or self.domain_dn}", ["top", "organizationalUnit"], name).dn

    def create_group(self, name: str, parent_dn: str | None = None) -> str:
        with self._lock:
            return self._add_group(f"CN={name},{parent_dn or 'CN=Users,' + self.domain_dn}", name,
                                   f"{self.domain_sid}-{next(self._rids)}", GLOBAL_SECURITY).dn

    def create_user(self, sam_account_name: str, password: str | None, *,
                    parent_dn: str | None = None, given_name: str | None = None,
                    surname: str | None = None, display_name: str | None = None,
                    enabled: bool = True, password_never_expires: bool = False,
                    admin_count: int | None = None) -> str:
        with self._lock:
            if password is not None:
                problem = password_problem(password, self._policy, sam_account_name=sam_account_name,
                                           display_name=display_name)
                if problem:
                    raise PasswordPolicyError(problem, target=sam_account_name)
            return self._add_user(sam_account_name, parent_dn=parent_dn, password=password,
                                  enabled=enabled, admin_count=admin_count, given_name=given_name,
                                  surname=surname, display_name=display_name,
                                  password_never_expires=password_never_expires).dn

    def add_group_member(self, group: str, member: str) -> None:
        with self._lock:
            target = self._find(group, "group")
            try:
                who = self._find(member)
            except IdentityNotFound:
                who = self._find(member, "group")
            if all(normalize_dn(m) != normalize_dn(who.dn) for m in target.members):
                target.members.append(who.dn)
