"""Application permissions: the catalog shipped with the package (data/permissions.csv), the
named profiles built from it, and their resolution to app role ids.

Names are what people and vendor documents use ("Microsoft Graph: Mail.ReadWrite"); ids are
what Graph wants. At run time the ids come from each resource service principal's `appRoles`
(`GET /servicePrincipals(appId='...')?$select=id,appId,displayName,appRoles`), because the
resource owns them; the CSV ids are the fallback for a plan made without signing in, and the
oracle tests compare against. When the two disagree, the runtime id wins and a warning says so.

Profile `m365-backup` is the seed document's table, row for row (46 rows). Its first row,
"Azure Active Directory Graph: Calendars.ReadWrite", names a retired API that never had that
role; it maps to Microsoft Graph Calendars.ReadWrite (the role the backup product needs), with
a warning."""

from __future__ import annotations

import csv
import functools
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any
from urllib.parse import quote

from ..errors import InputError

GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
SHAREPOINT_APP_ID = "00000003-0000-0ff1-ce00-000000000000"
EXCHANGE_APP_ID = "00000002-0000-0ff1-ce00-000000000000"
AAD_GRAPH_APP_ID = "00000002-0000-0000-c000-000000000000"   # fully retired 2025-07-01 (Microsoft Entra Blog)

RESOURCE_NAMES = {
    GRAPH_APP_ID: "Microsoft Graph",
    SHAREPOINT_APP_ID: "Office 365 SharePoint Online",
    EXCHANGE_APP_ID: "Office 365 Exchange Online",
}

# How documents name the resources -> resource appId.
_RESOURCE_ALIASES = {
    "microsoft graph": GRAPH_APP_ID,
    "graph": GRAPH_APP_ID,
    "office 365 sharepoint online": SHAREPOINT_APP_ID,
    "sharepoint online": SHAREPOINT_APP_ID,
    "sharepoint": SHAREPOINT_APP_ID,
    "office 365 exchange online": EXCHANGE_APP_ID,
    "exchange online": EXCHANGE_APP_ID,
    "exchange": EXCHANGE_APP_ID,
}
# Retired resources: the name maps to a successor, with the warning to show.
_RETIRED = {
    "azure active directory graph": (
        GRAPH_APP_ID,
        "Azure Active Directory Graph has been fully retired since 2025-07-01 and never had an application role "
        "{perm}; requesting Microsoft Graph {perm} instead"),
    "azure ad graph": (
        GRAPH_APP_ID,
        "Azure AD Graph has been fully retired since 2025-07-01; requesting Microsoft Graph {perm} instead"),
}

# The seed document's table, in its order and wording ("API: permission"), all Application.
M365_BACKUP = (
    "Azure Active Directory Graph: Calendars.ReadWrite",
    *(f"Microsoft Graph: {p}" for p in (
        "Channel.Create", "Channel.ReadBasic.All", "ChannelMember.Read.All",
        "ChannelMember.ReadWrite.All", "ChannelMessage.Read.All", "Chat.Create", "Chat.Read.All",
        "Chat.ReadBasic.All", "Chat.ReadWrite.All", "ChatMember.Read.All", "ChatMember.ReadWrite.All",
        "Contacts.ReadWrite", "Directory.ReadWrite.All", "Files.ReadWrite.All", "Group.Create",
        "Group.ReadWrite.All", "GroupMember.Read.All", "GroupMember.ReadWrite.All", "Mail.ReadWrite",
        "MailboxSettings.Read", "MailboxSettings.ReadWrite", "Member.Read.Hidden",
        "Sites.FullControl.All", "Sites.Manage.All", "Sites.Read.All", "Sites.ReadWrite.All",
        "Team.Create", "Team.ReadBasic.All", "TeamMember.Read.All", "TeamMember.ReadWrite.All",
        "TeamMember.ReadWriteNonOwnerRole.All", "TeamSettings.ReadWrite.All", "TeamsTab.Create",
        "TeamsTab.ReadWrite.All", "TeamsTab.ReadWriteForChat.All", "TeamsTab.ReadWriteForTeam.All",
        "TeamsTab.ReadWriteForUser.All", "User.Read.All", "User.ReadWrite.All")),
    "Office 365 Exchange Online: full_access_as_app",
    *(f"SharePoint: {p}" for p in (
        "Sites.FullControl.All", "Sites.Manage.All", "Sites.Read.All", "Sites.ReadWrite.All",
        "User.ReadWrite.All")),
)

PROFILES: dict[str, tuple[str, ...]] = {
    "m365-backup": M365_BACKUP,
    "none": (),
}


@dataclass(frozen=True)
class CatalogEntry:
    resource: str
    resource_app_id: str
    permission: str
    type: str
    app_role_id: str
    source: str


