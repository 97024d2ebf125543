"""Errors of the directory interface, each carrying what the ActiveDirectory module would report.

A cmdlet twin turns a `DirectoryError` into the PowerShell error record the real cmdlet writes:
message, exception type, category, and the FullyQualifiedErrorId, which the module builds as
`<error id>,Microsoft.ActiveDirectory.Management.Commands.<CmdletClass>` (use
`fully_qualified_error_id("Set-ADAccountPassword")`).

| error | exception type | category | error id (…Cmdlet: / …Server:) | when |
|---|---|---|---|---|
| IdentityNotFound | ADIdentityNotFoundException | ObjectNotFound | Cmdlet:…ADIdentityNotFoundException | no match |
| PasswordPolicyError | ADPasswordComplexityException | InvalidData | Server:1325 | LDAP 19, 0000052D |
| InvalidOldPassword | ADInvalidPasswordException | InvalidData | Server:86 | LDAP 19, 00000056 |
| InvalidProperty | System.ArgumentException | InvalidArgument | Cmdlet:System.ArgumentException | bad -Properties |
| AccessDenied | System.UnauthorizedAccessException | PermissionDenied | Cmdlet:System.UnauthorizedAccessException | LDAP 50 |
| DirectoryUnavailable | ADServerDownException | ResourceUnavailable | Server:0 | DC unreachable |

("Cmdlet:" stands for "ActiveDirectoryCmdlet:", "Server:" for "ActiveDirectoryServer:", "…" for
Microsoft.ActiveDirectory.Management.)

Sources: recorded sessions of the module (GitHub EvotecIT/PSWinDocumentation#4 for
ADIdentityNotFoundException; a recorded Set-ADAccountPassword session for error ids 1325 and
86 with "The specified network password is not correct"; zjorz/Public-AD-Scripts#5 for the
complexity message); categories from the module's ADUtilities.GetErrorCategory (password
exceptions -> InvalidData, identity not found -> ObjectNotFound, server down ->
ResourceUnavailable, UnauthorizedAccessException -> PermissionDenied). 1325 and 86 are the
Win32 codes ERROR_PASSWORD_RESTRICTION and ERROR_INVALID_PASSWORD behind 0000052D and 00000056."""

from __future__ import annotations

AD_NAMESPACE = "Microsoft.ActiveDirectory.Management"


class DirectoryError(Exception):
    """Base of the directory errors. `detail` holds the directory's own diagnostic (e.g. Samba's
    "check_password_restrictions: the password is too short ...") for logs; the AD module never
    shows it, so a twin must not either."""

    exception_type = f"{AD_NAMESPACE}.ADException"
    category = "NotSpecified"
    error_id = "ActiveDirectoryServer:0"

    def __init__(self, message: str, *, target: str | None = None, detail: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.target = target
        self.detail = detail

    def fully_qualified_error_id(self, cmdlet: str) -> str:
        """The FullyQualifiedErrorId the module writes for `cmdlet` (e.g. "Get-ADUser")."""
        return f"{self.error_id},{AD_NAMESPACE}.Commands.{cmdlet.replace('-', '')}"


class IdentityNotFound(DirectoryError):
    exception_type = f"{AD_NAMESPACE}.ADIdentityNotFoundException"
    category = "ObjectNotFound"
    error_id = f"ActiveDirectoryCmdlet:{AD_NAMESPACE}.ADIdentityNotFoundException"

    def __init__(self, identity: str, under: str) -> None:
        super().__init__(f"Cannot find an object with identity: '{identity}' under: '{under}'.",
                         target=identity)
        self.identity = identity
        self.under = under


# Why a password was refused. The AD module reports all of them with one message; the reason
# is what the directory said (Samba's diagnostic, or the in-memory rule that fired), so tests
# can prove both backends refuse for the same reason.
TOO_SHORT = "too-short"
NOT_COMPLEX = "not-complex"            # categories, or a part of the account or display name
IN_HISTORY = "in-history"
TOO_YOUNG = "too-young"                # minimum password age not reached
UNSPECIFIED = "unspecified"            # a DC that does not say why (Windows)


class PasswordPolicyError(DirectoryError):
    exception_type = f"{AD_NAMESPACE}.ADPasswordComplexityException"
    category = "InvalidData"
    error_id = "ActiveDirectoryServer:1325"

    def __init__(self, reason: str, *, target: str | None = None, detail: str = "") -> None:
        super().__init__("The password does not meet the length, complexity, or history "
                         "requirement of the domain.", target=target, detail=detail)
        self.reason = reason


class InvalidOldPassword(DirectoryError):
    exception_type = f"{AD_NAMESPACE}.ADInvalidPasswordException"
    category = "InvalidData"
    error_id = "ActiveDirectoryServer:86"

    def __init__(self, *, target: str | None = None, detail: str = "") -> None:
        super().__init__("The specified network password is not correct", target=target, detail=detail)


class InvalidProperty(DirectoryError):
    exception_type = "System.ArgumentException"
    category = "InvalidArgument"
    error_id = "ActiveDirectoryCmdlet:System.ArgumentException"

    def __init__(self, name: str) -> None:
        super().__init__(f"One or more properties are invalid.\nParameter name: {name}", target=name)


class AccessDenied(DirectoryError):
    exception_type = "System.UnauthorizedAccessException"
    category = "PermissionDenied"
    error_id = "ActiveDirectoryCmdlet:System.UnauthorizedAccessException"

    def __init__(self, *, target: str | None = None, detail: str = "") -> None:
        super().__init__("Access is denied", target=target, detail=detail)


class DirectoryUnavailable(DirectoryError):
    exception_type = f"{AD_NAMESPACE}.ADServerDownException"
    category = "ResourceUnavailable"
    error_id = "ActiveDirectoryServer:0"

    def __init__(self, *, detail: str = "") -> None:
        super().__init__("Unable to contact the server. This may be because this server does not "
                         "exist, it is currently down, or it does not have the Active Directory Web "
                         "Services running.", detail=detail)
