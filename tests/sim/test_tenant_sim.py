"""The tenant simulator, driven by the real msal and requests over HTTPS on loopback.

Covers the login side (discovery, client secret and certificate credentials, device code,
refresh, Entra error shapes), Graph (auth, rights, apps, upsert, secrets, certificates,
service principals, consent, paging, $batch), faults (throttle, outages, drops, latency,
replication lag) and request counting."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import socket
import stat
import threading
import time
import uuid

import msal
import pytest
import requests

from runner.sim.tenant import TenantSimulator, serve
from runner.sim.tenant_state import (
    AAD_GRAPH_APP_ID,
    EXCHANGE_APP_ID,
    GLOBAL_ADMINISTRATOR,
    GRAPH_APP_ID,
    PRIVILEGED_ROLE_ADMINISTRATOR,
    SHAREPOINT_APP_ID,
    load_permission_rows,
)

from .tenant_helpers import (
    APP_ROLE_ASSIGN_RW,
    APP_RW_ALL,
    GRAPH_DEFAULT,
    SITES_FULLCONTROL_GRAPH,
    USER_READ_ALL,
    CASession,
    Graph,
    app_token,
    cca,
    claims_of,
    device_token,
    graph_sp_id,
    make_cert,
    new_app,
    new_sp,
)


@pytest.fixture
def http(sim):
    with CASession(sim.ca_bundle) as s:
        yield s


@pytest.fixture
def graph(sim, http):
    return Graph(sim, http, app_token(sim))


# ---- login side ------------------------------------------------------------------------

def test_msal_client_secret_costs_discovery_plus_token_and_carries_app_roles(sim):
    result = cca(sim, sim.operator.client_id, sim.operator.client_secret).acquire_token_for_client(GRAPH_DEFAULT)
    assert result["token_type"] == "Bearer" and result["expires_in"] > 3000
    c = claims_of(result["access_token"])
    assert c["aud"] == "https://graph.microsoft.com"
    assert c["iss"] == f"https://sts.windows.net/{sim.tenant_id}/" and c["tid"] == sim.tenant_id
    assert c["appid"] == sim.operator.client_id and c["idtyp"] == "app"
    assert c["oid"] == sim.operator.service_principal_id
    assert sorted(c["roles"]) == ["AppRoleAssignment.ReadWrite.All", "Application.ReadWrite.All"]
    assert "scp" not in c and c["exp"] > time.time()
    snap = sim.requests.snapshot()
    assert snap["by_route"] == {"GET /{tenant}/v2.0/.well-known/openid-configuration": 1,
                                "POST /{tenant}/oauth2/v2.0/token": 1}
    assert (snap["total"], snap["token"], snap["writes"], snap["graph"]) == (2, 1, 0, 0)


def test_instance_discovery_endpoint_points_at_tenant_discovery(sim, http):
    r = http.get(f"{sim.base_url}/common/discovery/instance",
                 params={"api-version": "1.1", "authorization_endpoint": f"{sim.authority}/oauth2/v2.0/authorize"})
    assert r.status_code == 200
    assert r.json()["tenant_discovery_endpoint"] == f"{sim.authority}/v2.0/.well-known/openid-configuration"
    conf = http.get(r.json()["tenant_discovery_endpoint"]).json()
    assert conf["device_authorization_endpoint"] == f"{sim.authority}/oauth2/v2.0/devicecode"
    assert conf["issuer"] == f"{sim.authority}/v2.0"
    assert http.get(f"{sim.base_url}/not-a-tenant/v2.0/.well-known/openid-configuration").json()["error"] == "invalid_tenant"


def test_msal_certificate_credentials_ps256_and_rs256(sim):
    _, cert_pem, key_pem = make_cert()
    op = sim.add_operator(certificate_pem=cert_pem, roles=["Application.ReadWrite.All"])
    assert op.client_secret is None and len(op.thumbprint) == 40
    # public_certificate: msal signs PS256 with x5t#S256; thumbprint only: RS256 with x5t.
    for cred in ({"private_key": key_pem, "public_certificate": cert_pem},
                 {"private_key": key_pem, "thumbprint": op.thumbprint}):
        result = cca(sim, op.client_id, cred).acquire_token_for_client(GRAPH_DEFAULT)
        assert "access_token" in result, result
        c = claims_of(result["access_token"])
        assert c["appid"] == op.client_id and c["appidacr"] == "2" and c["roles"] == ["Application.ReadWrite.All"]
    _, other_pem, other_key = make_cert("someone-else")
    result = cca(sim, op.client_id, {"private_key": other_key, "public_certificate": other_pem}
                 ).acquire_token_for_client(GRAPH_DEFAULT)
    assert result["error"] == "invalid_client" and result["error_codes"] == [700027]


def test_wrong_secret_and_unknown_client_have_entra_error_shapes(sim, http):
    result = cca(sim, sim.operator.client_id, "not-the-secret").acquire_token_for_client(GRAPH_DEFAULT)
    assert result["error"] == "invalid_client"
    assert result["error_description"].startswith("AADSTS7000215: Invalid client secret provided.")
    token_url = f"{sim.authority}/oauth2/v2.0/token"
    r = http.post(token_url, data={"client_id": sim.operator.client_id, "client_secret": "x",
                                   "grant_type": "client_credentials", "scope": GRAPH_DEFAULT[0]},
                  headers={"client-request-id": "abc-123"})
    body = r.json()
    assert r.status_code == 401 and body["error_codes"] == [7000215] and body["correlation_id"] == "abc-123"
    assert {"timestamp", "trace_id", "error_uri"} <= set(body)
    unknown = str(uuid.uuid4())
    r = http.post(token_url, data={"client_id": unknown, "client_secret": "x", "grant_type": "client_credentials",
                                   "scope": GRAPH_DEFAULT[0]})
    assert r.status_code == 400 and r.json()["error"] == "unauthorized_client"
    assert r.json()["error_description"].startswith(f"AADSTS700016: Application with identifier '{unknown}'")
    r = http.post(token_url, data={"grant_type": "client_credentials", "scope": GRAPH_DEFAULT[0]},
                  auth=(sim.operator.client_id, sim.operator.client_secret))  # client_secret_basic
    assert r.status_code == 200 and claims_of(r.json()["access_token"])["appid"] == sim.operator.client_id
    r = http.post(token_url, data={"client_id": sim.operator.client_id, "client_secret": sim.operator.client_secret,
                                   "grant_type": "client_credentials",
                                   "scope": "https://graph.microsoft.com/User.Read.All"})
    assert r.status_code == 400 and r.json()["error"] == "invalid_scope" and r.json()["error_codes"] == [1002012]


def test_device_code_flow_with_msal_polls_then_caches_account(sim):
    sim.device_pending_polls = 1
    sim.set_device_user(upn="ops@contoso.onmicrosoft.com", wids=[PRIVILEGED_ROLE_ADMINISTRATOR])
    pca = msal.PublicClientApplication(sim.public_client_id, authority=sim.authority, instance_discovery=False,
                                       http_client=CASession(sim.ca_bundle))
    flow = pca.initiate_device_flow(scopes=GRAPH_DEFAULT)
    assert flow["interval"] == 1 and flow["verification_uri"] == f"{sim.base_url}/devicelogin"
    assert flow["user_code"] in flow["message"]
    started = time.monotonic()
    result = pca.acquire_token_by_device_flow(flow)
    assert time.monotonic() - started < 3
    c = claims_of(result["access_token"])
    assert c["idtyp"] == "user" and c["upn"] == "ops@contoso.onmicrosoft.com"
    assert set(c["scp"].split()) == {"Application.ReadWrite.All", "AppRoleAssignment.ReadWrite.All", "User.Read"}
    assert PRIVILEGED_ROLE_ADMINISTRATOR in c["wids"] and GLOBAL_ADMINISTRATOR not in c["wids"]
    assert result["refresh_token"] and result["id_token_claims"]["preferred_username"] == "ops@contoso.onmicrosoft.com"
    [account] = pca.get_accounts()
    assert account["username"] == "ops@contoso.onmicrosoft.com"
    assert pca.acquire_token_silent(GRAPH_DEFAULT, account=account)["token_source"] == "cache"
    refreshed = pca.acquire_token_silent(GRAPH_DEFAULT, account=account, force_refresh=True)
    assert refreshed["token_source"] == "identity_provider" and "access_token" in refreshed
    routes = sim.requests.by_route()
    assert routes["POST /{tenant}/oauth2/v2.0/devicecode"] == 1
    assert routes["POST /{tenant}/oauth2/v2.0/token"] == 3  # pending, success, refresh
    assert sim.requests.token == 3


def test_device_code_declined_and_confidential_client_refused(sim, http):
    sim.device_auto_approve = False
    pca = msal.PublicClientApplication(sim.public_client_id, authority=sim.authority, instance_discovery=False,
                                       http_client=CASession(sim.ca_bundle))
    flow = pca.initiate_device_flow(scopes=GRAPH_DEFAULT)
    assert sim.approve_device_code(flow["user_code"], decline=True)
    result = pca.acquire_token_by_device_flow(flow)
    assert result["error"] == "authorization_declined"
    assert not sim.approve_device_code(flow["user_code"])
    r = http.post(f"{sim.authority}/oauth2/v2.0/devicecode",
                  data={"client_id": sim.operator.client_id, "scope": GRAPH_DEFAULT[0]})
    assert r.status_code == 401 and r.json()["error_codes"] == [7000218]


def test_device_code_approved_on_the_verification_page(sim, http):
    sim.device_auto_approve = False
    token_url = f"{sim.authority}/oauth2/v2.0/token"
    flow = http.post(f"{sim.authority}/oauth2/v2.0/devicecode",
                     data={"client_id": sim.public_client_id, "scope": GRAPH_DEFAULT[0]}).json()
    poll = {"grant_type": "urn:ietf:params:oauth:grant-type:device_code", "client_id": sim.public_client_id,
            "device_code": flow["device_code"]}
    r = http.post(token_url, data=poll)
    assert r.status_code == 400 and r.json()["error"] == "authorization_pending" and r.json()["error_codes"] == [70016]
    page = http.get(flow["verification_uri"])
    assert page.status_code == 200 and sim.device_user.upn in page.text
    done = http.post(flow["verification_uri"], data={"code": flow["user_code"], "action": "approve"})
    assert "Done" in done.text
    r = http.post(token_url, data=poll)
    assert r.status_code == 200 and claims_of(r.json()["access_token"])["upn"] == sim.device_user.upn
    r = http.post(token_url, data=poll)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"  # a device code is redeemed once


# ---- Graph authentication and authorization --------------------------------------------

def test_graph_rejects_missing_expired_forged_and_foreign_tokens(sim, http):
    url = f"{sim.graph_endpoint}/v1.0/applications"
    r = http.get(url)
    err = r.json()["error"]
    assert r.status_code == 401 and err["code"] == "InvalidAuthenticationToken"
    assert err["message"] == "Access token is empty."
    assert err["innerError"]["request-id"] == r.headers["request-id"]
    assert "WWW-Authenticate" in r.headers
    expired = sim.mint_access_token(roles=["Application.ReadWrite.All"], lifetime=-60)
    r = http.get(url, headers={"Authorization": f"Bearer {expired}"})
    assert r.status_code == 401 and "expired" in r.json()["error"]["message"]
    good = sim.mint_access_token(roles=["Application.ReadWrite.All"])
    head, _, sig = good.split(".")
    forged_claims = dict(claims_of(good), roles=["Directory.ReadWrite.All"])
    forged = head + "." + base64.urlsafe_b64encode(json.dumps(forged_claims).encode()).decode().rstrip("=") + "." + sig
    assert http.get(url, headers={"Authorization": f"Bearer {forged}"}).status_code == 401
    wrong_aud = sim.mint_access_token(roles=["Application.ReadWrite.All"], audience="https://outlook.office365.com")
    assert http.get(url, headers={"Authorization": f"Bearer {wrong_aud}"}).status_code == 401
    assert http.get(url, headers={"Authorization": f"Bearer {good}"}).status_code == 200


def test_missing_rights_are_403_authorization_request_denied(sim, http):
    nobody = sim.add_operator(roles=())
    g = Graph(sim, http, app_token(sim, nobody))
    assert "roles" not in claims_of(g.token)
    r = g("GET", "/applications")
    assert r.status_code == 403
    assert r.json()["error"] | {"innerError": None} == {"code": "Authorization_RequestDenied",
                                                        "message": "Insufficient privileges to complete the operation.",
                                                        "innerError": None}
    # AppRoleAssignment.ReadWrite.All alone is not enough: Graph also wants an app read right.
    assign_only = sim.add_operator(roles=["AppRoleAssignment.ReadWrite.All"])
    g2 = Graph(sim, http, app_token(sim, assign_only))
    r = g2("POST", f"/servicePrincipals/{graph_sp_id(sim)}/appRoleAssignedTo",
           {"principalId": nobody.service_principal_id, "resourceId": graph_sp_id(sim), "appRoleId": USER_READ_ALL})
    assert r.status_code == 403
    # Read-only cannot write.
    reader = sim.add_operator(roles=["Application.Read.All"])
    g3 = Graph(sim, http, app_token(sim, reader))
    assert g3("GET", "/applications").status_code == 200
    assert g3("POST", "/applications", {"displayName": "x"}).status_code == 403


def test_delegated_grant_of_graph_roles_needs_privileged_role_admin_or_global_admin(sim, http):
    admin = Graph(sim, http, app_token(sim))
    app = new_app(admin)
    sp = new_sp(admin, app["appId"])
    body = {"principalId": sp["id"], "resourceId": graph_sp_id(sim), "appRoleId": USER_READ_ALL}
    sim.set_device_user(wids=[])
    user = Graph(sim, http, device_token(sim))
    r = user("POST", f"/servicePrincipals/{graph_sp_id(sim)}/appRoleAssignedTo", body)
    assert r.status_code == 403 and r.json()["error"]["code"] == "Authorization_RequestDenied"
    sim.set_device_user(wids=[PRIVILEGED_ROLE_ADMINISTRATOR])
    user = Graph(sim, http, device_token(sim))
    r = user("POST", f"/servicePrincipals/{graph_sp_id(sim)}/appRoleAssignedTo", body)
    assert r.status_code == 201, r.text


def test_organization_and_me(sim, http):
    user = Graph(sim, http, device_token(sim))
    me = user("GET", "/me").json()
    assert me["userPrincipalName"] == sim.device_user.upn and me["id"] == sim.device_user.object_id
    org = user("GET", "/organization").json()["value"][0]
    assert org["id"] == sim.tenant_id and org["verifiedDomains"][0]["name"] == sim.tenant_domain
    app = Graph(sim, http, app_token(sim))
    assert app("GET", "/me").status_code == 400
    assert app("GET", "/organization").status_code == 403  # app-only needs Directory/Organization.Read.All
    reader = sim.add_operator(roles=["Directory.Read.All"])
    assert Graph(sim, http, app_token(sim, reader))("GET", "/organization").status_code == 200


# ---- applications ----------------------------------------------------------------------

def test_create_application_and_upsert_by_unique_name(sim, graph):
    app = new_app(graph, "Contoso Backup", requiredResourceAccess=[
        {"resourceAppId": GRAPH_APP_ID, "resourceAccess": [{"id": SITES_FULLCONTROL_GRAPH, "type": "Role"}]}])
    assert app["@odata.context"].endswith("$metadata#applications/$entity")
    assert uuid.UUID(app["id"]) and uuid.UUID(app["appId"]) and app["createdDateTime"].endswith("Z")
    assert app["requiredResourceAccess"][0]["resourceAccess"] == [{"id": SITES_FULLCONTROL_GRAPH, "type": "Role"}]
    assert sim.state.applications[app["id"]]["displayName"] == "Contoso Backup"

    key = "/applications(uniqueName='contoso-backup-2')"
    r = graph("PATCH", key, {"displayName": "Backup 2"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "Request_ResourceNotFound"
    r = graph("PATCH", key, {"displayName": "Backup 2"}, headers={"Prefer": "create-if-missing"})
    assert r.status_code == 201 and r.json()["uniqueName"] == "contoso-backup-2"
    created = r.json()
    r = graph("PATCH", key, {"displayName": "Backup 2 renamed", "notes": "n"}, headers={"Prefer": "create-if-missing"})
    assert r.status_code == 204 and r.content == b""
    got = graph("GET", key).json()
    assert got["id"] == created["id"] and got["displayName"] == "Backup 2 renamed"
    assert graph("GET", f"/applications(appId='{created['appId']}')").json()["id"] == created["id"]
    assert len(sim.state.apps_named("Backup 2 renamed")) == 1
    r = graph("PATCH", f"/applications/{app['id']}", {"passwordCredentials": [{"secretText": "x"}]})
    assert r.status_code == 400
    r = graph("POST", "/applications", {"displayName": "x", "requiredResourceAccess": [
        {"resourceAppId": GRAPH_APP_ID, "resourceAccess": [{"id": SITES_FULLCONTROL_GRAPH, "type": "Application"}]}]})
    assert r.status_code == 400 and r.json()["error"]["code"] == "Request_BadRequest"
    assert graph("GET", "/applications/not-a-guid").status_code == 400


def test_add_password_returns_secret_once_and_it_signs_in(sim, http, graph):
    app = new_app(graph)
    new_sp(graph, app["appId"])
    end = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=180)).strftime("%Y-%m-%dT%H:%M:%SZ")
    r = graph("POST", f"/applications/{app['id']}/addPassword",
              {"passwordCredential": {"displayName": "runner", "endDateTime": end}})
    assert r.status_code == 200
    cred = r.json()
    secret = cred["secretText"]
    assert len(secret) >= 16 and cred["hint"] == secret[:3] and cred["endDateTime"] == end
    assert uuid.UUID(cred["keyId"]) and cred["displayName"] == "runner"
    stored = graph("GET", f"/applications/{app['id']}").json()["passwordCredentials"]
    assert stored == [{**{k: v for k, v in cred.items() if k != "@odata.context"}, "secretText": None}]
    assert secret not in json.dumps(sim.state.applications[app["id"]])
    assert "access_token" in cca(sim, app["appId"], secret).acquire_token_for_client(GRAPH_DEFAULT)
    assert graph("POST", f"/applications/{app['id']}/removePassword", {"keyId": cred["keyId"]}).status_code == 204
    assert graph("GET", f"/applications/{app['id']}").json()["passwordCredentials"] == []
    result = cca(sim, app["appId"], secret).acquire_token_for_client(GRAPH_DEFAULT)
    assert result["error_codes"] == [7000215]


def test_key_credentials_store_thumbprint_and_enable_certificate_sign_in(sim, graph):
    from cryptography.hazmat.primitives import hashes, serialization

    cert, cert_pem, key_pem = make_cert("backup-app", days=90)
    app = new_app(graph)
    der = cert.public_bytes(serialization.Encoding.DER)
    r = graph("PATCH", f"/applications/{app['id']}", {"keyCredentials": [{
        "type": "AsymmetricX509Cert", "usage": "Verify", "key": base64.b64encode(der).decode(),
        "displayName": "CN=backup-app"}]})
    assert r.status_code == 204, r.text
    [kc] = graph("GET", f"/applications/{app['id']}").json()["keyCredentials"]
    assert kc["key"] is None and kc["type"] == "AsymmetricX509Cert" and kc["usage"] == "Verify"
    assert base64.b64decode(kc["customKeyIdentifier"]) == cert.fingerprint(hashes.SHA1())
    assert kc["endDateTime"] == cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    selected = graph("GET", f"/applications/{app['id']}?$select=id,keyCredentials").json()
    assert set(selected) == {"@odata.context", "id", "keyCredentials"}
    assert base64.b64decode(selected["keyCredentials"][0]["key"]) == der
    new_sp(graph, app["appId"])
    result = cca(sim, app["appId"], {"private_key": key_pem, "public_certificate": cert_pem}
                 ).acquire_token_for_client(GRAPH_DEFAULT)
    assert "access_token" in result, result
    r = graph("PATCH", f"/applications/{app['id']}", {"keyCredentials": [{
        "type": "AsymmetricX509Cert", "usage": "Verify", "key": base64.b64encode(b"not a cert").decode()}]})
    assert r.status_code == 400


# ---- service principals and consent ----------------------------------------------------

def test_resource_service_principals_carry_app_roles_from_permissions_csv(sim, graph):
    rows = load_permission_rows()
    for resource_app_id in (GRAPH_APP_ID, SHAREPOINT_APP_ID, EXCHANGE_APP_ID):
        r = graph("GET", f"/servicePrincipals(appId='{resource_app_id}')?$select=id,appId,appRoles")
        assert r.status_code == 200
        body = r.json()
        assert set(body) == {"@odata.context", "id", "appId", "appRoles"}
        roles = {role["value"]: role for role in body["appRoles"]}
        for row in rows:
            if row["resource_app_id"] == resource_app_id:
                role = roles[row["permission"]]
                assert role["id"] == row["app_role_id"]
                assert role["allowedMemberTypes"] == ["Application"] and role["isEnabled"] is True
    graph_roles = {r["value"]: r["id"] for r in sim.state.graph_sp["appRoles"]}
    assert graph_roles["Application.ReadWrite.All"] == APP_RW_ALL
    assert graph_roles["AppRoleAssignment.ReadWrite.All"] == APP_ROLE_ASSIGN_RW
    assert graph("GET", f"/servicePrincipals(appId='{AAD_GRAPH_APP_ID}')").status_code == 404


def test_service_principal_create_conflict_and_upsert(sim, graph):
    app = new_app(graph)
    sp = new_sp(graph, app["appId"])
    assert sp["appId"] == app["appId"] and sp["appOwnerOrganizationId"] == sim.tenant_id
    r = graph("POST", "/servicePrincipals", {"appId": app["appId"]})
    assert r.status_code == 409 and r.json()["error"]["code"] == "Request_MultipleObjectsWithSameKeyValue"
    other = new_app(graph, "other")
    key = f"/servicePrincipals(appId='{other['appId']}')"
    assert graph("PATCH", key, {"notes": "x"}).status_code == 404
    r = graph("PATCH", key, {"notes": "x"}, headers={"Prefer": "create-if-missing"})
    assert r.status_code == 201 and r.json()["notes"] == "x"
    assert graph("PATCH", key, {"notes": "y"}, headers={"Prefer": "create-if-missing"}).status_code == 204
    assert graph("GET", key + "?$select=id,notes").json()["notes"] == "y"
    r = graph("POST", "/servicePrincipals", {"appId": str(uuid.uuid4())})
    assert r.status_code == 400 and r.json()["error"]["details"][0]["code"] == "NoBackingApplicationObject"
    found = graph("GET", f"/servicePrincipals?$filter=appId eq '{app['appId']}'").json()["value"]
    assert [s["id"] for s in found] == [sp["id"]]


def test_app_role_assignment_grant_list_duplicate_and_revoke(sim, http, graph):
    app = new_app(graph)
    secret = graph("POST", f"/applications/{app['id']}/addPassword", {}).json()["secretText"]
    sp = new_sp(graph, app["appId"])
    gsp = graph_sp_id(sim)
    body = {"principalId": sp["id"], "resourceId": gsp, "appRoleId": SITES_FULLCONTROL_GRAPH}
    r = graph("POST", f"/servicePrincipals/{gsp}/appRoleAssignedTo", body)
    assert r.status_code == 201, r.text
    a = r.json()
    assert len(a["id"]) == 43
    assert uuid.UUID(bytes_le=base64.urlsafe_b64decode(a["id"] + "=")[:16]) == uuid.UUID(sp["id"])
    assert (a["principalType"], a["resourceDisplayName"], a["appRoleId"]) == \
        ("ServicePrincipal", "Microsoft Graph", SITES_FULLCONTROL_GRAPH)
    r = graph("POST", f"/servicePrincipals/{gsp}/appRoleAssignedTo", body)
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "Request_BadRequest"
    assert r.json()["error"]["message"] == "Permission being assigned already exists on the object."
    r = graph("POST", f"/servicePrincipals/{gsp}/appRoleAssignedTo", dict(body, appRoleId=str(uuid.uuid4())))
    assert r.status_code == 400 and "was not found on application" in r.json()["error"]["message"]
    # The other side of the same relation.
    r = graph("POST", f"/servicePrincipals/{sp['id']}/appRoleAssignments", dict(body, appRoleId=USER_READ_ALL))
    assert r.status_code == 201
    listed = graph("GET", f"/servicePrincipals/{sp['id']}/appRoleAssignments").json()["value"]
    assert sorted(x["appRoleId"] for x in listed) == sorted([SITES_FULLCONTROL_GRAPH, USER_READ_ALL])
    to_graph = graph("GET", f"/servicePrincipals/{gsp}/appRoleAssignedTo?$filter=principalId eq {sp['id']}").json()
    assert len(to_graph["value"]) == 2
    # Consent shows in the app's next token.
    c = claims_of(cca(sim, app["appId"], secret).acquire_token_for_client(GRAPH_DEFAULT)["access_token"])
    assert sorted(c["roles"]) == ["Sites.FullControl.All", "User.Read.All"]
    assert graph("DELETE", f"/servicePrincipals/{sp['id']}/appRoleAssignments/{a['id']}").status_code == 204
    assert [x["appRoleId"] for x in sim.state.assignments_of(sp["id"])] == [USER_READ_ALL]
    # Deleting the application removes its service principal and that SP's assignments.
    assert graph("DELETE", f"/applications/{app['id']}").status_code == 204
    assert sim.state.sp_by_app_id(app["appId"]) is None and sim.state.assignments_of(sp["id"]) == []


# ---- reads: filter, select, paging -----------------------------------------------------

def test_paging_follows_next_link_and_honours_top(sim, graph):
    sim.page_size = 3
    made = [new_app(graph, f"page-app-{i}")["id"] for i in range(7)]
    seen, pages = [], 0
    url = "/applications?$filter=startswith(displayName,'page-app-')&$select=id,displayName"
    while url:
        body = graph("GET", url).json()
        pages += 1
        assert all(set(v) == {"id", "displayName"} for v in body["value"])
        seen += [v["id"] for v in body["value"]]
        url = body.get("@odata.nextLink")
        if url:
            assert url.startswith(f"{sim.graph_endpoint}/v1.0/applications?")
    assert pages == 3 and seen == made
    body = graph("GET", "/applications?$top=2").json()
    assert len(body["value"]) == 2 and "$top=2" in body["@odata.nextLink"]
    second = graph("GET", body["@odata.nextLink"]).json()
    assert len(second["value"]) == 2 and second["value"][0]["id"] not in {v["id"] for v in body["value"]}
    assert graph("GET", "/applications?$top=1000").status_code == 400


def test_filters_and_select_errors(sim, graph):
    a = new_app(graph, "O'Brien tools")
    new_app(graph, "other tool")
    r = graph("GET", "/applications?$filter=displayName eq 'O''Brien tools'")
    assert [v["id"] for v in r.json()["value"]] == [a["id"]]
    r = graph("GET", f"/applications?$filter=appId in ('{a['appId']}', '{uuid.uuid4()}')")
    assert [v["id"] for v in r.json()["value"]] == [a["id"]]
    r = graph("GET", f"/servicePrincipals?$filter=appId eq '{GRAPH_APP_ID}'&$select=id,appId")
    assert r.json()["value"][0]["appId"] == GRAPH_APP_ID
    r = graph("GET", "/applications?$filter=notes eq 'x'")
    assert r.status_code == 400 and r.json()["error"]["code"] == "Request_UnsupportedQuery"
    r = graph("GET", "/applications?$select=id,nope")
    assert r.status_code == 400
    r = graph("GET", "/applications?$expand=owners")
    assert r.status_code == 400


# ---- $batch ----------------------------------------------------------------------------

def test_batch_depends_on_and_per_item_throttling(sim, graph):
    app = new_app(graph)
    sim.faults.add("throttle", method="GET", path=r"/v1.0/servicePrincipals\(appId=", retry_after=7)
    sim.requests.reset()
    reqs = [
        {"id": "1", "method": "POST", "url": "/servicePrincipals", "headers": {"Content-Type": "application/json"},
         "body": {"appId": app["appId"]}},
        {"id": "2", "method": "GET", "url": f"/servicePrincipals?$filter=appId eq '{app['appId']}'", "dependsOn": ["1"]},
        {"id": "3", "method": "GET", "url": f"servicePrincipals(appId='{GRAPH_APP_ID}')?$select=id"},
        {"id": "4", "method": "GET", "url": "/organization", "dependsOn": ["3"]},
        {"id": "5", "method": "PATCH", "url": f"/applications/{app['id']}", "body": {"notes": "n"}},
    ]
    r = graph("POST", "/$batch", {"requests": reqs})
    assert r.status_code == 200
    items = {x["id"]: x for x in r.json()["responses"]}
    assert [x["id"] for x in r.json()["responses"]] == ["1", "2", "3", "4", "5"]
    assert items["1"]["status"] == 201 and items["1"]["body"]["appId"] == app["appId"]
    assert items["2"]["status"] == 200 and items["2"]["body"]["value"][0]["id"] == items["1"]["body"]["id"]
    assert items["3"]["status"] == 429 and items["3"]["headers"]["Retry-After"] == "7"
    assert items["3"]["body"]["error"]["code"] == "TooManyRequests"
    assert items["4"]["status"] == 424
    assert items["5"]["status"] == 400  # a body needs a Content-Type header
    snap = sim.requests.snapshot()
    assert (snap["total"], snap["graph"], snap["writes"], snap["batch"], snap["batch_items"],
            snap["batch_item_writes"]) == (1, 1, 1, 1, 5, 2)
    assert snap["by_route"] == {"POST /v1.0/$batch": 1}
    assert snap["batch_by_route"]["GET /v1.0/servicePrincipals(appId={key})"] == 1
    assert snap["fault_kinds"] == {"throttle": 1}


def test_batch_limits_are_enforced(sim, graph):
    many = [{"id": str(i), "method": "GET", "url": "/organization"} for i in range(21)]
    r = graph("POST", "/$batch", {"requests": many})
    assert r.status_code == 400 and r.json()["error"]["code"] == "BadRequest"
    dup = [{"id": "a", "method": "GET", "url": "/organization"}, {"id": "A", "method": "GET", "url": "/organization"}]
    assert graph("POST", "/$batch", {"requests": dup}).status_code == 400
    assert graph("POST", "/$batch", {"requests": [{"id": "1", "method": "GET", "url": "/me",
                                                   "dependsOn": ["9"]}]}).status_code == 400
    r = graph("POST", "/$batch", {"requests": many[:20]})
    assert r.status_code == 200 and len(r.json()["responses"]) == 20


# ---- faults ----------------------------------------------------------------------------

@pytest.mark.parametrize("kind,status,code,retry_after", [
    ("throttle", 429, "TooManyRequests", "3"),
    ("unavailable", 503, "serviceNotAvailable", "3"),
    ("gateway", 504, "UnknownError", None),
])
def test_status_faults_fire_count_times_then_clear(sim, graph, kind, status, code, retry_after):
    sim.faults.add(kind, method="GET", path=r"^/v1\.0/applications$", count=2, retry_after=3)
    for _ in range(2):
        r = graph("GET", "/applications")
        assert r.status_code == status and r.json()["error"]["code"] == code
        assert r.headers.get("Retry-After") == retry_after
        assert r.json()["error"]["innerError"]["request-id"] == r.headers["request-id"]
    assert graph("GET", "/applications").status_code == 200
    assert graph("POST", "/applications", {"displayName": "unaffected"}).status_code == 201
    assert sim.requests.snapshot()["fault_kinds"] == {kind: 2}
    assert sim.faults.pending == []


def test_drop_closes_connection_without_response(sim, graph):
    sim.faults.add("drop", method="POST", path=r"^/v1\.0/applications$")
    sim.requests.reset()
    with pytest.raises(requests.ConnectionError):
        graph("POST", "/applications", {"displayName": "dropped"})
    assert sim.state.apps_named("dropped") == []
    assert graph("POST", "/applications", {"displayName": "kept"}).status_code == 201
    assert (sim.requests.total, sim.requests.writes, sim.requests.faults) == (2, 2, 1)


def test_latency_delays_then_serves(sim, graph):
    sim.faults.add("latency", method="GET", path=r"/organization$", seconds=0.3)
    reader = sim.add_operator(roles=["Directory.Read.All"])
    g = Graph(sim, graph.http, app_token(sim, reader))
    started = time.monotonic()
    assert g("GET", "/organization").status_code == 200
    assert time.monotonic() - started >= 0.3
    started = time.monotonic()
    assert g("GET", "/organization").status_code == 200
    assert time.monotonic() - started < 0.3


def test_faults_apply_to_the_token_endpoint(sim):
    sim.faults.add("throttle", method="POST", path=r"/oauth2/v2\.0/token$", retry_after=2)
    result = cca(sim, sim.operator.client_id, sim.operator.client_secret).acquire_token_for_client(GRAPH_DEFAULT)
    assert result["error"] == "temporarily_unavailable"
    sim.faults.add("unavailable", method="POST", path=r"/oauth2/v2\.0/token$", retry_after=2)
    with pytest.raises(msal.exceptions.MsalServiceError, match="503"):  # msal raises on 5xx
        cca(sim, sim.operator.client_id, sim.operator.client_secret).acquire_token_for_client(GRAPH_DEFAULT)
    assert sim.requests.token == 2 and sim.requests.snapshot()["fault_kinds"] == {"throttle": 1, "unavailable": 1}


def test_fault_plan_rejects_bad_rules(sim):
    with pytest.raises(ValueError, match="unknown fault kind"):
        sim.faults.add("explode")
    with pytest.raises(ValueError):
        sim.faults.add("lag")
    with pytest.raises(ValueError):
        sim.faults.add("latency")


def test_replication_lag_after_creating_an_application(sim, graph):
    sim.faults.add("lag", method="POST", path=r"^/v1\.0/applications$", requests=3)
    app = new_app(graph)
    r = graph("GET", f"/applications/{app['id']}")
    assert r.status_code == 404 and r.json()["error"]["code"] == "Request_ResourceNotFound"
    r = graph("POST", "/servicePrincipals", {"appId": app["appId"]})
    assert r.status_code == 400 and r.json()["error"]["code"] == "Request_BadRequest"
    assert r.json()["error"]["details"][0]["code"] == "NoBackingApplicationObject"
    assert graph("GET", f"/applications?$filter=appId eq '{app['appId']}'").json()["value"] == []
    assert graph("GET", f"/applications/{app['id']}").status_code == 200  # lag over after 3 lookups
    assert new_sp(graph, app["appId"])["appId"] == app["appId"]


def test_sign_in_fails_while_the_application_has_not_replicated(sim, graph):
    app = new_app(graph)
    secret = graph("POST", f"/applications/{app['id']}/addPassword", {}).json()["secretText"]
    new_sp(graph, app["appId"])
    sim.state.set_lag(app["id"], requests=1)
    result = cca(sim, app["appId"], secret).acquire_token_for_client(GRAPH_DEFAULT)
    assert result["error"] == "unauthorized_client" and result["error_codes"] == [700016]
    assert "access_token" in cca(sim, app["appId"], secret).acquire_token_for_client(GRAPH_DEFAULT)


def test_replication_lag_after_creating_a_service_principal(sim, graph):
    app = new_app(graph)
    sim.faults.add("lag", method="POST", path=r"^/v1\.0/servicePrincipals$", requests=2)
    sp = new_sp(graph, app["appId"])
    gsp = graph_sp_id(sim)
    body = {"principalId": sp["id"], "resourceId": gsp, "appRoleId": SITES_FULLCONTROL_GRAPH}
    r = graph("POST", f"/servicePrincipals/{gsp}/appRoleAssignedTo", body)
    assert r.status_code == 400 and r.json()["error"]["message"] == "Not a valid reference update."
    r = graph("POST", f"/servicePrincipals/{sp['id']}/appRoleAssignments", body)
    assert r.status_code == 404 and r.json()["error"]["code"] == "Request_ResourceNotFound"
    assert graph("POST", f"/servicePrincipals/{gsp}/appRoleAssignedTo", body).status_code == 201


def test_replication_lag_by_time(sim, graph):
    sim.faults.add("lag", method="PATCH", path=r"applications\(uniqueName=", seconds=0.4)
    r = graph("PATCH", "/applications(uniqueName='lagged')", {"displayName": "lagged"},
              headers={"Prefer": "create-if-missing"})
    assert r.status_code == 201
    assert graph("GET", f"/applications/{r.json()['id']}").status_code == 404
    assert graph("GET", f"/applications/{r.json()['id']}").status_code == 404
    time.sleep(0.45)
    assert graph("GET", f"/applications/{r.json()['id']}").status_code == 200


# ---- counting and server life cycle ----------------------------------------------------

def test_request_counter_is_exact_and_thread_safe(sim, graph):
    sim.requests.reset()
    app = new_app(graph)
    graph("GET", f"/applications/{app['id']}")
    graph("PATCH", f"/applications/{app['id']}", {"notes": "x"})
    graph("GET", "/applications/not-a-guid")
    graph("DELETE", f"/applications/{app['id']}")
    assert sim.requests.by_route() == {"POST /v1.0/applications": 1, "GET /v1.0/applications/{id}": 1,
                                       "PATCH /v1.0/applications/{id}": 1,
                                       "GET /v1.0/applications/not-a-guid": 1,
                                       "DELETE /v1.0/applications/{id}": 1}
    assert (sim.requests.total, sim.requests.writes, sim.requests.token) == (5, 3, 0)
    sim.requests.reset()

    def worker():
        with CASession(sim.ca_bundle) as s:
            for _ in range(5):
                Graph(sim, s, graph.token)("GET", "/applications?$top=1")

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sim.requests.total == 20 and sim.requests.by_route() == {"GET /v1.0/applications": 20}
    snap = sim.requests.snapshot()
    sim.requests.reset()
    assert snap["total"] == 20 and sim.requests.total == 0 and sim.requests.by_route() == {}


def test_stop_is_prompt_with_idle_and_stalled_connections(tls):
    sim = TenantSimulator(tls=tls, io_timeout=30).start()
    port = sim.port
    stalled = socket.create_connection(("127.0.0.1", port))  # never sends a TLS hello
    idle = CASession(sim.ca_bundle)
    assert idle.get(f"{sim.authority}/v2.0/.well-known/openid-configuration").status_code == 200  # keep-alive
    # The stalled client does not block other clients.
    assert idle.get(f"{sim.authority}/discovery/v2.0/keys").status_code == 200
    started = time.monotonic()
    sim.stop()
    assert time.monotonic() - started < 1.5
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1)
    stalled.close()
    idle.close()


def test_serve_prints_where_to_connect_and_keeps_the_secret_in_a_private_file(tmp_path):
    lines: list[str] = []
    stop = threading.Event()
    secret_file = tmp_path / "op.secret"
    t = threading.Thread(target=serve, kwargs={"port": 0, "secret_file": secret_file, "tls_dir": tmp_path / "tls",
                                               "out": lines.append, "stop_event": stop})
    t.start()
    deadline = time.monotonic() + 10
    while not any("press Ctrl-C" in x for x in lines) and time.monotonic() < deadline:
        time.sleep(0.02)
    text = "\n".join(lines)
    secret = secret_file.read_text().strip()
    assert stat.S_IMODE(os.stat(secret_file).st_mode) == 0o600 and len(secret) == 40
    assert secret not in text and str(secret_file) in text
    assert "authority:" in text and "CA bundle:" in text and str(tmp_path / "tls" / "ca.pem") in text
    stop.set()
    t.join(timeout=5)
    assert not t.is_alive() and lines[-1] == "tenant simulator stopped"
