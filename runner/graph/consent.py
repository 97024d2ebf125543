"""Admin consent for application permissions: one app role assignment per permission, on the
resource's service principal, for the application's service principal.

Read: `read_assignments` (none to read when this run created the service principal).
Decide: `decide` sorts each wanted permission into granted, to grant, or unavailable (its
API has no service principal in the tenant). Write: `grant`, 20 assignments to a `$batch`;
an "already exists" answer from a racing run counts as granted."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from ..errors import GraphError
from .batch import BatchRequest
from .client import GraphClient
from .facts import ASSIGNMENT_SELECT, Facts
from .permissions import GRAPH_APP_ID, Resolution, Resolved
from .responses import graph_error, is_already_assigned

GRANTED, TO_GRANT, UNAVAILABLE, ADDED, FAILED = "granted", "to-grant", "unavailable", "added", "failed"


def read_assignments(client: GraphClient, facts: Facts, sp_id: str, *, apply: bool) -> list[dict[str, Any]]:
    """The service principal's app role assignments: none when this run created it, those
    read ahead with the application (facts.read_state) when they were, else read now."""
    if apply and sp_id in facts.created_sps:
        return []           # created by this run: no assignments yet
    read_ahead = facts.assignments.pop(sp_id, None)     # used once: what a grant adds is not in it
    if read_ahead is not None:
        return read_ahead
    return client.get_all(f"/servicePrincipals/{quote(sp_id, safe='')}/appRoleAssignments",
                          params={"$select": ASSIGNMENT_SELECT})


def _pair(resource_id: Any, role_id: Any) -> tuple[str, str]:
    return str(resource_id or "").lower(), str(role_id or "").lower()


@dataclass
class ConsentDecision:
    states: list[str]                                        # per resolution item
    extra: list[dict[str, Any]] = field(default_factory=list)  # other assignments the SP holds

    def indexes(self, state: str) -> list[int]:
        return [i for i, s in enumerate(self.states) if s == state]


def decide(items: list[Resolved], existing: list[dict[str, Any]]) -> ConsentDecision:
    have = {_pair(a.get("resourceId"), a.get("appRoleId")) for a in existing}
    states = []
    for r in items:
        if not r.resource_sp_id or not r.id:
            states.append(UNAVAILABLE)
        elif _pair(r.resource_sp_id, r.id) in have:
            states.append(GRANTED)
        else:
            states.append(TO_GRANT)
    wanted = {_pair(r.resource_sp_id, r.id) for r in items if r.resource_sp_id}
    extra = [a for a in existing if _pair(a.get("resourceId"), a.get("appRoleId")) not in wanted]
    return ConsentDecision(states, extra)


def grant(client: GraphClient, sp_id: str, items: list[Resolved],
          indexes: list[int]) -> dict[int, tuple[str, GraphError | None]]:
    """Create the assignments for `items[i]`, i in `indexes`: {i: (added | granted | failed, error)}."""
    reqs = {i: BatchRequest(f"g{i}", "POST", f"/servicePrincipals/{items[i].resource_sp_id}/appRoleAssignedTo",
                            body={"principalId": sp_id, "resourceId": items[i].resource_sp_id,
                                  "appRoleId": items[i].id})
            for i in indexes}
    # lag=True: the service principal may have been created seconds ago ("Not a valid reference
    # update" / Request_ResourceNotFound until it replicates).
    answers = client.batch(list(reqs.values()), lag=True, ok_if=is_already_assigned)
    out: dict[int, tuple[str, GraphError | None]] = {}
    for i, req in reqs.items():
        resp = answers.get(req.id)
        if resp is not None and resp.ok:
            out[i] = (ADDED, None)
        elif resp is not None and is_already_assigned(resp.status, resp.body):
            out[i] = (GRANTED, None)
        else:
            out[i] = (FAILED, graph_error("POST", req.url, resp.status if resp else None,
                                          resp.body if resp else None, resp.headers if resp else None))
    return out


def needs_graph_role_grant(resolution: Resolution) -> bool:
    """Granting Microsoft Graph app roles needs a privileged directory role (rights.py)."""
    return any(r.resource_app_id == GRAPH_APP_ID for r in resolution.items)
