"""The domain password and lockout policy, and the rules a new password must pass.

`PasswordPolicy` is what Get-ADDefaultDomainPasswordPolicy shows, read from (and written to)
the domain object's attributes:

| property | domain attribute | default (Samba 4.17 provision = Windows default domain policy) |
|---|---|---|
| ComplexityEnabled | pwdProperties bit 0x1 (DOMAIN_PASSWORD_COMPLEX) | True |
| ReversibleEncryptionEnabled | pwdProperties bit 0x10 (DOMAIN_PASSWORD_STORE_CLEARTEXT) | False |
| MinPasswordLength | minPwdLength | 7 |
| PasswordHistoryCount | pwdHistoryLength | 24 |
| MinPasswordAge | minPwdAge (negative 100 ns ticks) | 1 day |
| MaxPasswordAge | maxPwdAge (0 or -2**63: never) | 42 days |
| LockoutThreshold | lockoutThreshold (0: never lock) | 0 |
| LockoutDuration | lockoutDuration (0: until an admin unlocks) | 30 min |
| LockoutObservationWindow | lockOutObservationWindow | 30 min |

Sources: Microsoft Learn "Pwd-Properties attribute" (bits), the Get-ADDefaultDomainPasswordPolicy
output (property names), and a freshly provisioned Samba 4.17 domain (defaults).

The length and complexity rules (`password_problem`) follow MS-SAMR 3.1.1.7.2 "Cleartext
Password Policy" and Microsoft Learn "Password must meet complexity requirements":
- length in UTF-16 code units, at least MinPasswordLength;
- with complexity on: characters from three of the categories upper case, lower case, digits
  0-9, the non-alphanumerics ``~!@#$%^&*_-+=`|\\(){}[]:;"'<>,.?/`` (space is none of them),
  and alphabetic characters that are neither upper nor lower case;
- with complexity on: not the sAMAccountName (if longer than two characters) as a
  case-insensitive substring, nor any token of the displayName of three or more characters,
  tokens split at commas, periods, dashes, underscores, spaces, pound signs and tabs.

Samba checks the length and the categories itself (lib/util/genrand_util.c
check_password_quality, which also counts any other non-ASCII character as a category) and
leaves the name rule to its `check password script`. The simulator's Samba DC runs this module
as that script (`python -m runner.sim.directory.policy`), so a real DC refuses exactly what
Windows refuses."""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from .adobject import ADObject
from .adtime import duration_to_ticks, ticks_to_duration
from .errors import NOT_COMPLEX, TOO_SHORT

DOMAIN_PASSWORD_COMPLEX = 0x1
DOMAIN_PASSWORD_STORE_CLEARTEXT = 0x10
NON_ALPHANUMERIC = set("~!@#$%^&*_-+=`|\\(){}[]:;\"'<>,.?/")
DISPLAY_NAME_DELIMITERS = re.compile(r"[,.\-_ #\t]")


