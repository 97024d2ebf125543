"""The Graph stage kinds against the tenant simulator, through the real msal and requests.

What is asserted is what the tenant ends up holding (read from the simulator's state) and
what crossed the wire (the simulator's request counter): one app, one service principal, 46
app role assignments, one secret, whatever faults were injected along the way."""

from __future__ import annotations

import datetime as _dt
import json
import logging
import stat
import threading
import time
from pathlib import Path

import pytest

from runner.errors import AuthError, GraphError, InputError, Interrupted
from runner.graph.certs import load_certificate
from runner.results import Status
from runner.secrets import Secret
from runner.stages import entra as g

from ..stage_context import runbook_notices
from .graph_harness import ONBOARDING_SITES, UNIQUE, StageCtx, assert_converged, connect, onboard, tenant_view

# --------------------------------------------------------------------------- harness

# --------------------------------------------------------------------------- the main path

def test_fresh_tenant_then_converged_rerun(sim, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    conn = connect(sim, tmp_path)
    sim.requests.reset()
    first = onboard(conn, tmp_path)
    fresh = sim.requests.snapshot()
    conn.close()
    assert [o.changed for o in first.values()] == [False, True, True, True, True]
    assert all(o.status in (None, Status.OK, Status.CHANGED) for o in first.values())
    view = assert_converged(sim)
    app = view["app"]
    assert first["application"].outputs["app_id"] == app["appId"]
    assert first["application"].outputs["object_id"] == app["id"]
    assert first["service_principal"].outputs["sp_id"] == view["sp"]["id"]
    assert first["consent"].outputs["granted"] == 46 and first["consent"].outputs["missing"] == []
    assert {p["state"] for p in first["consent"].outputs["permissions"]} == {"added"}
    assert first["preflight"].outputs["tenant_id"] == sim.tenant_id
    assert first["preflight"].outputs["sign_in"] == "app-only"

    # the secret: in a 0600 file, valid for the app, never in outputs, messages, events or logs
    sec = first["client_secret"].outputs
    path = Path(sec["secret_file"])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    value = path.read_text()
    assert sim.state.check_secret(app, value)
    blob = json.dumps([o.__dict__ for o in first.values()], default=str)
    assert value not in blob
    logs = "\n".join(r.getMessage() for r in caplog.records)
    assert value not in logs and sim.operator.client_secret not in logs
    assert conn.tokens._token and conn.tokens._token not in logs
    assert sec["key_id"] == app["passwordCredentials"][0]["keyId"] and sec["expires"]

    # request economy: fresh onboarding within 9 requests, including sign-in; the first reads
    # in one $batch with the tenant's app management policy (the secret's limits), the 46
    # grants in three
    assert fresh["total"] <= 9, fresh["by_route"]
    assert fresh["batch_by_route"]["GET /v1.0/policies/defaultAppManagementPolicy"] == 1
    assert fresh["batch"] == 4 and fresh["batch_item_writes"] == 46

    conn2 = connect(sim, tmp_path)
    sim.requests.reset()
    second = onboard(conn2, tmp_path)
    again = sim.requests.snapshot()
    assert [o.changed for o in second.values()] == [False] * 5
    assert all(o.status is None for o in second.values())
    # the ids the first run left: a token, then one $batch of reads
    assert again["writes"] == 0 and again["batch_item_writes"] == 0
    assert again["total"] == 2 and again["batch"] == 1, again["by_route"]
    assert second["client_secret"].outputs["secret_file"] == str(path)
    assert second["consent"].outputs["granted"] == 46
    assert conn2.metrics() == {"graph_requests": again["graph"] + again["login"], "graph_writes": 0, "graph_write_operations": 0,
                               "graph_token_requests": again["login"]}
    assert_converged(sim)


def test_plan_on_a_fresh_tenant_reports_everything_and_writes_nothing(sim, tmp_path):
    conn = connect(sim, tmp_path)
    sim.requests.reset()
    plan = onboard(conn, tmp_path, apply=False)
    assert sim.requests.writes == 0
    assert [o.changed for o in plan.values()] == [False, True, True, True, True]
    assert "would create application" in plan["application"].messages[0]
    assert plan["consent"].outputs["permissions"][0]["state"] == "would-grant"
    assert tenant_view(sim)["apps"] == 0
    assert sim.requests.total <= 5


def test_preflight_warns_with_the_runbooks_notices_for_the_profile(sim, tmp_path):
    """The notice text lives once, in the runbook; preflight names the notices by id."""
    notices = {n["id"]: n for n in runbook_notices()}
    out = onboard(connect(sim, tmp_path), tmp_path, apply=False, stages=("preflight",))["preflight"]
    for nid in ("ews-off", "spo-app-only-certificate"):
        n = notices[nid]
        assert f"{n['date']}: {n['says']} Instead: {n['instead']}" in out.warnings
    ctx = StageCtx(connect(sim, tmp_path), tmp_path, apply=False)
    ctx.notices = []                  # a runbook that declares none gets none
    assert not any("EWS" in w for w in g.preflight(ctx, {"profile": "m365-backup"}).warnings)


def test_leaving_the_connector_closes_its_connections(sim, tmp_path):
    with connect(sim, tmp_path) as conn:
        conn.client.get("/servicePrincipals", allow=(403,))
        pools = conn.graph_http.get_adapter(sim.graph_endpoint).poolmanager.pools
        assert len(pools) == 1
    assert len(pools) == 0


def test_plan_after_onboarding_shows_nothing_to_do(sim, tmp_path):
    onboard(connect(sim, tmp_path), tmp_path)
    sim.requests.reset()
    plan = onboard(connect(sim, tmp_path), tmp_path, apply=False)
    assert [o.changed for o in plan.values()] == [False] * 5 and sim.requests.writes == 0


def test_drift_is_repaired_and_extras_are_reported(sim, tmp_path):
    onboard(connect(sim, tmp_path), tmp_path)
    v = tenant_view(sim)
    app, sp = v["app"], v["sp"]
    with sim.state.lock:
        graph = app["requiredResourceAccess"][0]
        removed = graph["resourceAccess"].pop(0)
        graph["resourceAccess"].append({"id": "1bfefb4e-e0b5-418b-a88f-73c46d2cc8e9", "type": "Role"})
        gone = [a for a in list(sim.state.app_role_assignments.values()) if a["principalId"] == sp["id"]][:5]
        for a in gone:
            del sim.state.app_role_assignments[a["id"]]
    out = onboard(connect(sim, tmp_path), tmp_path)
    assert out["application"].changed and "added 1 permission(s)" in out["application"].messages[0]
    assert out["application"].outputs["extras"] == ["Microsoft Graph: Application.ReadWrite.All"]
    assert any("not in the profile" in w for w in out["application"].warnings)
    assert out["consent"].outputs["added"] == 5 and out["consent"].outputs["granted"] == 46
    app = tenant_view(sim)["app"]
    ids = {a["id"] for e in app["requiredResourceAccess"] for a in e["resourceAccess"]}
    assert removed["id"] in ids and "1bfefb4e-e0b5-418b-a88f-73c46d2cc8e9" in ids
    out = onboard(connect(sim, tmp_path), tmp_path, stages=("application",),
                  application={"remove_extras": True})
    assert out["application"].changed and "removed 1 permission(s)" in out["application"].messages[-1]
    app = tenant_view(sim)["app"]
    assert "1bfefb4e-e0b5-418b-a88f-73c46d2cc8e9" not in {a["id"] for e in app["requiredResourceAccess"]
                                                          for a in e["resourceAccess"]}
    assert_converged(sim)


def test_a_secret_near_expiry_is_renewed_once_and_handing_it_over_is_a_persons_chore(sim, tmp_path):
    onboard(connect(sim, tmp_path), tmp_path)
    app = tenant_view(sim)["app"]
    old_id = app["passwordCredentials"][0]["keyId"]
    soon = (_dt.datetime.now(_dt.timezone.utc) + _dt.timedelta(days=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    with sim.state.lock:
        app["passwordCredentials"][0]["endDateTime"] = soon
    plan = onboard(connect(sim, tmp_path), tmp_path, apply=False)["client_secret"]
    assert plan.messages[-1] == f"then the backup product needs the new secret: the old one expires {soon}"
    out = onboard(connect(sim, tmp_path), tmp_path)["client_secret"]
    assert out.changed and out.status == Status.ACTION_REQUIRED
    new_file = out.outputs["secret_file"]
    assert out.action["steps"] == [
        f"Enter the new client secret from {new_file} in the backup product.",
        f"The old client secret ({old_id}) stays valid until {soon}; once the product uses the new one, remove the "
        "old one from the application (Entra admin center: App registrations, Certificates & secrets), or let it "
        "expire."]
    assert_converged(sim, secrets=2)
    # Until the old secret is gone the product may still use it: the chore stays, nothing is made again.
    out = onboard(connect(sim, tmp_path), tmp_path)["client_secret"]
    assert not out.changed and out.status == Status.ACTION_REQUIRED and out.outputs["secret_file"] == new_file
    assert_converged(sim, secrets=2)
    with sim.state.lock:
        sim.state.remove_password(app, old_id)
    out = onboard(connect(sim, tmp_path), tmp_path)["client_secret"]
    assert not out.changed and out.status is None and out.action is None


# --------------------------------------------------------------------------- faults
# A fault that passes, at every call site: test_fault_matrix.py. Here: lasting faults, $batch
# items, Retry-After, lag budgets, interrupts and deadlines.

LASTING = {"app-upsert": "PATCH /v1.0/applications(uniqueName={key})",
           "sp-upsert": "PATCH /v1.0/servicePrincipals(appId={key})", "batch": "POST /v1.0/$batch",
           "batch-item": "POST /v1.0/servicePrincipals/{id}/appRoleAssignedTo",
           "add-password": "POST /v1.0/applications/{id}/addPassword"}


@pytest.mark.parametrize("site", list(LASTING))
@pytest.mark.parametrize("kind", ["throttle", "drop"])
def test_a_lasting_fault_fails_clearly_and_a_rerun_converges(sim, tmp_path, site, kind):
    method, path = ONBOARDING_SITES[LASTING[site]]
    sim.faults.add(kind, method=method, path=path, count=None, retry_after=0)
    conn = connect(sim, tmp_path, max_attempts=3)
    with pytest.raises(GraphError) as ei:
        onboard(conn, tmp_path)
    e = ei.value
    assert "re-run" in (e.hint or "")
    if kind == "throttle":
        assert e.status == 429 and e.code == "TooManyRequests" and e.request_id
    sim.faults.clear()
    onboard(connect(sim, tmp_path), tmp_path)
    assert_converged(sim)


def test_batch_item_throttling_is_retried_per_item(sim, tmp_path):
    sim.faults.add("throttle", method="POST", path=r"/appRoleAssignedTo$", count=7, retry_after=0)
    out = onboard(connect(sim, tmp_path), tmp_path)
    assert out["consent"].outputs["added"] == 46
    snap = sim.requests.snapshot()
    assert snap["batch_item_writes"] == 46 + 7
    assert_converged(sim)


def test_retry_after_is_honoured(sim, tmp_path):
    sim.faults.add("throttle", method="GET", path=r"/v1\.0/applications\(uniqueName=", count=1, retry_after=1)
    conn = connect(sim, tmp_path)
    ctx = StageCtx(conn, tmp_path, apply=False)
    g.preflight(ctx, {})
    t0 = time.monotonic()
    g.application(ctx, {"display_name": "x", "unique_name": UNIQUE})
    assert time.monotonic() - t0 >= 0.95


@pytest.mark.parametrize("kind,target,expect", [
    ("lag", ("PATCH", r"/v1\.0/applications\(uniqueName="), "NoBackingApplicationObject"),
    ("lag", ("PATCH", r"/v1\.0/servicePrincipals\(appId="), "Not a valid reference update"),
    # An app-only caller meets the same lag as 403 "must in the local tenant" (Graph's wording)
    ("lag-local-tenant", ("PATCH", r"/v1\.0/applications\(uniqueName="), "local tenant"),
])
def test_replication_lag_after_create_is_waited_out(sim, tmp_path, kind, target, expect):
    method, path = target
    sim.faults.add(kind, method=method, path=path, requests=4)
    conn = connect(sim, tmp_path)
    out = onboard(conn, tmp_path)
    assert all(o.status is None for o in out.values())
    assert_converged(sim)
    assert sim.requests.snapshot()["fault_kinds"] == {kind: 1}


def test_lag_beyond_the_budget_fails_clearly_and_a_rerun_converges(sim, tmp_path):
    sim.faults.add("lag", method="PATCH", path=r"/v1\.0/applications\(uniqueName=", seconds=1.5)
    conn = connect(sim, tmp_path, lag_budget=0.3)
    with pytest.raises(GraphError) as ei:
        onboard(conn, tmp_path)
    assert "not replicated" in ei.value.hint
    assert tenant_view(sim)["apps"] == 1 and tenant_view(sim)["sps"] == 0
    time.sleep(1.6)
    onboard(connect(sim, tmp_path), tmp_path)
    assert_converged(sim)


def test_interrupt_stops_a_throttle_wait(sim, tmp_path):
    sim.faults.add("throttle", method="GET", path=r"/v1\.0/applications\(uniqueName=", count=None, retry_after=30)
    conn = connect(sim, tmp_path, retry_after_cap=30)
    ctx = StageCtx(conn, tmp_path, apply=True)
    g.preflight(ctx, {})
    threading.Timer(0.3, conn.interrupt).start()
    t0 = time.monotonic()
    with pytest.raises(Interrupted):
        g.application(ctx, {"display_name": "x", "unique_name": UNIQUE})
    assert time.monotonic() - t0 < 5
    assert sim.requests.writes == 0


def test_stage_deadline_bounds_retry_waits(sim, tmp_path):
    sim.faults.add("throttle", method="GET", path=r"/v1\.0/applications\(uniqueName=", count=None, retry_after=30)
    conn = connect(sim, tmp_path, retry_after_cap=30)
    ctx = StageCtx(conn, tmp_path, apply=True, deadline=time.monotonic() + 2)
    t0 = time.monotonic()
    with pytest.raises(GraphError) as ei:
        g.application(ctx, {"display_name": "x", "unique_name": UNIQUE})
    assert ei.value.status == 429 and time.monotonic() - t0 < 3


# --------------------------------------------------------------------------- sign-in and rights

def test_wrong_secret_is_an_auth_error_naming_the_code_not_the_secret(sim, tmp_path):
    wrong = "Wr0ng~Secret.Value-for_test"
    conn = connect(sim, tmp_path, client_secret=Secret(wrong))
    with pytest.raises(AuthError) as ei:
        onboard(conn, tmp_path)
    e = ei.value
    assert e.exit_code == 2 and "AADSTS7000215" in str(e) and "client secret is wrong" in e.hint
    assert wrong not in str(e) and wrong not in json.dumps(e.to_dict())
    assert sim.requests.writes == 0 and sim.requests.graph == 0


def test_operator_without_consent_right_stops_before_any_write(sim, tmp_path):
    op = sim.add_operator(roles=("Application.ReadWrite.All",))
    conn = connect(sim, tmp_path, client_id=op.client_id, client_secret=Secret(op.client_secret))
    with pytest.raises(AuthError) as ei:
        onboard(conn, tmp_path)
    assert ei.value.missing == ["application permission AppRoleAssignment.ReadWrite.All (roles)"]
    assert "AppRoleAssignment.ReadWrite.All" in str(ei.value)
    assert sim.requests.writes == 0


def test_without_preflight_no_write_happens_without_the_right(sim, tmp_path):
    op = sim.add_operator(roles=("Application.Read.All",))
    conn = connect(sim, tmp_path, client_id=op.client_id, client_secret=Secret(op.client_secret))
    with pytest.raises(AuthError) as ei:
        onboard(conn, tmp_path, stages=("application",))
    assert "Application.ReadWrite.All" in str(ei.value)
    assert sim.requests.writes == 0 and sim.requests.graph >= 1


def test_consent_checks_its_right_before_granting(sim, tmp_path):
    op = sim.add_operator(roles=("Application.ReadWrite.All",))
    conn = connect(sim, tmp_path, client_id=op.client_id, client_secret=Secret(op.client_secret))
    with pytest.raises(AuthError):
        onboard(conn, tmp_path, stages=("application", "service_principal", "consent"))
    assert sim.requests.snapshot()["batch_item_writes"] == 0
    assert tenant_view(sim)["assignments"] == 0


def device_settings(sim, tmp_path):
    return {"auth": "device-code", "client_id": None, "client_secret": None,
            "token_cache": str(tmp_path / "cache" / "msal.json")}


def test_device_code_sign_in_prompts_on_stderr_caches_and_is_silent_next_time(sim, tmp_path, capsys):
    sim.set_device_user(upn="admin@" + sim.tenant_domain)
    conn = connect(sim, tmp_path, interactive=True, **device_settings(sim, tmp_path))
    out = onboard(conn, tmp_path, stages=("preflight",))
    conn.close()
    err = capsys.readouterr()
    assert "enter the code" in err.err.lower() or "code" in err.err.lower()
    assert err.out == ""
    assert out["preflight"].outputs["sign_in"] == "delegated"
    assert out["preflight"].outputs["identity"] == "admin@" + sim.tenant_domain
    assert "Global Administrator" in out["preflight"].outputs["rights"]["directory_roles"]
    cache = tmp_path / "cache" / "msal.json"
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    assert "refresh_token" in cache.read_text().lower() or "RefreshToken" in cache.read_text()

    sim.requests.reset()
    conn2 = connect(sim, tmp_path, interactive=False, **device_settings(sim, tmp_path))
    onboard(conn2, tmp_path, stages=("preflight",))
    routes = sim.requests.by_route()
    assert not any("devicecode" in r for r in routes), routes
    assert capsys.readouterr().err == ""


def test_device_code_without_a_terminal_or_cache_says_what_to_do(sim, tmp_path):
    conn = connect(sim, tmp_path, interactive=False, **device_settings(sim, tmp_path))
    sim.requests.reset()
    with pytest.raises(AuthError) as ei:
        onboard(conn, tmp_path, stages=("preflight",))
    assert "certificate" in ei.value.hint
    assert sim.requests.total == 0      # known before asking the sign-in service anything


def test_device_user_missing_a_right_is_named_before_any_write(sim, tmp_path, capsys):
    sim.set_device_user(scopes=["Application.ReadWrite.All", "AppRoleAssignment.ReadWrite.All"], wids=[])
    conn = connect(sim, tmp_path, interactive=True, **device_settings(sim, tmp_path))
    with pytest.raises(AuthError) as ei:
        onboard(conn, tmp_path)
    assert ei.value.missing == ["directory role Privileged Role Administrator or Global Administrator (wids)"]
    assert sim.requests.writes == 0


def test_device_user_without_consent_to_a_requested_permission_is_refused_at_sign_in(sim, tmp_path, capsys):
    # Entra answers AADSTS65001 (consent_required) rather than a token without the scope.
    sim.set_device_user(scopes=["Application.ReadWrite.All"], wids=["62e90394-69f5-4237-9190-012177145e10"])
    conn = connect(sim, tmp_path, interactive=True, **device_settings(sim, tmp_path))
    with pytest.raises(AuthError) as ei:
        onboard(conn, tmp_path)
    assert ei.value.fields["aadsts"] == ["AADSTS65001"] and "consent" in ei.value.hint
    assert sim.requests.graph == 0


def test_device_user_with_privileged_role_administrator_onboards(sim, tmp_path, capsys):
    sim.set_device_user(wids=["e8611ab8-c189-46e8-94e1-60213ab1f814"])
    conn = connect(sim, tmp_path, interactive=True, **device_settings(sim, tmp_path))
    onboard(conn, tmp_path)
    assert_converged(sim)


@pytest.mark.parametrize("form", ["pem", "pfx", "pfx-password"])
def test_certificate_sign_in(sim, tmp_path, form):
    from runner.graph.certs import generate_self_signed
    m = generate_self_signed("operator", days=30)
    op = sim.add_operator(certificate_pem=m.cert_pem())
    password = Secret("pfx-pass-42") if form == "pfx-password" else None
    if form == "pem":
        path = tmp_path / "op.pem"
        path.write_text(m.key_pem() + m.cert_pem())
    else:
        path = tmp_path / "op.pfx"
        path.write_bytes(m.to_pfx(password.reveal() if password else None))
    conn = connect(sim, tmp_path, auth="certificate", client_id=op.client_id, client_secret=None,
                   certificate=str(path), certificate_password=password)
    out = onboard(conn, tmp_path, stages=("preflight",))
    assert out["preflight"].outputs["auth"] == "certificate"
    assert out["preflight"].outputs["identity"].endswith(f"({op.client_id})")


def test_unregistered_certificate_is_an_auth_error(sim, tmp_path):
    from runner.graph.certs import generate_self_signed
    registered, other = generate_self_signed("a", days=5), generate_self_signed("b", days=5)
    op = sim.add_operator(certificate_pem=registered.cert_pem())
    path = tmp_path / "other.pem"
    path.write_text(other.key_pem() + other.cert_pem())
    conn = connect(sim, tmp_path, auth="certificate", client_id=op.client_id, client_secret=None,
                   certificate=str(path))
    with pytest.raises(AuthError) as ei:
        onboard(conn, tmp_path, stages=("preflight",))
    assert "AADSTS700027" in str(ei.value) and sim.requests.writes == 0


def test_opening_the_target_does_not_touch_the_network(sim, tmp_path):
    sim.requests.reset()
    conn = connect(sim, tmp_path)
    assert sim.requests.total == 0
    assert conn.metrics() == {"graph_requests": 0, "graph_writes": 0, "graph_write_operations": 0,
                              "graph_token_requests": 0}


def test_unknown_target_setting_is_an_input_error(sim, tmp_path):
    with pytest.raises(InputError) as ei:
        connect(sim, tmp_path, clientid="x")
    assert ei.value.input == "clientid"


# --------------------------------------------------------------------------- certificate credential

def test_self_signed_certificate_is_uploaded_once_and_signs_in(sim, tmp_path):
    out = onboard(connect(sim, tmp_path), tmp_path, stages=("preflight", "application", "service_principal",
                                                            "consent", "certificate"))
    cert = out["certificate"].outputs
    assert out["certificate"].changed and len(cert["thumbprint"]) == 40 and cert["thumbprint"].isupper()
    pfx, password_file = Path(cert["pfx_file"]), Path(cert["pfx_password_file"])
    assert stat.S_IMODE(pfx.stat().st_mode) == 0o600 and Path(cert["cert_file"]).is_file()
    # the PFX is protected, by a generated password in a 0600 file beside it, which the message names
    assert password_file.parent == pfx.parent and stat.S_IMODE(password_file.stat().st_mode) == 0o600
    assert f"protected by the password in {password_file}" in out["certificate"].messages[0]
    with pytest.raises(InputError, match="wrong password"):
        load_certificate(pfx)
    password = Secret(password_file.read_text(), "pfx password")
    assert load_certificate(pfx, password).thumbprint == cert["thumbprint"]
    v = tenant_view(sim)
    assert v["keys"] == 1
    # the uploaded public part matches the private key on disk: the new app can sign in with it
    app_conn = connect(sim, tmp_path, auth="certificate", client_id=v["app"]["appId"], client_secret=None,
                       certificate=str(pfx), certificate_password=password)
    claims = app_conn.claims()
    assert claims["sign_in"] == "app-only" and claims["client_id"] == v["app"]["appId"]
    assert len(claims["roles"]) == 40     # Microsoft Graph roles granted by the consent stage

    sim.requests.reset()
    again = onboard(connect(sim, tmp_path), tmp_path, stages=("application", "certificate"))
    assert not again["certificate"].changed and again["certificate"].outputs["thumbprint"] == cert["thumbprint"]
    assert again["certificate"].outputs["pfx_file"] == str(pfx)
    assert again["certificate"].outputs["pfx_password_file"] == str(password_file)
    assert sim.requests.writes == 0

    rotated = onboard(connect(sim, tmp_path), tmp_path, stages=("application", "certificate"),
                      certificate={"rotate": True})
    assert rotated["certificate"].changed
    assert rotated["certificate"].outputs["thumbprint"] != cert["thumbprint"]
    assert tenant_view(sim)["keys"] == 2          # the first key was kept


def test_a_certificate_near_expiry_is_renewed_and_handing_it_over_is_a_persons_chore(sim, tmp_path):
    stages = ("application", "certificate")
    first = onboard(connect(sim, tmp_path), tmp_path, stages=stages)["certificate"].outputs
    soon = (_dt.datetime.now(_dt.timezone.utc) + _dt.timedelta(days=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    with sim.state.lock:
        old = tenant_view(sim)["app"]["keyCredentials"][0]
        old["endDateTime"] = soon
    out = onboard(connect(sim, tmp_path), tmp_path, stages=stages)["certificate"]
    assert out.changed and out.status == Status.ACTION_REQUIRED
    assert out.outputs["thumbprint"] != first["thumbprint"]
    assert out.action["steps"][0] == f"Enter the new certificate from {out.outputs['pfx_file']} in the backup product."
    assert out.action["steps"][1].startswith(f"The old certificate ({old['keyId']}) stays valid until {soon}; ")
    assert tenant_view(sim)["keys"] == 2


def test_given_certificate_is_uploaded_and_recognised(sim, tmp_path):
    from runner.graph.certs import generate_self_signed
    m = generate_self_signed("given", days=400)
    path = tmp_path / "given.pfx"
    path.write_bytes(m.to_pfx("pw"))
    inputs = {"certificate_path": str(path), "certificate_password": Secret("pw")}
    out = onboard(connect(sim, tmp_path), tmp_path, stages=("application", "certificate"), certificate=inputs)
    assert out["certificate"].changed and out["certificate"].outputs["thumbprint"] == m.thumbprint
    again = onboard(connect(sim, tmp_path), tmp_path, stages=("application", "certificate"), certificate=inputs)
    assert not again["certificate"].changed
    assert tenant_view(sim)["keys"] == 1


# --------------------------------------------------------------------------- offboarding

def test_offline_plan_signs_in_nowhere_and_cannot_apply(sim, tmp_path):
    sim.requests.reset()
    conn = connect(sim, tmp_path, offline=True)
    plan = onboard(conn, tmp_path, apply=False)
    assert sim.requests.total == 0
    assert plan["preflight"].outputs["sign_in"] == "offline"
    assert plan["application"].outputs["permissions"] == 46 and plan["application"].changed
    assert len(plan["consent"].outputs["missing"]) == 46
    with pytest.raises(InputError) as ei:
        onboard(conn, tmp_path, apply=True, stages=("application",))
    assert ei.value.input == "offline" and sim.requests.total == 0


def test_remove_application_plans_then_removes_then_is_ok(sim, tmp_path):
    onboard(connect(sim, tmp_path), tmp_path)
    conn = connect(sim, tmp_path)
    sim.requests.reset()
    plan = g.remove_application(StageCtx(conn, tmp_path, apply=False), {"unique_name": UNIQUE})
    assert plan.changed and "would delete" in plan.messages[0] and "service principal" in plan.messages[0]
    assert sim.requests.writes == 0 and tenant_view(sim)["apps"] == 1
    done = g.remove_application(StageCtx(conn, tmp_path, apply=True), {"unique_name": UNIQUE})
    assert done.changed and done.outputs["removed"] is True
    v = tenant_view(sim)
    assert v["apps"] == 0 and not [s for s in sim.state.service_principals.values()
                                   if s["appId"] == done.outputs["app_id"]]
    again = g.remove_application(StageCtx(connect(sim, tmp_path), tmp_path, apply=True), {"unique_name": UNIQUE})
    assert not again.changed and "nothing to remove" in again.messages[0]


# --------------------------------------------------------------------------- through the engine

BOOK = '''
name = "graph-onboarding"
title = "Graph onboarding (test)"
[params.tenant]
type = "str"
required = true
[params.client_id]
type = "str"
required = true
[params.client_secret]
type = "secret"
[params.endpoint]
type = "str"
required = true
[params.ca_bundle]
type = "str"
required = true
[targets.tenant]
type = "graph"
tenant = "${params.tenant}"
auth = "secret"
client_id = "${params.client_id}"
client_secret = "${params.client_secret}"
authority_host = "${params.endpoint}"
graph_endpoint = "${params.endpoint}"
ca_bundle = "${params.ca_bundle}"
[[stages]]
id = "preflight"
kind = "graph.preflight"
inputs = { profile = "m365-backup" }
[[stages]]
id = "application"
kind = "graph.application"
inputs = { display_name = "Backup", unique_name = "m365-backup", profile = "m365-backup" }
[[stages]]
id = "service-principal"
kind = "graph.service_principal"
inputs = { app_id = "${stages.application.outputs.app_id}" }
[[stages]]
id = "consent"
kind = "graph.consent"
inputs = { sp_id = "${stages.service-principal.outputs.sp_id}", profile = "m365-backup" }
[[stages]]
id = "secret"
kind = "graph.secret"
inputs = { object_id = "${stages.application.outputs.object_id}", unique_name = "m365-backup" }
'''


def test_through_the_engine_plan_run_rerun(sim, tmp_path):
    from runner import api
    from runner.runbook_loader import parse

    rb = parse(BOOK, "graph-onboarding.toml")
    params = {"tenant": sim.tenant_domain, "client_id": sim.operator.client_id,
              "client_secret": Secret(sim.operator.client_secret), "endpoint": sim.base_url,
              "ca_bundle": sim.ca_bundle}
    plan = api.plan(rb, params, state_dir=tmp_path)
    assert [s.status.value for s in plan.stages] == ["ok", "changed", "changed", "changed", "changed"]
    assert plan.metrics["graph_writes"] == 0 and tenant_view(sim)["apps"] == 0

    run = api.run(rb, params, state_dir=tmp_path)
    assert run.status.value == "succeeded", [(s.id, s.messages, s.error) for s in run.stages]
    assert_converged(sim)
    assert run.metrics["graph_requests"] <= 11           # sign-in and the app management policy included
    secret_file = Path(run.stage("secret").outputs["secret_file"])
    report = (Path(run.run_dir) / "report.json").read_text()
    assert secret_file.read_text() not in report
    events = (Path(run.run_dir) / "events.jsonl").read_text()
    assert secret_file.read_text() not in events and "graph.request" in events

    rerun = api.run(rb, params, state_dir=tmp_path)
    assert [s.status.value for s in rerun.stages] == ["ok"] * 5
    assert rerun.metrics["graph_writes"] == 0
    assert rerun.metrics["graph_requests"] <= 6
    assert rerun.stage("secret").outputs["secret_file"] == str(secret_file)
