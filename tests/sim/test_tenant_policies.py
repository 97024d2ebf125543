"""App management policies in the simulated tenant: readable and manageable through Graph
as documented, seedable by tests, and enforced on addPassword and certificate uploads with
Entra's error codes."""

from __future__ import annotations

import base64
import datetime as dt

import pytest
from cryptography.hazmat.primitives import serialization

from runner.sim.tenant_policies import DEFAULT_POLICY_ID, parse_duration

from .tenant_helpers import CASession, Graph, app_token, make_cert, new_app

POLICY_ADMIN = ["Application.ReadWrite.All", "Policy.Read.All", "Policy.ReadWrite.ApplicationConfiguration"]


@pytest.fixture
def graph(sim):
    admin = sim.add_operator(roles=POLICY_ADMIN, display_name="policy admin")
    with CASession(sim.ca_bundle) as http:
        yield Graph(sim, http, app_token(sim, admin))


def in_days(days: float) -> str:
    return (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")


def add_password(graph, app, days: float | None = None):
    pc = {"displayName": "backup"} | ({"endDateTime": in_days(days)} if days is not None else {})
    return graph("POST", f"/applications/{app['id']}/addPassword", {"passwordCredential": pc})


def upload_certificate(graph, app, days: int):
    cert, _, _ = make_cert(days=days)
    key = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
    return graph("PATCH", f"/applications/{app['id']}", {"keyCredentials": [
        {"type": "AsymmetricX509Cert", "usage": "Verify", "key": key}]})


def refused(r, code: str, policy_id: str) -> bool:
    err = r.json()["error"]
    return r.status_code == 400 and err["code"] == code and f"as per assigned policy '{policy_id}'" in err["message"]


def test_default_policy_reads_as_documented_and_needs_a_policy_permission(sim, graph):
    r = graph("GET", "/policies/defaultAppManagementPolicy")
    body = r.json()
    assert r.status_code == 200 and body["@odata.context"].endswith("/v1.0/$metadata#policies/"
                                                                    "defaultAppManagementPolicy/$entity")
    assert (body["id"], body["isEnabled"]) == (DEFAULT_POLICY_ID, False)
    assert body["applicationRestrictions"] == body["servicePrincipalRestrictions"] == {
        "passwordCredentials": [], "keyCredentials": []}
    plain = Graph(sim, graph.http, app_token(sim))  # Application.ReadWrite.All only
    assert plain("GET", "/policies/defaultAppManagementPolicy").status_code == 403
    assert plain("GET", "/policies/appManagementPolicies").status_code == 403


def test_a_90_day_password_lifetime_refuses_the_two_year_default_and_longer_secrets(sim, graph):
    app = new_app(graph)
    sim.state.policies.set_default(password_lifetime="P90D")
    r = add_password(graph, app)  # no endDateTime: two years
    assert refused(r, "CredentialInvalidLifetimeAsPerAppPolicy", DEFAULT_POLICY_ID)
    assert r.json()["error"]["message"] == ("Credential lifetime exceeds the max value allowed as per assigned "
                                            f"policy '{DEFAULT_POLICY_ID}'.")
    assert r.json()["error"]["innerError"]["request-id"] == r.headers["request-id"]
    assert refused(add_password(graph, app, 91), "CredentialInvalidLifetimeAsPerAppPolicy", DEFAULT_POLICY_ID)
    ok = add_password(graph, app, 89.9)
    assert ok.status_code == 200 and ok.json()["secretText"]
    assert len(sim.state.applications[app["id"]]["passwordCredentials"]) == 1
    seen = graph("GET", "/policies/defaultAppManagementPolicy").json()
    assert seen["isEnabled"] is True and seen["applicationRestrictions"]["passwordCredentials"] == [
        {"restrictionType": "passwordLifetime", "state": "enabled", "maxLifetime": "P90D",
         "restrictForAppsCreatedAfterDateTime": None}]


def test_a_policy_assigned_to_the_app_replaces_the_tenant_default(sim, graph):
    sim.state.policies.set_default(password_lifetime="P30D")
    mine, other = new_app(graph, "mine"), new_app(graph, "other")
    policy = sim.state.policies.add("backup apps", applies_to=[mine], password_lifetime="P365D")
    assert add_password(graph, mine, 200).status_code == 200
    assert refused(add_password(graph, other, 200), "CredentialInvalidLifetimeAsPerAppPolicy", DEFAULT_POLICY_ID)
    blocker = sim.state.policies.add("no secrets", block_passwords=True)
    graph("DELETE", f"/applications/{mine['id']}/appManagementPolicies/{policy['id']}/$ref")
    graph("POST", f"/applications/{mine['id']}/appManagementPolicies/$ref",
          {"@odata.id": f"https://graph.microsoft.com/v1.0/policies/appManagementPolicies/{blocker['id']}"})
    r = add_password(graph, mine, 10)
    assert refused(r, "CredentialTypeNotAllowedAsPerAppPolicy", blocker["id"])
    assert r.json()["error"]["message"] == f"Credential type not allowed as per assigned policy '{blocker['id']}'."


def test_certificate_lifetime_is_enforced_on_key_uploads(sim, graph):
    app = new_app(graph)
    sim.state.policies.set_default(certificate_lifetime="P180D")
    assert refused(upload_certificate(graph, app, 365), "CredentialInvalidLifetimeAsPerAppPolicy", DEFAULT_POLICY_ID)
    assert sim.state.applications[app["id"]]["keyCredentials"] == []
    assert upload_certificate(graph, app, 90).status_code == 204
    assert add_password(graph, app).status_code == 200  # secrets are not restricted by this policy


def test_restrictions_apply_to_apps_created_after_their_date_and_while_enabled(sim, graph):
    old = new_app(graph, "old")
    sim.state.policies.set_default(password_lifetime="P30D", created_after=in_days(1))
    assert add_password(graph, old).status_code == 200       # created before the date
    sim.state.policies.set_default(password_lifetime="P30D")
    assert add_password(graph, old).status_code == 400
    sim.state.policies.set_default(enabled=False, password_lifetime="P30D")
    assert add_password(graph, old).status_code == 200


def test_policies_are_managed_through_graph(sim, graph):
    app = new_app(graph)
    r = graph("POST", "/policies/appManagementPolicies", {
        "displayName": "90 days", "isEnabled": True,
        "restrictions": {"passwordCredentials": [{"restrictionType": "passwordLifetime", "maxLifetime": "P90D"}],
                         "keyCredentials": []}})
    assert r.status_code == 201 and r.json()["@odata.context"].endswith("#policies/appManagementPolicies/$entity")
    pid = r.json()["id"]
    ref = {"@odata.id": f"https://graph.microsoft.com/v1.0/policies/appManagementPolicies/{pid}"}
    assert graph("POST", f"/applications/{app['id']}/appManagementPolicies/$ref", ref).status_code == 204
    assigned = graph("GET", f"/applications/{app['id']}/appManagementPolicies").json()["value"]
    assert [p["id"] for p in assigned] == [pid]
    applies = graph("GET", f"/policies/appManagementPolicies/{pid}/appliesTo").json()["value"]
    assert [(a["id"], a["@odata.type"]) for a in applies] == [(app["id"], "#microsoft.graph.application")]
    assert refused(add_password(graph, app), "CredentialInvalidLifetimeAsPerAppPolicy", pid)
    second = graph("POST", "/policies/appManagementPolicies", {"displayName": "second"}).json()["id"]
    again = graph("POST", f"/applications/{app['id']}/appManagementPolicies/$ref",
                  {"@odata.id": f"https://graph.microsoft.com/v1.0/policies/appManagementPolicies/{second}"})
    assert again.status_code == 400  # one policy per application
    assert graph("PATCH", f"/policies/appManagementPolicies/{pid}", {"isEnabled": False}).status_code == 204
    assert add_password(graph, app).status_code == 200
    assert graph("DELETE", f"/policies/appManagementPolicies/{pid}").status_code == 204
    assert graph("GET", f"/applications/{app['id']}/appManagementPolicies").json()["value"] == []
    patch = {"isEnabled": True, "applicationRestrictions": {"passwordCredentials": [
        {"restrictionType": "passwordAddition", "state": "enabled"}], "keyCredentials": []}}
    assert graph("PATCH", "/policies/defaultAppManagementPolicy", patch).status_code == 204
    assert refused(add_password(graph, app, 10), "CredentialTypeNotAllowedAsPerAppPolicy", DEFAULT_POLICY_ID)


@pytest.mark.parametrize("restrictions,says", [
    ({"passwordCredentials": [{"restrictionType": "passwordLifetime"}]}, "'maxLifetime' is required"),
    ({"passwordCredentials": [{"restrictionType": "passwordLifetime", "maxLifetime": "90 days"}]},
     "ISO 8601 duration"),
    ({"passwordCredentials": [{"restrictionType": "passwordAddition"}, {"restrictionType": "passwordAddition"}]},
     "only once per policy"),
    ({"keyCredentials": [{"restrictionType": "passwordLifetime", "maxLifetime": "P1D"}]}, "restrictionType"),
])
def test_invalid_restrictions_are_refused(graph, restrictions, says):
    r = graph("POST", "/policies/appManagementPolicies", {"displayName": "bad", "restrictions": restrictions})
    assert r.status_code == 400 and says in r.json()["error"]["message"]


@pytest.mark.parametrize("text,days", [("P90D", 90), ("P1Y", 365), ("P2W", 14), ("P4DT12H", 4.5), ("PT36H", 1.5)])
def test_durations(text, days):
    assert parse_duration(text) == dt.timedelta(days=days)


@pytest.mark.parametrize("text", ["", "P", "90D", "PT", "P1.5D", "P-1D"])
def test_bad_durations(text):
    with pytest.raises(ValueError):
        parse_duration(text)
