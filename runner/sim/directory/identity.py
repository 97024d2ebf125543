"""How an -Identity value names an object, and the binary forms of SIDs and GUIDs.

The ActiveDirectory module resolves -Identity of Get-ADUser, Set-ADAccountPassword,
Unlock-ADAccount ... as one of: a distinguished name, a GUID (objectGUID), a security
identifier (objectSid) or a SAM account name (sAMAccountName); nothing else (a user principal
name or DOMAIN\\name is looked up as a sAMAccountName and so is not found). Source: Microsoft
Learn, Get-ADUser, parameter -Identity, and about_ActiveDirectory_Identity."""

from __future__ import annotations

import re
import struct
import uuid
from dataclasses import dataclass

DN = "distinguishedName"
GUID = "objectGUID"
SID = "objectSid"
SAM = "sAMAccountName"

_SID_TEXT = re.compile(r"^S-1-\d+(-\d+)+$", re.I)
_DN_TEXT = re.compile(r"^[A-Za-z][A-Za-z0-9-]*=.+", re.S)


@dataclass(frozen=True)
class Identity:
    kind: str         # DN, GUID, SID or SAM
    value: str        # normalised: DN as given, GUID lower-case, SID upper "S-", SAM as given
    text: str         # what the caller wrote, for the error message


def classify(text: str) -> Identity:
    """Which attribute an -Identity string names, in the module's order: DN, GUID, SID, SAM."""
    raw = text.strip()
    if _DN_TEXT.match(raw):      # "=" cannot occur in a sAMAccountName
        return Identity(DN, raw, text)
    try:
        return Identity(GUID, str(uuid.UUID(raw)), text)
    except ValueError:
        pass
    if _SID_TEXT.match(raw):
        return Identity(SID, "S" + raw[1:], text)
    return Identity(SAM, raw, text)


def normalize_dn(dn: str) -> str:
    """A DN compared the way a DC compares them: case-insensitively, ignoring spaces around the
    separators (escaped commas stay part of their value)."""
    parts = re.split(r"(?<!\\),", dn)
    out = []
    for part in parts:
        attr, _, value = part.partition("=")
        out.append(f"{attr.strip().lower()}={value.strip().lower()}")
    return ",".join(out)


def parent_dn(dn: str) -> str:
    return re.split(r"(?<!\\),", dn, maxsplit=1)[1].strip()


def sid_to_bytes(sid: str) -> bytes:
    """"S-1-5-21-..." as the binary objectSid (MS-DTYP 2.4.2.2)."""
    parts = sid.split("-")
    revision, authority, subs = int(parts[1]), int(parts[2]), [int(p) for p in parts[3:]]
    return (struct.pack("<BB", revision, len(subs)) + authority.to_bytes(6, "big")
            + b"".join(struct.pack("<I", s) for s in subs))


def sid_from_bytes(raw: bytes) -> str:
    revision, count = raw[0], raw[1]
    authority = int.from_bytes(raw[2:8], "big")
    subs = struct.unpack("<" + "I" * count, raw[8:8 + 4 * count])
    return "-".join(["S", str(revision), str(authority), *map(str, subs)])


def guid_to_bytes(guid: str) -> bytes:
    """A GUID string as the binary objectGUID (little-endian first three fields)."""
    return uuid.UUID(guid).bytes_le


def guid_from_bytes(raw: bytes) -> str:
    return str(uuid.UUID(bytes_le=raw))


def rid_of(sid: str) -> int:
    return int(sid.rsplit("-", 1)[1])