@dataclass(frozen=True)
class PasswordPolicy:
    complexity_enabled: bool = True
    reversible_encryption_enabled: bool = False
    min_password_length: int = 7
    password_history_count: int = 24
    min_password_age: timedelta = timedelta(days=1)
    max_password_age: timedelta = timedelta(days=42)     # 0: passwords never expire
    lockout_threshold: int = 0                           # 0: accounts never lock
    lockout_duration: timedelta = timedelta(minutes=30)  # 0: locked until an admin unlocks
    lockout_observation_window: timedelta = timedelta(minutes=30)

    def with_changes(self, **changes: Any) -> PasswordPolicy:
        return replace(self, **changes)

    def to_domain_attributes(self) -> dict[str, int]:
        """The domain object's attribute values for this policy."""
        props = ((DOMAIN_PASSWORD_COMPLEX if self.complexity_enabled else 0)
                 | (DOMAIN_PASSWORD_STORE_CLEARTEXT if self.reversible_encryption_enabled else 0))
        return {
            "pwdProperties": props,
            "minPwdLength": self.min_password_length,
            "pwdHistoryLength": self.password_history_count,
            "minPwdAge": duration_to_ticks(self.min_password_age),
            "maxPwdAge": duration_to_ticks(self.max_password_age or None),
            "lockoutThreshold": self.lockout_threshold,
            "lockoutDuration": duration_to_ticks(self.lockout_duration or None),
            "lockOutObservationWindow": duration_to_ticks(self.lockout_observation_window),
        }

    @classmethod
    def from_domain_attributes(cls, attrs: dict[str, int]) -> PasswordPolicy:
        props = int(attrs.get("pwdProperties", 0))
        return cls(
            complexity_enabled=bool(props & DOMAIN_PASSWORD_COMPLEX),
            reversible_encryption_enabled=bool(props & DOMAIN_PASSWORD_STORE_CLEARTEXT),
            min_password_length=int(attrs.get("minPwdLength", 0)),
            password_history_count=int(attrs.get("pwdHistoryLength", 0)),
            min_password_age=ticks_to_duration(int(attrs.get("minPwdAge", 0))),
            max_password_age=ticks_to_duration(int(attrs.get("maxPwdAge", 0))),
            lockout_threshold=int(attrs.get("lockoutThreshold", 0)),
            lockout_duration=ticks_to_duration(int(attrs.get("lockoutDuration", 0))),
            lockout_observation_window=ticks_to_duration(int(attrs.get("lockOutObservationWindow", 0))),
        )

    def as_ad_object(self, domain_dn: str, object_guid: str) -> ADObject:
        """Shaped like Get-ADDefaultDomainPasswordPolicy's ADDefaultDomainPasswordPolicy."""
        return ADObject({
            "ComplexityEnabled": self.complexity_enabled,
            "DistinguishedName": domain_dn,
            "LockoutDuration": self.lockout_duration,
            "LockoutObservationWindow": self.lockout_observation_window,
            "LockoutThreshold": self.lockout_threshold,
            "MaxPasswordAge": self.max_password_age,
            "MinPasswordAge": self.min_password_age,
            "MinPasswordLength": self.min_password_length,
            "objectClass": ["domainDNS"],
            "objectGuid": object_guid,
            "PasswordHistoryCount": self.password_history_count,
            "ReversibleEncryptionEnabled": self.reversible_encryption_enabled,
        })


def utf16_length(password: str) -> int:
    return len(password.encode("utf-16-le")) // 2


def character_categories(password: str) -> int:
    """How many of the five MS-SAMR character categories `password` draws from."""
    upper = lower = digit = special = other_alpha = False
    for ch in password:
        if "0" <= ch <= "9":
            digit = True
        elif ch in NON_ALPHANUMERIC:
            special = True
        elif ch.isupper():
            upper = True
        elif ch.islower():
            lower = True
        elif ch.isalpha():
            other_alpha = True
    return sum((upper, lower, digit, special, other_alpha))


def name_part_in(password: str, sam_account_name: str, display_name: str | None) -> bool:
    """True when the password holds the account name or a displayName token (MS-SAMR)."""
    folded = password.casefold()
    if len(sam_account_name) > 2 and sam_account_name.casefold() in folded:
        return True
    for token in DISPLAY_NAME_DELIMITERS.split(display_name or ""):
        if len(token) >= 3 and token.casefold() in folded:
            return True
    return False


def complexity_problem(password: str, sam_account_name: str, display_name: str | None) -> str | None:
    if character_categories(password) < 3 or name_part_in(password, sam_account_name, display_name):
        return NOT_COMPLEX
    return None


def password_problem(password: str, policy: PasswordPolicy, *, sam_account_name: str,
                     display_name: str | None) -> str | None:
    """The reason (errors.TOO_SHORT / NOT_COMPLEX) a DC refuses `password`, or None."""
    if utf16_length(password) < policy.min_password_length:
        return TOO_SHORT
    if policy.complexity_enabled:
        return complexity_problem(password, sam_account_name, display_name)
    return None


def main() -> int:
    """Samba's `check password script`: the password on stdin, the account in the environment
    (SAMBA_CPS_ACCOUNT_NAME, SAMBA_CPS_FULL_NAME = displayName; smb.conf(5)); exit 0 accepts."""
    password = sys.stdin.read()
    problem = complexity_problem(password, os.environ.get("SAMBA_CPS_ACCOUNT_NAME", ""),
                                 os.environ.get("SAMBA_CPS_FULL_NAME"))
    return 1 if problem else 0


if __name__ == "__main__":
    sys.exit(main())
