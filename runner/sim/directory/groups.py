"""The groups every domain has, and groups as Get-ADGroup / Get-ADPrincipalGroupMembership show them.

Names, RIDs and scopes of a freshly provisioned Samba 4.17 domain, which match Windows'
(Microsoft Learn, "Active Directory security groups"); groupType bits from Microsoft Learn
"Group-Type attribute": 0x1 created by the system (builtin), 0x2 global, 0x4 domain local,
0x8 universal, 0x80000000 security."""

from __future__ import annotations

from typing import Any

from .adobject import ADObject

SECURITY = 0x80000000
BUILTIN = 0x1
GLOBAL, DOMAIN_LOCAL, UNIVERSAL = 0x2, 0x4, 0x8


def _signed(value: int) -> int:
    """groupType as AD stores it: a signed 32-bit integer."""
    return value - 2**32 if value >= 2**31 else value


GLOBAL_SECURITY = _signed(SECURITY | GLOBAL)
UNIVERSAL_SECURITY = _signed(SECURITY | UNIVERSAL)
DOMAIN_LOCAL_SECURITY = _signed(SECURITY | DOMAIN_LOCAL)
BUILTIN_LOCAL_SECURITY = _signed(SECURITY | DOMAIN_LOCAL | BUILTIN)

# RID -> (name, groupType), in CN=Users
DOMAIN_GROUPS: dict[int, tuple[str, int]] = {
    512: ("Domain Admins", GLOBAL_SECURITY),
    513: ("Domain Users", GLOBAL_SECURITY),
    514: ("Domain Guests", GLOBAL_SECURITY),
    515: ("Domain Computers", GLOBAL_SECURITY),
    516: ("Domain Controllers", GLOBAL_SECURITY),
    517: ("Cert Publishers", DOMAIN_LOCAL_SECURITY),
    518: ("Schema Admins", UNIVERSAL_SECURITY),
    519: ("Enterprise Admins", UNIVERSAL_SECURITY),
    520: ("Group Policy Creator Owners", GLOBAL_SECURITY),
    521: ("Read-only Domain Controllers", GLOBAL_SECURITY),
    525: ("Protected Users", GLOBAL_SECURITY),
    526: ("Key Admins", GLOBAL_SECURITY),
    527: ("Enterprise Key Admins", UNIVERSAL_SECURITY),
}
# SID -> (name, groupType), in CN=Builtin
BUILTIN_GROUPS: dict[str, tuple[str, int]] = {
    "S-1-5-32-544": ("Administrators", BUILTIN_LOCAL_SECURITY),
    "S-1-5-32-545": ("Users", BUILTIN_LOCAL_SECURITY),
    "S-1-5-32-546": ("Guests", BUILTIN_LOCAL_SECURITY),
    "S-1-5-32-548": ("Account Operators", BUILTIN_LOCAL_SECURITY),
    "S-1-5-32-549": ("Server Operators", BUILTIN_LOCAL_SECURITY),
    "S-1-5-32-550": ("Print Operators", BUILTIN_LOCAL_SECURITY),
    "S-1-5-32-551": ("Backup Operators", BUILTIN_LOCAL_SECURITY),
    "S-1-5-32-552": ("Replicator", BUILTIN_LOCAL_SECURITY),
}

GROUP_ATTRIBUTES = ("distinguishedName", "name", "objectClass", "objectGUID", "objectSid",
                    "sAMAccountName", "groupType")


def shape_group(raw: dict[str, Any]) -> ADObject:
    """An ADGroup's default properties from the group's attributes."""
    group_type = int(raw.get("groupType") or 0) & 0xFFFFFFFF
    scope = ("DomainLocal" if group_type & DOMAIN_LOCAL else
             "Universal" if group_type & UNIVERSAL else "Global")
    return ADObject({
        "DistinguishedName": raw["distinguishedName"],
        "GroupCategory": "Security" if group_type & SECURITY else "Distribution",
        "GroupScope": scope,
        "Name": raw.get("name"),
        "ObjectClass": (raw.get("objectClass") or ["group"])[-1],
        "ObjectGUID": raw.get("objectGUID"),
        "SamAccountName": raw.get("sAMAccountName"),
        "SID": raw.get("objectSid"),
    })
