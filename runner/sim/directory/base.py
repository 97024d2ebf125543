"""The directory interface the host simulator's Active Directory cmdlet twins call.

Two backends implement it: `LdapDirectory` (ldap3 over LDAPS to a real domain controller, in
tests a Samba 4 AD DC started by `SambaDC`) and `InMemoryDirectory` (for `psrunner demo` and
machines without Samba). One suite of behaviour tests runs against both, which is how the
in-memory one is held to what a real DC does.

| cmdlet | method |
|---|---|
| Get-ADUser -Identity X [-Properties ...] | `get_user(X, properties)` |
| Unlock-ADAccount -Identity X | `unlock_account(X)` |
| Set-ADAccountPassword -Identity X -Reset -NewPassword P | `set_account_password(X, P)` |
| Set-ADAccountPassword -Identity X -OldPassword O -NewPassword P | `set_account_password(X, P, old_password=O)` |
| Set-ADUser -Identity X -ChangePasswordAtLogon $true/$false | `set_change_password_at_logon(X, value)` |
| Get-ADDefaultDomainPasswordPolicy | `default_password_policy()` |
| Get-ADPrincipalGroupMembership -Identity X (and its count) | `principal_group_membership(X)` |
| Enable-ADAccount / Disable-ADAccount | `set_enabled(X, value)` |
| (is X protected? adminCount, privileged groups) | `protection.protection_of(directory, X)` |

Every method resolves -Identity like the module (DN, GUID, SID, sAMAccountName) and raises
the `errors` the module reports. `authenticate` is what a person at a workstation does: a
sign-in that counts a bad password towards lockout like a real one."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .accounts import shape_user
from .adobject import ADObject
from .policy import PasswordPolicy

# The "data" code of an AD bind failure (LDAP result 49, "AcceptSecurityContext error, data
# NNN"): Microsoft Learn "LDAP bind errors" / ldapwiki "Common Active Directory Bind Errors",
# each seen from Samba 4.17 over LDAPS.
BIND_REASONS = {
    "52e": "bad-password",        # wrong password, or no such account
    "775": "locked-out",
    "773": "must-change",         # pwdLastSet = 0
    "532": "expired",
    "533": "disabled",
}
BIND_FAILURE_TEXT = "80090308: LdapErr: DSID-0C0903A9, comment: AcceptSecurityContext error, data {}, v1db1"


@dataclass(frozen=True)
class BindResult:
    """The outcome of a sign-in: ok, or the DC's reason (BIND_REASONS) and message."""
    ok: bool
    data: str | None = None

    @property
    def reason(self) -> str | None:
        return BIND_REASONS.get(self.data or "")

    @property
    def message(self) -> str:
        return "" if self.ok else BIND_FAILURE_TEXT.format(self.data)


class Directory(ABC):
    """An Active Directory domain, as the ActiveDirectory module sees it."""

    domain_dn: str          # DC=contoso,DC=test
    dns_domain: str         # contoso.test
    netbios_domain: str     # CONTOSO

    # ------------------------------------------------------------ what the twins call
    def get_user(self, identity: str, properties: Iterable[str] = ()) -> ADObject:
        """Get-ADUser -Identity `identity` -Properties `properties`."""
        properties = list(properties)
        shape_user({}, properties)          # an unknown property fails before any lookup
        return shape_user(self._user_attributes(identity), properties)

    @abstractmethod
    def unlock_account(self, identity: str) -> None:
        """Unlock-ADAccount: lockoutTime = 0 (also clears badPwdCount). No error when not locked."""

    @abstractmethod
    def set_account_password(self, identity: str, new_password: str, *,
                             old_password: str | None = None) -> None:
        """Set-ADAccountPassword. Without `old_password` an administrative reset (unicodePwd
        replaced: length and complexity apply, history and minimum age do not); with it a
        change (old value removed, new added: every rule applies). A refused password changes
        nothing and raises PasswordPolicyError; a wrong old password InvalidOldPassword."""

    @abstractmethod
    def set_change_password_at_logon(self, identity: str, value: bool) -> None:
        """Set-ADUser -ChangePasswordAtLogon: pwdLastSet = 0 ($true) or -1, i.e. now ($false)."""

    @abstractmethod
    def password_policy(self) -> PasswordPolicy:
        """The domain's password and lockout policy."""

    def default_password_policy(self) -> ADObject:
        """Get-ADDefaultDomainPasswordPolicy."""
        return self.password_policy().as_ad_object(self.domain_dn, self._domain_guid())

    @abstractmethod
    def principal_group_membership(self, identity: str) -> list[ADObject]:
        """Get-ADPrincipalGroupMembership: the groups the account is directly a member of,
        its primary group (Domain Users) included, each shaped like an ADGroup."""

    @abstractmethod
    def token_groups(self, identity: str) -> list[ADObject]:
        """Every security group the account belongs to, directly or through other groups
        (the tokenGroups a DC computes), primary group included; shaped like ADGroups."""

    @abstractmethod
    def set_enabled(self, identity: str, enabled: bool) -> None:
        """Enable-ADAccount / Disable-ADAccount."""

    # ------------------------------------------------------------ a person signing in
    @abstractmethod
    def authenticate(self, identity: str, password: str) -> BindResult:
        """Sign in as the account (an LDAP simple bind on a real DC): a wrong password counts
        towards lockout, a right one resets the count."""

    # ------------------------------------------------------------ setting the scene
    @abstractmethod
    def set_password_policy(self, policy: PasswordPolicy) -> None:
        """Write the domain's password and lockout policy."""

    @abstractmethod
    def create_ou(self, name: str, parent_dn: str | None = None) -> str:
        """Create an organizational unit (under the domain by default); its DN."""

    @abstractmethod
    def create_group(self, name: str, parent_dn: str | None = None) -> str:
        """Create a global security group (in CN=Users by default); its DN."""

    @abstractmethod
    def create_user(self, sam_account_name: str, password: str | None, *,
                    parent_dn: str | None = None, given_name: str | None = None,
                    surname: str | None = None, display_name: str | None = None,
                    enabled: bool = True, password_never_expires: bool = False,
                    admin_count: int | None = None) -> str:
        """Create a user (in CN=Users by default) with userPrincipalName sam@dns_domain and,
        when given, a password (refused like a reset: nothing is created then); its DN.
        `admin_count` sets adminCount, as AD's SDProp does for members of protected groups."""

    @abstractmethod
    def add_group_member(self, group: str, member: str) -> None:
        """Add-ADGroupMember -Identity `group` -Members `member`."""

    # ------------------------------------------------------------ backend parts
    @abstractmethod
    def _user_attributes(self, identity: str) -> dict[str, Any]:
        """Every modelled attribute (accounts.USER_ATTRIBUTES) of the user `identity` names,
        computed ones included; IdentityNotFound when there is none."""

    @abstractmethod
    def _domain_guid(self) -> str:
        """objectGUID of the domain object."""
