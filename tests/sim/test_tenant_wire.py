"""The tenant simulator answers like the real services on the wire: Graph's /myorganization
prefix, absolute URLs under the host name the client used (a resolver override stands in
for a hosts entry), a listen backlog that parallel clients do not overflow, latency per HTTP
request and per $batch item, AADSTS65001 for delegated sign-in without consent, the 403
"local tenant" form of replication lag, read timeouts, the control endpoint, sequential
round trips, and no private key left behind on stop. Real msal and requests throughout."""

from __future__ import annotations

import socket
import threading
import time

import msal
import pytest
import requests

from runner.sim.host import HostSimulator
from runner.sim.tenant import TenantSimulator
from runner.sim.tenant_faults import parse_fault_spec
from runner.sim.tenant_http import TenantHTTPServer
from runner.sim.wsman_server import Listener

from .tenant_helpers import GRAPH_DEFAULT, CASession, Graph, app_token, new_app

PUBLIC = ("graph.microsoft.com", "login.microsoftonline.com")


@pytest.fixture
def graph(sim):
    with CASession(sim.ca_bundle) as http:
        yield Graph(sim, http, app_token(sim))


# ---- /myorganization -------------------------------------------------------------------

def test_myorganization_prefix_is_accepted_and_counted_as_the_plain_route(sim, graph):
    app = new_app(graph)
    sim.requests.reset()
    r = graph("GET", f"/myorganization/applications/{app['id']}")
    assert r.status_code == 200 and r.json()["id"] == app["id"]
    batch = graph("POST", "/$batch", {"requests": [
        {"id": "1", "method": "GET", "url": f"/myorganization/applications(appId='{app['appId']}')"}]})
    assert batch.json()["responses"][0]["status"] == 200
    assert sim.requests.by_route(include_batch_items=True) == {
        "GET /v1.0/applications/{id}": 1, "POST /v1.0/$batch": 1, "GET /v1.0/applications(appId={key})": 1}


# ---- public host names -----------------------------------------------------------------

@pytest.fixture
def public_sim(monkeypatch):
    """A simulator whose certificate also names graph.microsoft.com and
    login.microsoftonline.com, and a resolver that maps both to loopback."""
    real = socket.getaddrinfo

    def resolve(host, *args, **kw):
        return real("127.0.0.1" if str(host).lower() in (*PUBLIC, "outside.example") else host, *args, **kw)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    s = TenantSimulator(public_names=PUBLIC, page_size=2).start()
    yield s
    s.stop()


def test_under_public_names_absolute_urls_use_the_name_the_client_used(public_sim):
    sim = public_sim
    login, graph_base = sim.public_url("login.microsoftonline.com"), sim.public_url("graph.microsoft.com")
    http = CASession(sim.ca_bundle)
    conf = http.get(f"{login}/{sim.tenant_id}/v2.0/.well-known/openid-configuration").json()
    assert conf["token_endpoint"] == f"{login}/{sim.tenant_id}/oauth2/v2.0/token"
    assert conf["authorization_endpoint"].startswith(login + "/") and conf["jwks_uri"].startswith(login + "/")
    app = msal.ConfidentialClientApplication(sim.operator.client_id, client_credential=sim.operator.client_secret,
                                             authority=f"{login}/{sim.tenant_id}", instance_discovery=False,
                                             http_client=http)
    token = app.acquire_token_for_client(GRAPH_DEFAULT)["access_token"]
    first = http.get(f"{graph_base}/v1.0/servicePrincipals", headers={"Authorization": f"Bearer {token}"}).json()
    assert first["@odata.context"] == f"{graph_base}/v1.0/$metadata#servicePrincipals"
    assert first["@odata.nextLink"].startswith(f"{graph_base}/v1.0/servicePrincipals?")
    second = http.get(first["@odata.nextLink"], headers={"Authorization": f"Bearer {token}"})
    assert second.status_code == 200 and second.json()["value"][0]["id"] != first["value"][0]["id"]
    # The same simulator still answers under localhost, and a name its certificate does not
    # cover never reaches an answer.
    local = http.get(f"{sim.base_url}/v1.0/servicePrincipals", headers={"Authorization": f"Bearer {token}"})
    assert local.json()["@odata.nextLink"].startswith(f"{sim.base_url}/v1.0/")
    forged = http.get(f"{sim.base_url}/v1.0/servicePrincipals",
                      headers={"Authorization": f"Bearer {token}", "Host": "evil.example"})
    assert forged.json()["@odata.nextLink"].startswith(f"{sim.base_url}/v1.0/")


