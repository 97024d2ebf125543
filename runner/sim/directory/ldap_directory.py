"""`LdapDirectory`: the directory interface on a real domain controller, over LDAPS with ldap3.

In the tests the DC is a Samba 4 AD DC (`SambaDC`); any AD DC that allows LDAPS works the same
way. What the DC decides, this class only reports:

| operation | LDAP | on refusal |
|---|---|---|
| reset a password | modify unicodePwd: replace "\\"new\\"" (UTF-16LE) | 19 constraintViolation, 0000052D |
| change a password | modify unicodePwd: delete "\\"old\\"", add "\\"new\\"" | 19, 0000052D; wrong old: 19, 00000056 |
| unlock | modify lockoutTime: replace 0 | |
| must change at next logon | modify pwdLastSet: replace 0 (-1 = now, to clear it) | |
| sign in | simple bind as the account | 49 invalidCredentials, "data NNN" |

Sources: Microsoft Learn "Set a Windows Active Directory user password via LDAP" (unicodePwd
quoted, UTF-16LE, over an encrypted connection; replace = reset, delete+add = change),
"Pwd-Last-Set attribute" (only 0 and -1 may be written), "Lockout-Time attribute" (write 0 to
unlock); the refusals as Samba 4.17 returns them."""

from __future__ import annotations

import re
import ssl
import threading
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any, TypeVar

from .accounts import ACCOUNTDISABLE, DONT_EXPIRE_PASSWORD, NORMAL_ACCOUNT, USER_ATTRIBUTES
from .accounts import GUID as GUID_SYNTAX
from .accounts import INT, SID as SID_SYNTAX, TEXT, TEXTS, TIME
from .adobject import ADObject
from .base import BindResult, Directory
from .errors import (
    IN_HISTORY,
    NOT_COMPLEX,
    TOO_SHORT,
    TOO_YOUNG,
    UNSPECIFIED,
    AccessDenied,
    DirectoryError,
    DirectoryUnavailable,
    IdentityNotFound,
    InvalidOldPassword,
    PasswordPolicyError,
)
from .groups import GLOBAL_SECURITY, GROUP_ATTRIBUTES, shape_group
from .identity import (
    DN,
    GUID,
    SAM,
    SID,
    classify,
    guid_to_bytes,
    guid_from_bytes,
    sid_from_bytes,
    sid_to_bytes,
)
from .policy import PasswordPolicy

T = TypeVar("T")

USER_FILTER = "(&(objectCategory=person)(objectClass=user){})"
GROUP_FILTER = "(&(objectClass=group){})"
# Samba's diagnostic after "0000052D: Constraint violation - check_password_restrictions: "
SAMBA_REFUSALS = (("too short", TOO_SHORT), ("complexity", NOT_COMPLEX),
                  ("already used", IN_HISTORY), ("too young", TOO_YOUNG))
POLICY_ATTRIBUTES = ("pwdProperties", "minPwdLength", "pwdHistoryLength", "minPwdAge", "maxPwdAge",
                     "lockoutThreshold", "lockoutDuration", "lockOutObservationWindow")
_BIND_DATA = re.compile(r"data ([0-9a-f]+)", re.I)


def quoted_utf16(password: str) -> bytes:
    """unicodePwd's value: the password in double quotes, UTF-16LE."""
    return f'"{password}"'.encode("utf-16-le")


def _decode(syntax: str, values: list[bytes]) -> Any:
    if syntax == TEXTS:
        return [v.decode() for v in values]
    value = values[0]
    if syntax == INT:
        return int(value)
    if syntax == SID_SYNTAX:
        return sid_from_bytes(value)
    if syntax == GUID_SYNTAX:
        return guid_from_bytes(value)
    if syntax == TIME:
        return datetime.strptime(value.decode()[:14], "%Y%m%d%H%M%S").replace(tzinfo=timezone.utc)
    return value.decode()


def decode_attributes(raw: dict[str, list[bytes]], syntaxes: dict[str, str]) -> dict[str, Any]:
    """ldap3's raw values typed by `syntaxes` (attribute names matched case-insensitively)."""
    canonical = {name.lower(): name for name in syntaxes}
    out: dict[str, Any] = {}
    for name, values in raw.items():
        key = canonical.get(name.lower())
        if key and values:
            out[key] = _decode(syntaxes[key], values)
    return out


GROUP_SYNTAXES = {"distinguishedName": TEXT, "name": TEXT, "objectClass": TEXTS, "objectGUID": GUID_SYNTAX,
                  "objectSid": SID_SYNTAX, "sAMAccountName": TEXT, "groupType": INT}


