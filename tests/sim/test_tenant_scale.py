"""A tenant of 10,000 service principals: seeded cheaply, and served through indexes, so
benchmarks that grow the tenant measure the client, not the simulator."""

from __future__ import annotations

import pytest

from .tenant_helpers import SITES_FULLCONTROL_GRAPH, CASession, Graph, app_token, graph_sp_id, new_app, new_sp


class WalkCounter(dict):
    """A dict that counts how often something walks all of it."""

    walks = 0

    def values(self):
        WalkCounter.walks += 1
        return super().values()

    def items(self):
        WalkCounter.walks += 1
        return super().items()

    def __iter__(self):
        WalkCounter.walks += 1
        return super().__iter__()


@pytest.fixture
def graph(sim):
    with CASession(sim.ca_bundle) as http:
        yield Graph(sim, http, app_token(sim))


def test_ten_thousand_seeded_service_principals_are_listed_paged_and_found_by_key(sim, graph):
    before = len(sim.state.service_principals)
    ids = sim.seed_service_principals(10_000)
    assert len(ids) == len(set(ids)) == 10_000 and len(sim.state.service_principals) == before + 10_000
    seeded = sim.state.service_principals[ids[1234]]
    assert seeded["appOwnerOrganizationId"] != sim.tenant_id and sim.state.app_by_app_id(seeded["appId"]) is None
    r = graph("GET", f"/servicePrincipals(appId='{seeded['appId']}')")
    assert r.status_code == 200 and r.json()["displayName"] == seeded["displayName"]
    r = graph("GET", f"/servicePrincipals?$filter=appId eq '{seeded['appId']}'&$select=id")
    assert r.json()["value"] == [{"id": seeded["id"]}]
    r = graph("GET", "/servicePrincipals?$count=true&$top=999", headers={"ConsistencyLevel": "eventual"})
    assert r.json()["@odata.count"] == before + 10_000 and len(r.json()["value"]) == 999
    assert "@odata.nextLink" in r.json()


def test_lookups_by_key_and_assignments_never_walk_the_whole_tenant(sim, graph):
    sim.seed_service_principals(10_000)
    app = new_app(graph, uniqueName="contoso-backup")
    sp = new_sp(graph, app["appId"])
    gsp = graph_sp_id(sim)
    st = sim.state
    st.applications = WalkCounter(st.applications)
    st.service_principals = WalkCounter(st.service_principals)
    st.app_role_assignments = WalkCounter(st.app_role_assignments)
    WalkCounter.walks = 0
    assert graph("GET", "/applications(uniqueName='contoso-backup')").status_code == 200
    assert graph("GET", f"/applications(appId='{app['appId']}')").status_code == 200
    assert graph("GET", f"/servicePrincipals(appId='{app['appId']}')").status_code == 200
    body = {"principalId": sp["id"], "resourceId": gsp, "appRoleId": SITES_FULLCONTROL_GRAPH}
    assert graph("POST", f"/servicePrincipals/{gsp}/appRoleAssignedTo", body).status_code == 201
    assert graph("POST", f"/servicePrincipals/{gsp}/appRoleAssignedTo", body).status_code == 400  # duplicate
    listed = graph("GET", f"/servicePrincipals/{sp['id']}/appRoleAssignments").json()["value"]
    assert [a["appRoleId"] for a in listed] == [SITES_FULLCONTROL_GRAPH]
    assert graph("DELETE", f"/servicePrincipals/{sp['id']}/appRoleAssignments/{listed[0]['id']}").status_code == 204
    app_token(sim)  # client credentials: the operator's app and service principal by appId
    assert WalkCounter.walks == 0
    assert graph("DELETE", f"/applications/{app['id']}").status_code == 204
    assert st.sp_by_app_id(app["appId"]) is None and st.app_by_unique_name("contoso-backup") is None