def test_a_name_outside_the_certificate_fails_tls_verification(public_sim):
    with pytest.raises(requests.exceptions.SSLError):
        CASession(public_sim.ca_bundle).get(f"https://outside.example:{public_sim.port}/common/discovery/instance")


# ---- listen backlog --------------------------------------------------------------------

def _gate_accepts(monkeypatch, cls, name):
    """Hold the server's accept loop until the event is set, so connections queue."""
    gate, real = threading.Event(), getattr(cls, name)

    def held(self, *args, **kw):
        gate.wait(10)
        return real(self, *args, **kw)

    monkeypatch.setattr(cls, name, held)
    return gate


@pytest.mark.parametrize("which", ["tenant", "wsman"])
def test_a_hundred_clients_connecting_at_once_are_all_queued(monkeypatch, tls, which):
    if which == "tenant":
        gate = _gate_accepts(monkeypatch, TenantHTTPServer, "get_request")
        server = TenantSimulator(tls=tls).start()
    else:
        gate = _gate_accepts(monkeypatch, Listener, "_accept_loop")
        server = HostSimulator(tls=tls).start()
    socks = []
    try:
        for _ in range(100):  # a SYN beyond the backlog is dropped: connect() would time out
            socks.append(socket.create_connection(("127.0.0.1", server.port), timeout=0.5))
    finally:
        gate.set()
        for s in socks:
            s.close()
        server.stop()
    assert len(socks) == 100


# ---- latency ---------------------------------------------------------------------------

def test_latency_holds_each_http_request_once_and_item_latency_each_batch_item(sim, graph):
    app = new_app(graph)
    sim.requests.reset()
    sim.set_latency(0.01, per_item=0.01)
    items = [{"id": str(i), "method": "GET", "url": f"/applications/{app['id']}"} for i in range(3)]
    assert graph("POST", "/$batch", {"requests": items}).status_code == 200
    assert graph("GET", f"/applications/{app['id']}").status_code == 200
    assert sim.requests.snapshot()["fault_kinds"] == {"latency": 2, "item-latency": 3}
    sim.set_latency(0)
    sim.requests.reset()
    graph("GET", f"/applications/{app['id']}")
    assert sim.requests.faults == 0


# ---- consent ---------------------------------------------------------------------------

def _device_flow(sim, scopes):
    pca = msal.PublicClientApplication(sim.public_client_id, authority=sim.authority, instance_discovery=False,
                                       http_client=CASession(sim.ca_bundle))
    return pca, pca.acquire_token_by_device_flow(pca.initiate_device_flow(scopes=scopes))


def test_delegated_sign_in_without_consent_is_aadsts65001_consent_required(sim):
    sim.set_device_user(scopes=["Application.ReadWrite.All"])
    _, result = _device_flow(sim, ["https://graph.microsoft.com/AppRoleAssignment.ReadWrite.All"])
    assert result["error"] == "invalid_grant" and result["error_codes"] == [65001]
    assert result["suberror"] == "consent_required"
    assert f"application with ID '{sim.public_client_id}' named 'Microsoft Graph Command Line Tools'" \
        in result["error_description"]
    sim.set_device_user(scopes=[])
    _, result = _device_flow(sim, GRAPH_DEFAULT)  # .default with nothing consented
    assert result["error_codes"] == [65001]


