"""An Active Directory domain for the host simulator's AD cmdlet twins (Get-ADUser,
Unlock-ADAccount, Set-ADAccountPassword, Set-ADUser -ChangePasswordAtLogon,
Get-ADDefaultDomainPasswordPolicy, Get-ADPrincipalGroupMembership ...).

- `base.Directory`: the interface the twins call; `errors`: what they report.
- `memory.InMemoryDirectory`: the domain in memory (demo, machines without Samba).
- `ldap_directory.LdapDirectory`: the same on a real DC over LDAPS (ldap3).
- `samba_dc.SambaDC`: a throwaway Samba AD DC on its own loopback address.
- `kerberos`: service principals, keytabs and krb5.conf from that DC's KDC.
- `protection.protection_of`: is an account one a helpdesk must not touch?

See docs/directory.md. Importing this package loads neither ldap3 nor Samba."""

from .base import BindResult, Directory
from .errors import DirectoryError
from .memory import InMemoryDirectory
from .policy import PasswordPolicy

__all__ = ["BindResult", "Directory", "DirectoryError", "InMemoryDirectory", "PasswordPolicy"]