class LdapDirectory(Directory):
    """An AD domain reached over LDAPS, acting as `bind_user` (an administrator)."""

    def __init__(self, host: str, *, dns_domain: str, bind_user: str, bind_password: str,
                 ca_file: str, tls_name: str | None = None, port: int = 636,
                 connect_timeout: float = 5.0, timeout: float = 15.0,
                 netbios_domain: str | None = None) -> None:
        self.host = host
        self.port = port
        self.dns_domain = dns_domain.lower()
        self.netbios_domain = netbios_domain or self.dns_domain.split(".")[0].upper()[:15]
        self.domain_dn = ",".join(f"DC={part}" for part in self.dns_domain.split("."))
        self._bind_user = bind_user
        self._bind_password = bind_password
        self._ca_file = ca_file
        self._tls_name = tls_name
        self._connect_timeout = connect_timeout
        self._timeout = timeout
        self._lock = threading.RLock()
        self._conn: Any = None

    # ------------------------------------------------------------ connections
    def _server(self) -> Any:
        from ldap3 import NONE, Server, Tls

        # The DC's certificate may name only its host name (Samba's own has no SAN), so the
        # name to check is given apart from the address to connect to.
        tls = Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=self._ca_file,
                  valid_names=[self._tls_name] if self._tls_name else None)
        return Server(self.host, port=self.port, use_ssl=True, tls=tls, get_info=NONE,
                      connect_timeout=self._connect_timeout)

    def _connect(self, user: str, password: str) -> Any:
        from ldap3 import SIMPLE, Connection
        from ldap3.core.exceptions import LDAPException

        # ldap3 packs the receive timeout into a struct timeval: whole seconds only
        conn = Connection(self._server(), user=user, password=password, authentication=SIMPLE,
                          receive_timeout=max(1, round(self._timeout)), raise_exceptions=False)
        try:
            conn.bind()
        except LDAPException as exc:
            raise DirectoryUnavailable(detail=str(exc)) from None
        return conn

    def _admin(self) -> Any:
        if self._conn is None or self._conn.closed:
            conn = self._connect(self._bind_user, self._bind_password)
            if not conn.bound:
                raise AccessDenied(detail=f"bind as {self._bind_user}: {conn.result.get('message')}")
            self._conn = conn
        return self._conn

    def _run(self, op: Callable[[Any], T]) -> T:
        """Run `op` on the admin connection; reconnect once if the DC dropped it (a restart)."""
        from ldap3.core.exceptions import LDAPCommunicationError

        with self._lock:
            for attempt in (1, 2):
                try:
                    return op(self._admin())
                except LDAPCommunicationError as exc:
                    self._conn = None
                    if attempt == 2:
                        raise DirectoryUnavailable(detail=str(exc)) from None
        raise AssertionError("unreachable")

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.unbind()
                self._conn = None

    @staticmethod
    def _check(conn: Any, target: str | None = None) -> None:
        """Map the last result to the module's errors."""
        result = conn.result
        code, message = result.get("result", 0), result.get("message") or ""
        if code == 0:
            return
        if code == 19 and message.startswith("0000052D"):
            reason = next((r for text, r in SAMBA_REFUSALS if text in message), UNSPECIFIED)
            raise PasswordPolicyError(reason, target=target, detail=message)
        if code == 19 and message.startswith("00000056"):
            raise InvalidOldPassword(target=target, detail=message)
        if code == 50:
            raise AccessDenied(target=target, detail=message)
        raise DirectoryError(f"{result.get('description')}: {message}", target=target, detail=message)

    # ------------------------------------------------------------ lookups
    def _filter_for(self, identity: str, template: str) -> tuple[str, str, str]:
        """(search base, scope, filter) for an -Identity value."""
        from ldap3.utils.conv import escape_bytes, escape_filter_chars

        ident = classify(identity)
        if ident.kind == DN:
            return ident.value, "BASE", template.format("")
        clause = {
            GUID: lambda: f"(objectGUID={escape_bytes(guid_to_bytes(ident.value))})",
            SID: lambda: f"(objectSid={escape_bytes(sid_to_bytes(ident.value))})",
            SAM: lambda: f"(sAMAccountName={escape_filter_chars(ident.value)})",
        }[ident.kind]()
        return self.domain_dn, "SUBTREE", template.format(clause)

    def _search_one(self, identity: str, template: str, attributes: list[str]) -> dict[str, list[bytes]]:
        base, scope, flt = self._filter_for(identity, template)

        def op(conn: Any) -> list[dict[str, Any]]:
            conn.search(base, flt, search_scope=scope, attributes=attributes)
            if conn.result.get("result") not in (0, 32):     # 32: noSuchObject (a DN not there)
                self._check(conn, identity)
            return [e for e in conn.response or [] if e.get("type") == "searchResEntry"]

        entries = self._run(op)
        if len(entries) != 1:
            if entries:
                raise DirectoryError(f"More than one object matches identity: '{identity}'.", target=identity)
            raise IdentityNotFound(identity, self.domain_dn)
        entry = entries[0]
        return {**entry["raw_attributes"], "distinguishedName": [entry["dn"].encode()]}

    def _user_dn(self, identity: str) -> str:
        return self._search_one(identity, USER_FILTER, ["distinguishedName"])["distinguishedName"][0].decode()

    def _user_attributes(self, identity: str) -> dict[str, Any]:
        raw = self._search_one(identity, USER_FILTER, list(USER_ATTRIBUTES))
        attrs = decode_attributes(raw, USER_ATTRIBUTES)
        attrs["memberOf"] = sorted(attrs.get("memberOf", []), key=str.lower)
        return attrs

    def _domain_attributes(self, attributes: list[str]) -> dict[str, list[bytes]]:
        def op(conn: Any) -> dict[str, list[bytes]]:
            conn.search(self.domain_dn, "(objectClass=domain)", search_scope="BASE", attributes=attributes)
            self._check(conn)
            return conn.response[0]["raw_attributes"]
        return self._run(op)

    def _domain_guid(self) -> str:
        return guid_from_bytes(self._domain_attributes(["objectGUID"])["objectGUID"][0])

    def _groups(self, flt: str) -> list[ADObject]:
        def op(conn: Any) -> list[dict[str, Any]]:
            conn.search(self.domain_dn, flt, attributes=list(GROUP_ATTRIBUTES))
            self._check(conn)
            return [e for e in conn.response if e.get("type") == "searchResEntry"]
        groups = [shape_group(decode_attributes({**e["raw_attributes"], "distinguishedName": [e["dn"].encode()]},
                                                GROUP_SYNTAXES)) for e in self._run(op)]
        return sorted(groups, key=lambda g: g["DistinguishedName"].lower())

    @staticmethod
    def _any_sid(sids: list[str]) -> str:
        from ldap3.utils.conv import escape_bytes
        return "(|" + "".join(f"(objectSid={escape_bytes(sid_to_bytes(s))})" for s in sids) + ")"

    # ------------------------------------------------------------ the interface
    def password_policy(self) -> PasswordPolicy:
        raw = self._domain_attributes(list(POLICY_ATTRIBUTES))
        return PasswordPolicy.from_domain_attributes({k: int(v[0]) for k, v in raw.items() if v})

    def set_password_policy(self, policy: PasswordPolicy) -> None:
        from ldap3 import MODIFY_REPLACE

        changes = {k: [(MODIFY_REPLACE, [str(v)])] for k, v in policy.to_domain_attributes().items()}
        self._run(lambda conn: (conn.modify(self.domain_dn, changes), self._check(conn)))

    def _modify(self, identity: str, changes: dict[str, Any]) -> None:
        dn = self._user_dn(identity)
        self._run(lambda conn: (conn.modify(dn, changes), self._check(conn, identity)))

    def unlock_account(self, identity: str) -> None:
        from ldap3 import MODIFY_REPLACE
        self._modify(identity, {"lockoutTime": [(MODIFY_REPLACE, ["0"])]})

    def set_account_password(self, identity: str, new_password: str, *,
                             old_password: str | None = None) -> None:
        from ldap3 import MODIFY_ADD, MODIFY_DELETE, MODIFY_REPLACE

        if old_password is None:
            change = [(MODIFY_REPLACE, [quoted_utf16(new_password)])]
        else:
            change = [(MODIFY_DELETE, [quoted_utf16(old_password)]), (MODIFY_ADD, [quoted_utf16(new_password)])]
        self._modify(identity, {"unicodePwd": change})

    def set_change_password_at_logon(self, identity: str, value: bool) -> None:
        from ldap3 import MODIFY_REPLACE
        self._modify(identity, {"pwdLastSet": [(MODIFY_REPLACE, ["0" if value else "-1"])]})

    def set_enabled(self, identity: str, enabled: bool) -> None:
        from ldap3 import MODIFY_REPLACE

        uac = self._user_attributes(identity)["userAccountControl"]
        uac = (uac & ~ACCOUNTDISABLE) | (0 if enabled else ACCOUNTDISABLE)
        self._modify(identity, {"userAccountControl": [(MODIFY_REPLACE, [str(uac)])]})

    def _domain_sid_of(self, user_sid: str) -> str:
        return user_sid.rsplit("-", 1)[0]

    def principal_group_membership(self, identity: str) -> list[ADObject]:
        from ldap3.utils.conv import escape_filter_chars

        attrs = self._user_attributes(identity)
        primary = f"{self._domain_sid_of(attrs['objectSid'])}-{attrs['primaryGroupID']}"
        flt = GROUP_FILTER.format(f"(|(member={escape_filter_chars(attrs['distinguishedName'])})"
                                  f"{self._any_sid([primary])})")
        return self._groups(flt)

    def token_groups(self, identity: str) -> list[ADObject]:
        dn = self._user_dn(identity)

        def op(conn: Any) -> list[bytes]:
            conn.search(dn, "(objectClass=*)", search_scope="BASE", attributes=["tokenGroups"])
            self._check(conn, identity)
            return conn.response[0]["raw_attributes"].get("tokenGroups", [])
        sids = [sid_from_bytes(v) for v in self._run(op)]
        return self._groups(GROUP_FILTER.format(self._any_sid(sids))) if sids else []

    def authenticate(self, identity: str, password: str) -> BindResult:
        if not password:       # an empty simple bind is anonymous, never a sign-in
            return BindResult(False, "52e")
        try:
            dn = self._user_dn(identity)
        except IdentityNotFound:
            return BindResult(False, "52e")
        conn = self._connect(dn, password)
        try:
            if conn.bound:
                return BindResult(True)
            match = _BIND_DATA.search(conn.result.get("message") or "")
            return BindResult(False, match.group(1).lower() if match else "52e")
        finally:
            conn.unbind()

    # ------------------------------------------------------------ setting the scene
    def add_entry(self, dn: str, object_class: list[str], attributes: dict[str, Any], *,
                  target: str | None = None) -> str:
        """Add any object (e.g. a computer account for Kerberos); its DN."""
        self._run(lambda conn: (conn.add(dn, object_class, attributes), self._check(conn, target)))
        return dn

    def create_ou(self, name: str, parent_dn: str | None = None) -> str:
        return self.add_entry(f"OU={name},{parent_dn or self.domain_dn}", ["top", "organizationalUnit"], {},
                              target=name)

    def create_group(self, name: str, parent_dn: str | None = None) -> str:
        return self.add_entry(f"CN={name},{parent_dn or 'CN=Users,' + self.domain_dn}", ["top", "group"],
                              {"sAMAccountName": name, "groupType": str(GLOBAL_SECURITY)}, target=name)

    def create_user(self, sam_account_name: str, password: str | None, *,
                    parent_dn: str | None = None, given_name: str | None = None,
                    surname: str | None = None, display_name: str | None = None,
                    enabled: bool = True, password_never_expires: bool = False,
                    admin_count: int | None = None) -> str:
        enabled = enabled and password is not None
        uac = NORMAL_ACCOUNT | (0 if enabled else ACCOUNTDISABLE) | (DONT_EXPIRE_PASSWORD if password_never_expires else 0)
        attributes: dict[str, Any] = {
            "sAMAccountName": sam_account_name,
            "userPrincipalName": f"{sam_account_name}@{self.dns_domain}",
            "userAccountControl": str(uac),
        }
        optional = {"givenName": given_name, "sn": surname, "displayName": display_name,
                    "adminCount": None if admin_count is None else str(admin_count)}
        attributes.update({k: v for k, v in optional.items() if v is not None})
        if password is not None:
            attributes["unicodePwd"] = quoted_utf16(password)
        dn = f"CN={display_name or sam_account_name},{parent_dn or 'CN=Users,' + self.domain_dn}"
        return self.add_entry(dn, ["top", "person", "organizationalPerson", "user"], attributes,
                              target=sam_account_name)

    def add_group_member(self, group: str, member: str) -> None:
        from ldap3 import MODIFY_ADD

        group_dn = self._search_one(group, GROUP_FILTER, ["distinguishedName"])["distinguishedName"][0].decode()
        try:
            member_dn = self._user_dn(member)
        except IdentityNotFound:
            member_dn = self._search_one(member, GROUP_FILTER, ["distinguishedName"])["distinguishedName"][0].decode()

        def op(conn: Any) -> None:
            conn.modify(group_dn, {"member": [(MODIFY_ADD, [member_dn])]})
            # already a member: 20 attributeOrValueExists (Windows) or 68 entryAlreadyExists (Samba);
            # Add-ADGroupMember treats both as done
            if conn.result.get("result") not in (20, 68):
                self._check(conn, group)
        self._run(op)