def test_refresh_after_consent_was_revoked_is_consent_required(sim):
    pca, result = _device_flow(sim, ["https://graph.microsoft.com/Application.ReadWrite.All"])
    assert "access_token" in result
    sim.set_device_user(scopes=["User.Read"])
    again = pca.acquire_token_silent_with_error(["https://graph.microsoft.com/Application.ReadWrite.All"],
                                                account=pca.get_accounts()[0], force_refresh=True)
    assert again["error"] == "invalid_grant" and again["error_codes"] == [65001]


# ---- replication lag: the 403 "local tenant" variant -----------------------------------

def test_lag_local_tenant_refuses_app_only_service_principal_creation_with_403_then_converges(sim, graph):
    sim.faults.add("lag-local-tenant", method="POST", path=r"^/v1\.0/applications$", requests=2)
    app = new_app(graph)
    r = graph("POST", "/servicePrincipals", {"appId": app["appId"]})
    assert r.status_code == 403 and r.json()["error"]["code"] == "Authorization_RequestDenied"
    assert r.json()["error"]["message"] == ("When using this permission, the backing application of the service "
                                            "principal being created must in the local tenant")
    r = graph("PATCH", f"/servicePrincipals(appId='{app['appId']}')", {}, headers={"Prefer": "create-if-missing"})
    assert r.status_code == 403
    assert graph("POST", "/servicePrincipals", {"appId": app["appId"]}).status_code == 201
    assert sim.requests.snapshot()["fault_kinds"] == {"lag-local-tenant": 1}


def test_lag_local_tenant_shows_as_no_backing_application_to_a_delegated_caller(sim):
    sim.faults.add("lag-local-tenant", method="POST", path=r"^/v1\.0/applications$", requests=1)
    with CASession(sim.ca_bundle) as http:
        g = Graph(sim, http, sim.mint_access_token(scopes=["Application.ReadWrite.All"]))
        app = new_app(g)
        r = g("POST", "/servicePrincipals", {"appId": app["appId"]})
    assert r.status_code == 400 and r.json()["error"]["details"][0]["code"] == "NoBackingApplicationObject"


# ---- read timeout ----------------------------------------------------------------------

def test_read_timeout_hangs_past_the_client_then_applies_the_write(sim, graph):
    sim.faults.add("read-timeout", method="POST", path=r"^/v1\.0/applications$", seconds=0.5)
    with pytest.raises(requests.exceptions.ReadTimeout):
        graph("POST", "/applications", {"displayName": "late"}, timeout=(5, 0.2))
    assert sim.state.apps_named("late") == []
    deadline = time.monotonic() + 5
    while not sim.state.apps_named("late") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(sim.state.apps_named("late")) == 1
    assert sim.requests.snapshot()["fault_kinds"] == {"read-timeout": 1}


# ---- round trips -----------------------------------------------------------------------

