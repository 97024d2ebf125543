"""Which accounts a helpdesk must not touch: protected accounts and members of privileged groups.

An account is protected when its adminCount is 1 (AD's SDProp marks members of protected
groups so; Samba does not run SDProp, so membership is checked too), when it is the built-in
Administrator or krbtgt, or when it belongs, directly or through nested groups, to one of the
protected groups. Groups are matched by well-known SID, so a renamed group still counts.

Source: Microsoft Learn, "Appendix C: Protected Accounts and Groups in Active Directory"
(Windows Server 2016 and later), and MS-DTYP 2.4.2.4 "Well-Known SID Structures"."""

from __future__ import annotations

from dataclasses import dataclass

from .base import Directory
from .identity import rid_of

# Well-known domain-relative RIDs of protected groups and accounts.
PROTECTED_DOMAIN_GROUP_RIDS = {
    512: "Domain Admins",
    516: "Domain Controllers",
    518: "Schema Admins",
    519: "Enterprise Admins",
    521: "Read-only Domain Controllers",
    526: "Key Admins",
    527: "Enterprise Key Admins",
}
PROTECTED_ACCOUNT_RIDS = {500: "Administrator", 502: "krbtgt"}
# Builtin (S-1-5-32-*) protected groups.
PROTECTED_BUILTIN_SIDS = {
    "S-1-5-32-544": "Administrators",
    "S-1-5-32-548": "Account Operators",
    "S-1-5-32-549": "Server Operators",
    "S-1-5-32-550": "Print Operators",
    "S-1-5-32-551": "Backup Operators",
    "S-1-5-32-552": "Replicator",
}


@dataclass(frozen=True)
class Protection:
    protected: bool
    reasons: tuple[str, ...]      # plain words: "adminCount is 1", "member of Domain Admins"


def protected_group_name(sid: str, domain_sid: str) -> str | None:
    """The protected group a SID names, or None."""
    if sid in PROTECTED_BUILTIN_SIDS:
        return PROTECTED_BUILTIN_SIDS[sid]
    if sid.rsplit("-", 1)[0] == domain_sid:
        return PROTECTED_DOMAIN_GROUP_RIDS.get(rid_of(sid))
    return None


def protection_of(directory: Directory, identity: str) -> Protection:
    """Why `identity` is protected, if it is. Raises IdentityNotFound like Get-ADUser."""
    user = directory.get_user(identity, ["adminCount"])
    sid = user["SID"]
    domain_sid = sid.rsplit("-", 1)[0]
    reasons: list[str] = []
    if user["adminCount"] == 1:
        reasons.append("adminCount is 1")
    if rid_of(sid) in PROTECTED_ACCOUNT_RIDS and sid.startswith("S-1-5-21-"):
        reasons.append(f"it is the built-in {PROTECTED_ACCOUNT_RIDS[rid_of(sid)]} account")
    for group in directory.token_groups(identity):
        canonical = protected_group_name(group["SID"], domain_sid)
        if canonical:
            name = group["Name"]
            reasons.append(f"member of {name}" if name == canonical else f"member of {name} ({canonical})")
    return Protection(bool(reasons), tuple(reasons))
