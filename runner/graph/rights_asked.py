"""What Graph says the signed-in identity holds, asked only where the access token does not
tell. Microsoft documents access tokens as opaque to clients ("Access tokens", Microsoft
identity platform): `wids` appears in a delegated token only as an application's
groupMembershipClaims asks, and `roles` is left out of an app-only token that holds none.
Reading the claims stays the fast check (rights.py); when a claim the work needs is absent,
Graph is asked instead of failing:

- delegated, no `wids`: `GET /me/transitiveMemberOf/microsoft.graph.directoryRole` (the
  signed-in user's directory roles, direct or through groups; User.Read is enough,
  "List a user's memberships (direct and transitive)");
- app-only, no `roles`: the operator service principal's `appRoleAssignments`, whose
  Microsoft Graph app role ids name the application permissions it holds.

What Graph will not say (403, 404) leaves the claim absent: rights.py then names what is
missing, as it would from the token alone."""

from __future__ import annotations

from typing import Any

from .client import GraphClient
from .odata import odata_key
from .responses import GraphResponse
from .rights import APP_ROLE_ASSIGNMENT_RW, APPLICATION_RW

# The Microsoft Graph application permissions the rights check names, by app role id
# (microsoft-graph-docs-contrib, concepts/includes/permissions-ids.md).
OPERATOR_ROLE_IDS = {"1bfefb4e-e0b5-418b-a88f-73c46d2cc8e9": APPLICATION_RW,
                     "06b708a9-e830-4db3-a914-8e69da51d44f": APP_ROLE_ASSIGNMENT_RW}

ROLES_OF_ME = "/me/transitiveMemberOf/microsoft.graph.directoryRole?$select=id,displayName,roleTemplateId"


def undecided(claims: dict[str, Any]) -> list[str]:
    """The claims the rights check needs that the token leaves out."""
    if "scp" in claims:
        return [] if "wids" in claims else ["wids"]
    return [] if "roles" in claims else ["roles"]


def _all(client: GraphClient, path: str) -> list[dict[str, Any]] | None:
    """Every item of a collection, or None when Graph will not list it for this caller."""
    items: list[dict[str, Any]] = []
    resp: GraphResponse = client.get(path, allow=(403, 404))
    while True:
        if resp.status in (403, 404):
            return None
        body = resp.body if isinstance(resp.body, dict) else {}
        items += [i for i in body.get("value") or [] if isinstance(i, dict)]
        if not body.get("@odata.nextLink"):
            return items
        resp = client.get(body["@odata.nextLink"], allow=(403, 404))


def complete(client: GraphClient, claims: dict[str, Any]) -> dict[str, Any]:
    """`claims`, with each claim the token left out filled in from Graph where Graph says."""
    out = dict(claims)
    for claim in undecided(claims):
        if claim == "wids":
            roles = _all(client, ROLES_OF_ME)
            if roles is not None:
                out["wids"] = sorted({str(r.get("roleTemplateId")) for r in roles if r.get("roleTemplateId")})
        else:
            app_id = str(claims.get("appid") or claims.get("azp") or "")
            held = _all(client, f"/servicePrincipals(appId='{odata_key(app_id)}')/appRoleAssignments"
                                f"?$select=appRoleId,resourceId") if app_id else None
            if held is not None:
                out["roles"] = sorted({OPERATOR_ROLE_IDS[str(a.get("appRoleId")).lower()] for a in held
                                       if str(a.get("appRoleId")).lower() in OPERATOR_ROLE_IDS})
    return out