@functools.lru_cache(maxsize=1)
def catalog() -> tuple[CatalogEntry, ...]:
    text = resources.files("runner").joinpath("data/permissions.csv").read_text(encoding="utf-8")
    rows = csv.DictReader(io.StringIO(text))
    return tuple(CatalogEntry(r["resource"], r["resource_app_id"], r["permission"], r["type"],
                              r["app_role_id"], r["source"]) for r in rows)


def catalog_id(resource_app_id: str, permission: str) -> str | None:
    for e in catalog():
        if e.resource_app_id == resource_app_id and e.permission == permission:
            return e.app_role_id
    return None


@dataclass(frozen=True)
class Wanted:
    """One application permission to request, as named (resolved to an id later)."""
    resource_app_id: str
    permission: str
    requested_as: str                     # the line as given ("SharePoint: Sites.Read.All")

    @property
    def resource(self) -> str:
        return RESOURCE_NAMES.get(self.resource_app_id, self.resource_app_id)

    @property
    def label(self) -> str:
        return f"{self.resource}: {self.permission}"


def parse_line(line: str, *, input_name: str = "permissions") -> tuple[Wanted, str | None]:
    """"API: Permission" (or "<resource appId>: Permission") -> (Wanted, warning or None)."""
    if not isinstance(line, str) or ":" not in line:
        raise InputError(f"{input_name}: {line!r} is not of the form 'API: Permission'", input=input_name,
                         hint="e.g. 'Microsoft Graph: User.Read.All' or 'SharePoint: Sites.FullControl.All'")
    api, _, perm = line.rpartition(":")
    api, perm = api.strip(), perm.strip()
    key = api.lower()
    warning = None
    if key in _RETIRED:
        app_id, template = _RETIRED[key]
        warning = template.format(perm=perm)
    elif key in _RESOURCE_ALIASES:
        app_id = _RESOURCE_ALIASES[key]
    elif key in RESOURCE_NAMES:
        app_id = key
    else:
        raise InputError(f"{input_name}: unknown API {api!r} in {line!r}", input=input_name,
                         hint="use one of: " + ", ".join(sorted(set(RESOURCE_NAMES.values()))))
    if not perm:
        raise InputError(f"{input_name}: no permission name in {line!r}", input=input_name)
    return Wanted(app_id, perm, line), warning


def wanted_for(profile: str | None = None, extra: Iterable[str] | None = None, *,
               require_known: bool = True) -> tuple[list[Wanted], list[str]]:
    """The permissions of a profile plus extra lines, de-duplicated, in order; and warnings.

    `require_known`: an unknown permission name is an InputError here (checked against the
    catalog). Names outside the catalog can still be requested through `extra` when this is
    False; they are then checked against the resource's appRoles at run time."""
    if profile is not None and profile not in PROFILES:
        raise InputError(f"profile: unknown profile {profile!r}", input="profile",
                         hint="use one of: " + ", ".join(PROFILES))
    lines: list[tuple[str, str]] = [(ln, "profile") for ln in PROFILES.get(profile or "none", ())]
    if extra is not None and not isinstance(extra, (list, tuple)):
        raise InputError("permissions: must be a list of 'API: Permission' strings", input="permissions")
    lines += [(ln, "permissions") for ln in (extra or [])]
    out: list[Wanted] = []
    seen: set[tuple[str, str]] = set()
    warnings: list[str] = []
    for line, source in lines:
        w, warning = parse_line(line, input_name=source)
        if require_known and catalog_id(w.resource_app_id, w.permission) is None:
            raise InputError(f"{source}: unknown permission {w.permission!r} for {w.resource}"
                             f" (from {line!r})", input=source,
                             hint=_did_you_mean(w.resource_app_id, w.permission))
        if warning:
            warnings.append(warning)
        key = (w.resource_app_id, w.permission)
        if key in seen:
            continue
        seen.add(key)
        out.append(w)
    return out, warnings


def _did_you_mean(app_id: str, perm: str) -> str:
    names = [e.permission for e in catalog() if e.resource_app_id == app_id]
    close = [n for n in names if n.lower() == perm.lower()]
    if close:
        return f"did you mean {close[0]!r}? (names are case-sensitive)"
    return "known names: " + ", ".join(names[:12]) + (" …" if len(names) > 12 else "")


# --------------------------------------------------------------------------- resolution

SP_SELECT = "id,appId,displayName,appRoles"


def by_api(pairs: Iterable[tuple[str, str]]) -> list[tuple[str, list[str]]]:
    """(API, its permissions) from (API, permission) pairs, APIs in the order they first
    appear: how a plan lists what it would grant, add or remove."""
    grouped: dict[str, list[str]] = {}
    for api, permission in pairs:
        grouped.setdefault(api, []).append(permission)
    return list(grouped.items())


def resource_sp_path(app_id: str) -> str:
    return f"/servicePrincipals(appId='{quote(app_id, safe='')}')?$select={SP_SELECT}"