def test_round_trips_count_sequential_requests_and_merge_concurrent_ones(sim, graph):
    app = new_app(graph)
    sim.set_latency(0.05)
    sim.requests.reset()
    for _ in range(3):
        graph("GET", f"/applications/{app['id']}")
    assert sim.requests.round_trips() == 3
    sim.set_latency(0.3)  # wide enough that four new TLS connections overlap on a busy machine
    mark = sim.requests.snapshot()["clock"]
    barrier = threading.Barrier(4)

    def one():
        with CASession(sim.ca_bundle) as http:
            barrier.wait()
            Graph(sim, http, graph.token)("GET", f"/applications/{app['id']}")

    threads = [threading.Thread(target=one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    graph("GET", f"/applications/{app['id']}")
    assert sim.requests.round_trips(since=mark) == 2      # four at once, then one
    snap = sim.requests.snapshot()
    assert snap["total"] == 8 and snap["round_trips"] == 5


# ---- control endpoint ------------------------------------------------------------------

def test_control_endpoint_arms_lists_and_clears_faults_and_is_never_counted(sim, graph):
    http = graph.http
    control = f"{sim.base_url}/_sim"
    sim.requests.reset()
    r = http.post(f"{control}/faults", data="# an outage\n503=7:GET:/v1\\.0/applications$:2\nlatency=0.01:*:.*:*\n")
    assert r.status_code == 201 and [f["kind"] for f in r.json()["added"]] == ["unavailable", "latency"]
    answered = graph("GET", "/applications")
    assert answered.status_code == 503 and answered.headers["Retry-After"] == "7"
    listed = http.get(f"{control}/faults").json()["faults"]
    assert listed[0] == {"kind": "unavailable", "method": "GET", "path": "/v1\\.0/applications$", "count": 2,
                         "fired": 1, "retry_after": 7}
    bad = http.post(f"{control}/faults", json={"faults": ["latency=0.01:*:.*", "429:FETCH:/x"]})
    assert bad.status_code == 400 and "FETCH" in bad.json()["error"]
    assert len(http.get(f"{control}/faults").json()["faults"]) == 2   # nothing of a refused body armed
    assert http.delete(f"{control}/faults").status_code == 204
    counts = http.get(f"{control}/requests").json()["tenant"]
    assert counts["total"] == 1 and counts["fault_kinds"] == {"latency": 1, "unavailable": 1}
    assert http.delete(f"{control}/requests").status_code == 204
    assert http.get(f"{control}/requests").json()["tenant"]["total"] == 0
    assert http.get(f"{control}/nothing").status_code == 404


@pytest.mark.parametrize("spec,expected", [
    ("429:GET:/v1\\.0/applications$", {"kind": "throttle", "method": "GET", "path": "/v1\\.0/applications$",
                                      "count": 1}),
    ("429=0:get:/servicePrincipals:3", {"kind": "throttle", "method": "GET", "path": "/servicePrincipals",
                                        "count": 3, "retry_after": 0}),
    ("reset-before:POST:/addPassword$:*", {"kind": "drop", "method": "POST", "path": "/addPassword$", "count": None}),
    ("read-timeout=2.5:POST:.*", {"kind": "read-timeout", "method": "POST", "path": ".*", "count": 1,
                                  "seconds": 2.5}),
    ("lag-403:POST:/v1\\.0/applications$", {"kind": "lag-local-tenant", "method": "POST",
                                            "path": "/v1\\.0/applications$", "count": 1, "requests": 3}),
    ("lag=1.5s:PATCH:applications\\(uniqueName=", {"kind": "lag", "method": "PATCH",
                                                    "path": "applications\\(uniqueName=", "count": 1,
                                                    "seconds": 1.5}),
    ("drop-after:*:/token:with:colons:2", {"kind": "drop-after", "method": "*", "path": "/token:with:colons",
                                           "count": 2}),
])
def test_fault_specs_parse(spec, expected):
    assert parse_fault_spec(spec) == expected


@pytest.mark.parametrize("spec,says", [
    ("429", "expected KIND[=VALUE]:METHOD:PATH[:COUNT]"),
    ("teapot:GET:.*", "unknown KIND 'teapot'"),
    ("429:FETCH:.*", "METHOD 'FETCH'"),
    ("429:GET:(", "is not a regular expression"),
    ("429:GET:.*:0", "COUNT must be 1 or more"),
    ("latency:GET:.*", "latency needs its delay in seconds"),
    ("latency=fast:GET:.*", "latency=fast: VALUE must be seconds"),
    ("latency=nan:GET:.*", "VALUE must be seconds"),
    ("drop-after=3:GET:.*", "drop-after takes no =VALUE"),
    ("lag=0:POST:.*", "VALUE must be lookups"),
])
def test_bad_fault_specs_say_what_is_wrong(spec, says):
    with pytest.raises(ValueError) as ei:
        parse_fault_spec(spec)
    assert says in str(ei.value)


# ---- life cycle ------------------------------------------------------------------------

def test_stop_removes_the_tls_folder_the_simulator_made_and_keeps_one_it_was_given(tls):
    own = TenantSimulator().start()
    folder = own.tls.directory
    assert (folder / "server.key").exists() and folder.name.startswith("psrunner-sim-tls-")
    own.stop()
    assert not folder.exists()
    with pytest.raises(RuntimeError, match="make a new one"):
        own.start()
    given = TenantSimulator(tls=tls).start()
    given.stop()
    assert tls.key_file.exists()

