"""When the access token does not say what the operator holds, psrunner asks Graph rather than
failing: a delegated token without `wids` (Entra leaves it out unless an application asks for
directory roles) is completed from /me/transitiveMemberOf; an app-only token without `roles`
from the operator's app role assignments. A token that says enough costs no extra request."""

from __future__ import annotations

import pytest

from runner.errors import AuthError
from runner.graph.responses import GraphResponse
from runner.graph.rights_asked import complete, undecided

from .graph_harness import assert_converged, connect, onboard
from .test_graph_stages import device_settings

PRA = "e8611ab8-c189-46e8-94e1-60213ab1f814"
ROLES_OF_ME = "GET /v1.0/me/transitiveMemberOf/microsoft.graph.directoryRole"


def test_a_delegated_token_without_wids_is_completed_from_graph_and_onboards(sim, tmp_path):
    sim.wids_in_user_tokens = False
    sim.set_device_user(wids=[PRA])
    conn = connect(sim, tmp_path, interactive=True, **device_settings(sim, tmp_path))
    out = onboard(conn, tmp_path)
    assert "wids" not in conn.tokens.claims()
    assert out["preflight"].outputs["rights"]["directory_roles"] == ["Privileged Role Administrator"]
    assert sim.requests.by_route()[ROLES_OF_ME] == 1          # asked once per run
    assert_converged(sim)


def test_without_a_role_in_the_directory_either_the_missing_role_is_named(sim, tmp_path):
    sim.wids_in_user_tokens = False
    sim.set_device_user(wids=[])
    conn = connect(sim, tmp_path, interactive=True, **device_settings(sim, tmp_path))
    with pytest.raises(AuthError) as ei:
        onboard(conn, tmp_path)
    assert ei.value.missing == ["directory role Privileged Role Administrator or Global Administrator (wids)"]
    assert sim.requests.writes == 0 and sim.requests.by_route()[ROLES_OF_ME] == 1


def test_a_token_that_says_enough_costs_no_question(sim, tmp_path):
    sim.set_device_user(wids=[PRA])
    onboard(connect(sim, tmp_path, interactive=True, **device_settings(sim, tmp_path)), tmp_path,
            stages=("preflight",))
    assert ROLES_OF_ME not in sim.requests.by_route()


class Answers:
    """A Graph client that answers GETs from a table (the decision, apart from the wire)."""

    def __init__(self, answers: dict[str, GraphResponse]) -> None:
        self.answers, self.asked = answers, []

    def get(self, path: str, **kw):
        self.asked.append(path)
        return self.answers[path.partition("?")[0]]


def test_an_app_only_token_without_roles_is_completed_from_the_operators_assignments():
    claims = {"appid": "11111111-2222-3333-4444-555555555555", "tid": "t", "idtyp": "app"}
    assert undecided(claims) == ["roles"]
    path = "/servicePrincipals(appId='11111111-2222-3333-4444-555555555555')/appRoleAssignments"
    held = GraphResponse(200, {"value": [{"appRoleId": "1bfefb4e-e0b5-418b-a88f-73c46d2cc8e9"},
                                         {"appRoleId": "06B708A9-E830-4DB3-A914-8E69DA51D44F"},
                                         {"appRoleId": "df021288-bdef-4463-88db-98f22de89214"}]})
    assert complete(Answers({path: held}), claims)["roles"] == ["AppRoleAssignment.ReadWrite.All",
                                                                 "Application.ReadWrite.All"]
    refused = Answers({path: GraphResponse(403, {"error": {"code": "Authorization_RequestDenied"}})})
    assert "roles" not in complete(refused, claims) and refused.asked == [path + "?$select=appRoleId,resourceId"]
    assert undecided({"scp": "x", "wids": []}) == [] and undecided({"roles": []}) == []