@dataclass(frozen=True)
class Resolved:
    resource: str
    resource_app_id: str
    permission: str
    id: str | None                       # app role id (None: cannot be resolved)
    resource_sp_id: str | None           # None: the resource has no service principal here
    source: str                          # "runtime" | "catalog"

    @property
    def label(self) -> str:
        return f"{self.resource}: {self.permission}"


@dataclass
class Resolution:
    items: list[Resolved] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # (resource appId, app role id) -> name, from the resources' appRoles: names permissions
    # found on an application that the profile does not list.
    role_names: dict[tuple[str, str], str] = field(default_factory=dict)

    def required_resource_access(self) -> list[dict[str, Any]]:
        """requiredResourceAccess entries, one per resource, in first-seen order."""
        out: dict[str, list[dict[str, str]]] = {}
        for r in self.items:
            if r.id:
                out.setdefault(r.resource_app_id, []).append({"id": r.id, "type": "Role"})
        return [{"resourceAppId": k, "resourceAccess": v} for k, v in out.items()]

    def label_of(self, resource_app_id: str, role_id: str) -> str:
        for r in self.items:
            if r.resource_app_id == resource_app_id and r.id == role_id:
                return r.label
        name = RESOURCE_NAMES.get(resource_app_id, resource_app_id)
        known = self.role_names.get((resource_app_id.lower(), role_id.lower()))
        if known:
            return f"{name}: {known}"
        cid = next((e.permission for e in catalog()
                    if e.resource_app_id == resource_app_id.lower() and e.app_role_id == role_id.lower()), None)
        return f"{name}: {cid or role_id}"


def resolve_permissions(wanted: Sequence[Wanted], resource_sps: Mapping[str, dict[str, Any] | None] | None
            ) -> Resolution:
    """Ids for `wanted`. `resource_sps` maps resource appId -> its service principal (with
    appRoles) or None when the tenant has none; None as a whole means offline (catalog ids)."""
    res = Resolution()
    for app_id, sp in (resource_sps or {}).items():
        for role in (sp or {}).get("appRoles") or []:
            if role.get("id") and role.get("value"):
                res.role_names[(app_id.lower(), str(role["id"]).lower())] = str(role["value"])
    missing_sp_warned: set[str] = set()
    for w in wanted:
        cid = catalog_id(w.resource_app_id, w.permission)
        if resource_sps is None:
            if cid is None:
                raise InputError(f"permissions: {w.label} is not in the catalog and cannot be "
                                 "resolved without signing in", input="permissions")
            res.items.append(Resolved(w.resource, w.resource_app_id, w.permission, cid, None, "catalog"))
            continue
        sp = resource_sps.get(w.resource_app_id)
        if sp is None:
            if w.resource_app_id not in missing_sp_warned:
                missing_sp_warned.add(w.resource_app_id)
                res.warnings.append(
                    f"{w.resource} ({w.resource_app_id}) has no service principal in this tenant: its "
                    "permissions are requested with catalog ids, and consent for them cannot be granted "
                    "until the service exists in the tenant")
            if cid is None:
                raise InputError(f"permissions: {w.label} cannot be resolved: {w.resource} is not in the "
                                 "tenant and the permission is not in the catalog", input="permissions")
            res.items.append(Resolved(w.resource, w.resource_app_id, w.permission, cid, None, "catalog"))
            continue
        role = _find_role(sp.get("appRoles") or [], w.permission)
        if role is None:
            raise InputError(f"permissions: {w.resource} has no application permission "
                             f"{w.permission!r} in this tenant", input="permissions",
                             hint=_did_you_mean_runtime(sp.get("appRoles") or [], w.permission))
        rid = str(role.get("id"))
        if role.get("isEnabled") is False:
            res.warnings.append(f"{w.label} is disabled by its resource; it is requested anyway")
        if cid is not None and cid.lower() != rid.lower():
            res.warnings.append(f"{w.label}: the tenant's app role id {rid} differs from the catalog's "
                                f"{cid}; using the tenant's")
        res.items.append(Resolved(w.resource, w.resource_app_id, w.permission, rid, sp.get("id"), "runtime"))
    return res


def _find_role(roles: Sequence[dict[str, Any]], name: str) -> dict[str, Any] | None:
    for r in roles:
        if r.get("value") == name and "Application" in (r.get("allowedMemberTypes") or ["Application"]):
            return r
    return None


def _did_you_mean_runtime(roles: Sequence[dict[str, Any]], name: str) -> str:
    close = [r.get("value") for r in roles if str(r.get("value", "")).lower() == name.lower()]
    if close:
        return f"did you mean {close[0]!r}? (names are case-sensitive)"
    return "check the permission name against the API's application permissions"


def resource_app_ids(wanted: Iterable[Wanted]) -> list[str]:
    out: list[str] = []
    for w in wanted:
        if w.resource_app_id not in out:
            out.append(w.resource_app_id)
    return out
