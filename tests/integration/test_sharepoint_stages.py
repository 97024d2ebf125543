"""PowerShell over PSRP end to end: the REAL pypsrp client (WSMan + RunspacePool + PowerShell)
against the host simulator on loopback HTTPS, through session, connector and stage kinds.

Covers: every template plans without change / applies / re-applies ok; secrets arrive as
SecureStrings and appear nowhere else; hostile values arrive unchanged; auth, refused, DNS,
TLS, timeout, broken pool and interrupt end in the right TransportError kind with a hint and
without hanging; one pool per host; WSMan requests per invocation and pool opens per run."""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import threading
import time
from pathlib import Path

import pytest

from runner.errors import InputError, Interrupted, TransportError
from runner.powershell import session
from runner.powershell.connector import open_target
from runner.powershell.templates import render_template
from runner.results import Status
from runner.secrets import Secret
from runner.sim.host import HostSimulator, wait_or_stop
from runner.sim.tls import make_tls
from runner.sim import twins as _twins  # noqa: F401 - registers the template twins
from runner.sim.twin_types import TWINS, HostState, SimSecureString, TwinOutput
from runner.sim.world import ACSPrincipal, SimWorld
from runner.powershell.result import outcome_from
from runner.stages import powershell as ps_stages
from runner.stages import sharepoint as stages
from runner.values import Unknown

from ..stage_context import FakeStageContext, runbook_notices

SPO = "Microsoft.Online.SharePoint.PowerShell"
ADMIN = "https://contoso-admin.sharepoint.com"
APP = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
SPO_PASSWORD = HostState().spo_admin_password


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    return make_tls(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def sim(tls):
    with HostSimulator(SimWorld(), HostState(), tls=tls) as s:
        yield s


def target_settings(sim: HostSimulator, **over):
    settings = {"host": sim.host, "port": sim.port, "scheme": sim.scheme, "path": sim.path, "auth": "basic",
                "username": sim.username, "password": Secret(sim.password, "host password"),
                "ca_bundle": sim.ca_bundle, "timeouts": {"connect": 5, "read": 30, "operation": 20}}
    settings.update(over)
    return {k: v for k, v in settings.items() if v is not None}


@pytest.fixture
def conn(sim):
    c = open_target(target_settings(sim))
    yield c
    c.close()


class Ctx(FakeStageContext):
    """A StageContext for one stage: the real connector, in-memory records."""

    def __init__(self, connector, apply: bool, deadline: float | None = None) -> None:
        super().__init__(connector, apply, deadline, kind="powershell.template", notices=runbook_notices())


def run_stage(fn, connector, inputs, *, apply: bool, deadline: float | None = None):
    ctx = Ctx(connector, apply, deadline)
    return fn(ctx, dict(inputs)), ctx


def world_snapshot(sim: HostSimulator):
    st = copy.deepcopy(sim.state)
    st.invocations = []
    return st, copy.deepcopy(sim.world.sharepoint)


def spo_inputs(**extra):
    return {"template": "sharepoint/spo_tenant_settings", "AdminUrl": ADMIN,
            "UserName": HostState().spo_admin_user, "Password": Secret(SPO_PASSWORD, "spo password"), **extra}


# --------------------------------------------------------------------------- plan / apply / apply again

SCENARIOS = {
    "windows/host_facts": (lambda sim: None, {}),
    "sharepoint/spo_module": (lambda sim: None, {"MinimumVersion": "16.0.0.0", "Scope": "CurrentUser"}),
    "sharepoint/spo_tenant_settings": (
        lambda sim: sim.state.modules.update({SPO: "16.0.26712.12000"}),
        {"AdminUrl": ADMIN, "UserName": HostState().spo_admin_user, "Password": Secret(SPO_PASSWORD),
         "DisableCustomAppAuthentication": False}),
    "sharepoint/appinv_verify": (
        lambda sim: pnp_in_pwsh(sim),
        {"AdminUrl": ADMIN, "AppId": APP, "PnPClientId": APP, "UserName": HostState().spo_admin_user,
         "Password": Secret(SPO_PASSWORD)}),
    "sharepoint/appinv_server_grant": (
        lambda sim: setattr(sim.state, "sharepoint_server", True),
        {"SiteUrl": "https://sharepoint.contoso.local", "AppId": APP, "DisplayName": "Backup"}),
}
READ_ONLY = {"windows/host_facts", "sharepoint/appinv_verify"}


@pytest.mark.parametrize("template_id", sorted(SCENARIOS))
def test_plan_changes_nothing_apply_changes_second_apply_is_ok(sim, conn, template_id):
    prepare, inputs = SCENARIOS[template_id]
    prepare(sim)
    inputs = {"template": template_id, **inputs}
    before = world_snapshot(sim)

    plan, ctx = run_stage(ps_stages.template, conn, inputs, apply=False)
    assert plan.status is None and plan.error is None, plan.error
    assert world_snapshot(sim) == before, "plan changed the host"
    assert plan.changed is (template_id not in READ_ONLY)
    assert ctx.scripts == [("", render_template(template_id).text)]

    applied, _ = run_stage(ps_stages.template, conn, inputs, apply=True)
    assert applied.status is None and applied.error is None, applied.error
    assert applied.changed is (template_id not in READ_ONLY)
    if template_id not in READ_ONLY:
        assert world_snapshot(sim) != before
        assert applied.before != applied.after

    again, _ = run_stage(ps_stages.template, conn, inputs, apply=True)
    assert again.status is None and again.changed is False
    assert sim.counter.pool_opens == 1
    assert [p["Apply"] for _, p in sim.state.invocations] == [False, True, True]


def test_tenant_settings_refusal_is_reported_per_setting(sim, conn):
    sim.state.modules[SPO] = "16.0.26712.12000"
    out, _ = run_stage(ps_stages.template, conn, spo_inputs(LegacyAuthProtocolsEnabled=True,
                                                         DisableCustomAppAuthentication=False), apply=True)
    # not a crash (no error), not a success, not a person's task: a refusal for good, dated
    assert out.status is None and out.changed is True and out.error is None and out.action is None
    assert out.outputs["converged"] == ["DisableCustomAppAuthentication"]
    assert set(out.outputs["refused"]) == {"LegacyAuthProtocolsEnabled"}
    (refusal,) = out.refusals
    assert (refusal.item, refusal.wanted, refusal.since) == ("LegacyAuthProtocolsEnabled", True, "2026-05-01")
    assert "ignores" in refusal.reason and "modern authentication" in refusal.reason
    assert refusal.fix is None               # the inputs here are values, not runbook parameters
    assert sim.world.sharepoint.disable_custom_app_authentication is False
    assert sim.world.sharepoint.legacy_auth_protocols_enabled is False


def test_unknown_inputs_in_plan_mean_not_created_yet(sim, conn):
    out, ctx = run_stage(ps_stages.template, conn, {"template": "sharepoint/appinv_server_grant", "SiteUrl": "https://sp",
                                                 "AppId": Unknown("stages.application.outputs.app_id")}, apply=False)
    assert out.changed is True and "known after" in out.messages[0]
    assert sim.counter.requests == 0 and ctx.scripts


def test_bad_inputs_fail_before_any_request(sim, conn):
    with pytest.raises(InputError) as e:
        run_stage(ps_stages.template, conn, {"template": "sharepoint/spo_module", "MinVersion": "1.0"}, apply=False)
    assert e.value.input == "MinVersion" and "MinimumVersion" in e.value.hint
    assert sim.counter.requests == 0


# --------------------------------------------------------------------------- secrets and hostile values

@pytest.fixture
def spy(monkeypatch):
    """Wrap a twin to capture the parameters exactly as the simulator bound them."""
    seen: list[dict] = []

    def wrap(template_id: str):
        original = TWINS[template_id]

        def spy_twin(state, world, params):
            seen.append(dict(params))
            return original(state, world, params)

        monkeypatch.setitem(TWINS, template_id, spy_twin)
        return seen

    return wrap


def test_secrets_arrive_as_securestrings_and_appear_nowhere_else(sim, conn, spy, caplog):
    seen = spy("sharepoint/spo_tenant_settings")
    sim.state.modules[SPO] = "16.0.26712.12000"
    caplog.set_level(logging.DEBUG)
    out, ctx = run_stage(ps_stages.template, conn, spo_inputs(DisableCustomAppAuthentication=False), apply=True)
    assert out.error is None
    (params,) = seen
    assert isinstance(params["Password"], SimSecureString) and params["Password"].value == SPO_PASSWORD
    assert isinstance(params["UserName"], str)
    blob = json.dumps({"outcome": out.__dict__, "scripts": ctx.scripts, "events": ctx.events}, default=str)
    for secret in (SPO_PASSWORD, sim.password):
        assert secret not in blob
        assert secret not in caplog.text
        assert secret not in repr(sim.state.invocations)


def test_wrong_spo_password_fails_with_the_cmdlet_error_and_no_secret(sim, conn):
    sim.state.modules[SPO] = "16.0.26712.12000"
    inputs = spo_inputs(Password=Secret("Not-The-Password-42"))
    out, _ = run_stage(ps_stages.template, conn, inputs, apply=True)
    assert out.status is Status.FAILED
    (record,) = out.error["records"]
    assert record["message"] == "The sign-in name or password does not match one in the Microsoft account system."
    assert record["exception_type"] == "Microsoft.SharePoint.Client.IdcrlException" and record["terminating"]
    assert "Not-The-Password-42" not in json.dumps(out.__dict__, default=str)


def test_the_main_runbook_upgrades_a_module_that_still_signs_in_with_idcrl(sim, conn):
    """Connect-SPOService -Credential in modules up to 16.0.25814.12000 uses IDCRL, blocked since
    2026-05-01: the runbook's default minimum version must make the module stage upgrade it."""
    from runner.api import load_runbook

    minimum = load_runbook("m365-backup-access").params["spo_module_version"].default
    sim.state.modules[SPO] = "16.0.24810.12000"
    inv = conn.invoke(render_template("sharepoint/spo_module").text,
                      {"Apply": True, "MinimumVersion": minimum, "Scope": "CurrentUser", "OfflineSourcePath": ""})
    assert not inv.failed and inv.result["changed"], inv.failure
    inv = conn.invoke(render_template("sharepoint/spo_tenant_settings").text,
                      {"Apply": False, "AdminUrl": ADMIN, "UserName": sim.state.spo_admin_user,
                       "Password": Secret(SPO_PASSWORD)})
    assert not inv.failed, inv.failure


HOSTILE = ["it's", "\u2018q\u2019\u201a\u201b", "$(Stop-Computer -Force)", "`$env:PATH`n", "a;b|c&d",
           "line1\nline2\r\n", "\"\"", "ü中🎉\u200b", "x" * 10240, "@'\n'@"]


def test_hostile_values_arrive_unchanged(sim, conn, spy):
    seen = spy("windows/host_facts")
    inv = conn.invoke(render_template("windows/host_facts").text, {"Apply": False, "Modules": HOSTILE})
    assert not inv.failed, inv.failure
    assert seen[0]["Modules"] == HOSTILE
    assert set(HOSTILE) <= set(inv.result["data"]["modules"])    # and they come back intact


def test_hostile_secret_value_round_trips(sim, conn, spy):
    hostile = "p'a\u2019s$(x)`\n;\u00fc" * 50
    seen = spy("sharepoint/spo_tenant_settings")
    sim.state.modules[SPO] = "1.0"
    conn.invoke(render_template("sharepoint/spo_tenant_settings").text,
                {"Apply": False, "AdminUrl": ADMIN, "UserName": "a@b", "Password": Secret(hostile)})
    assert seen[0]["Password"].value == hostile


# --------------------------------------------------------------------------- the result contract

def test_non_terminating_error_fails_the_invocation(sim, conn):
    sim.faults.set("non_terminating_error", message="Access to the path is denied.", category="PermissionDenied",
                   fqid="UnauthorizedAccess", target="C:\\x")
    inv = conn.invoke(render_template("windows/host_facts").text, {"Apply": False})
    assert inv.state == "Completed" and inv.result is not None
    assert inv.failed and "Access to the path is denied." in inv.failure
    (err,) = inv.streams["error"]
    assert err["category"] == "PermissionDenied" and err["fqid"] == "UnauthorizedAccess" and err["target"] == "C:\\x"


def test_terminating_error_keeps_the_record_fields(sim, conn):
    sim.faults.set("terminating_error", message="Boom.", exception_type="System.InvalidOperationException",
                   category="InvalidOperation", fqid="BoomId")
    inv = conn.invoke(render_template("windows/host_facts").text, {"Apply": False})
    assert inv.state == "Failed" and inv.failed and inv.result is None
    (err,) = inv.errors
    assert (err.message, err.exception_type, err.category, err.fqid, err.terminating) == (
        "Boom.", "System.InvalidOperationException", "InvalidOperation", "BoomId", True)


def test_a_script_that_emits_two_objects_fails(sim, conn, monkeypatch):
    monkeypatch.setitem(TWINS, "tests/two", lambda st, w, p: TwinOutput({"changed": False}, information=["x"]))
    inv = conn.invoke("# psrunner-template: tests/two\nparam([bool]$Apply)\n", {"Apply": False})
    assert not inv.failed and inv.result == {"changed": False, "messages": []}
    monkeypatch.setitem(TWINS, "tests/bad", lambda st, w, p: TwinOutput({"changed": "maybe"}))
    inv = conn.invoke("# psrunner-template: tests/bad\nparam([bool]$Apply)\n", {"Apply": False})
    assert inv.failed and "boolean 'changed'" in inv.failure


def test_streams_are_collected_and_reach_the_outcome(sim, conn, monkeypatch):
    monkeypatch.setitem(TWINS, "tests/streams", lambda st, w, p: TwinOutput(
        {"changed": True, "data": {"k": "v"}, "messages": ["did it"]},
        warnings=["careful"], verbose=["step 1", "step 2"], information=["fyi"]))
    inv = conn.invoke("# psrunner-template: tests/streams\nparam([bool]$Apply)\n", {"Apply": True})
    assert not inv.failed
    assert inv.streams["warning"] == ["careful"] and inv.streams["verbose"] == ["step 1", "step 2"]
    assert inv.streams["information"] == ["fyi"] and "error" not in inv.streams
    out = outcome_from(inv, label="tests/streams")
    assert out.changed and out.outputs == {"k": "v"} and out.messages == ["did it"]
    assert out.warnings == ["careful"] and out.streams["verbose"] == ["step 1", "step 2"]


# --------------------------------------------------------------------------- transport errors

def assert_transport(exc_info, kind: str, *, retryable: bool | None = None, hint_has: str = ""):
    err = exc_info.value
    assert err.kind == kind, (err.kind, str(err))
    assert err.hint and hint_has in err.hint
    if retryable is not None:
        assert err.retryable is retryable


def test_auth_failure(sim):
    c = open_target(target_settings(sim, password=Secret("Wrong-Host-Pass-1")))
    t = time.monotonic()
    with pytest.raises(TransportError) as e:
        c.invoke(render_template("windows/host_facts").text, {"Apply": False})
    assert_transport(e, "auth", hint_has="winrm get winrm/config/service/auth")
    assert "Wrong-Host-Pass-1" not in str(e.value) and time.monotonic() - t < 5


def test_wrong_password_fault(sim, conn):
    sim.faults.set("wrong_password")
    with pytest.raises(TransportError) as e:
        conn.invoke(render_template("windows/host_facts").text, {"Apply": False})
    assert_transport(e, "auth")


def test_refused_connection(sim, conn):
    sim.faults.set("refuse")
    t = time.monotonic()
    with pytest.raises(TransportError) as e:
        conn.invoke(render_template("windows/host_facts").text, {"Apply": False})
    assert_transport(e, "connect", retryable=True, hint_has="winrm enumerate winrm/config/listener")
    assert str(sim.port) in e.value.hint and time.monotonic() - t < 5


def test_dns_failure(sim):
    c = open_target(target_settings(sim, host="win01.psrunner.invalid"))
    with pytest.raises(TransportError) as e:
        c.invoke(render_template("windows/host_facts").text, {"Apply": False})
    assert_transport(e, "dns")


def test_tls_failure_without_the_ca(sim):
    c = open_target(target_settings(sim, ca_bundle=None))    # system store: does not know the sim's CA
    with pytest.raises(TransportError) as e:
        c.invoke(render_template("windows/host_facts").text, {"Apply": False})
    assert_transport(e, "tls", hint_has="give ca_bundle: the PEM file of the CA")


def test_hang_mid_run_times_out_without_replay(sim, conn):
    conn.invoke(render_template("windows/host_facts").text, {"Apply": False})   # pool open
    sim.faults.set("hang")
    t = time.monotonic()
    with pytest.raises(TransportError) as e:
        conn.invoke(render_template("windows/host_facts").text, {"Apply": False}, deadline=time.monotonic() + 2)
    elapsed = time.monotonic() - t
    assert_transport(e, "timeout-mid-run", retryable=False, hint_has="may have run")
    assert elapsed < 8, elapsed
    assert sim.counter.by_action()["Command"] == 2     # not replayed
    sim.faults.clear("hang")
    inv = conn.invoke(render_template("windows/host_facts").text, {"Apply": False})
    assert not inv.failed


def test_hang_before_start_is_retryable(sim, conn):
    sim.faults.set("hang")              # the pool's opening Receive never returns
    t = time.monotonic()
    with pytest.raises(TransportError) as e:
        conn.invoke(render_template("windows/host_facts").text, {"Apply": False}, deadline=time.monotonic() + 2)
    assert_transport(e, "timeout-before-start", retryable=True)
    assert time.monotonic() - t < 8 and sim.counter.by_action()["Command"] == 0
    sim.faults.clear("hang")
    assert not conn.invoke(render_template("windows/host_facts").text, {"Apply": False}).failed


def test_broken_pool_then_a_new_pool(sim, conn):
    conn.invoke(render_template("windows/host_facts").text, {"Apply": False})
    sim.faults.set("break_pool")
    with pytest.raises(TransportError) as e:
        conn.invoke(render_template("windows/host_facts").text, {"Apply": False})
    assert_transport(e, "broken-pool", retryable=False, hint_has="new session")
    inv = conn.invoke(render_template("windows/host_facts").text, {"Apply": False})
    assert not inv.failed and inv.pool_opened
    assert conn.metrics()["psrp_pool_opens"] == 2 == sim.counter.pool_opens


def test_interrupt_stops_the_remote_pipeline(sim, conn, monkeypatch):
    stopped = threading.Event()

    def slow(state, world, params):
        if wait_or_stop(30):
            stopped.set()
        return TwinOutput({"changed": False})

    monkeypatch.setitem(TWINS, "tests/slow", slow)
    errors: list[BaseException] = []

    def worker():
        try:
            conn.invoke("# psrunner-template: tests/slow\nparam([bool]$Apply)\n", {"Apply": False})
        except BaseException as e:  # noqa: BLE001 - the test inspects it
            errors.append(e)

    th = threading.Thread(target=worker)
    th.start()
    time.sleep(0.5)
    t = time.monotonic()
    conn.interrupt()
    th.join(15)
    assert not th.is_alive() and time.monotonic() - t < 8
    assert isinstance(errors[0], Interrupted)
    assert stopped.wait(5), "the simulator never saw the stop signal"
    assert not conn.invoke(render_template("windows/host_facts").text, {"Apply": False}).failed   # pool still usable


def test_deadline_stops_a_slow_pipeline(sim, conn, monkeypatch):
    stopped = threading.Event()
    def slow(state, world, params):
        if wait_or_stop(30):
            stopped.set()
        return TwinOutput({"changed": False})

    monkeypatch.setitem(TWINS, "tests/slow", slow)
    conn.invoke(render_template("windows/host_facts").text, {"Apply": False})
    t = time.monotonic()
    with pytest.raises(TransportError) as e:
        conn.invoke("# psrunner-template: tests/slow\nparam([bool]$Apply)\n", {"Apply": False},
                    deadline=time.monotonic() + 1.5)
    assert_transport(e, "timeout-mid-run", retryable=False)
    assert time.monotonic() - t < 6 and stopped.wait(5)


# --------------------------------------------------------------------------- pools and requests

def test_one_pool_per_host_and_requests_per_invocation(sim, conn):
    script = render_template("windows/host_facts").text
    first = conn.invoke(script, {"Apply": False})
    opened = sim.counter.requests
    per_call = []
    for _ in range(5):
        before = sim.counter.requests
        inv = conn.invoke(script, {"Apply": False})
        per_call.append(sim.counter.requests - before)
        assert inv.wsman_requests == per_call[-1]
    assert sim.counter.pool_opens == 1 and conn.metrics()["psrp_pool_opens"] == 1
    assert conn.metrics()["psrp_invocations"] == 6
    assert first.pool_opened and first.wsman_requests == opened
    # Command + Receive; opening adds Create + Receive. No Signal: the pool's Delete releases
    # finished pipelines (runner/powershell/session.py says why that is the protocol's way)
    assert (opened, per_call) == (4, [2] * 5)
    by = sim.counter.by_action()
    assert by["Create"] == 1 and by["Command"] == 6 and by["Signal"] == 0
    print(f"\nWSMan requests: first invocation (with pool open) {opened}, then {per_call}")


def test_finished_pipelines_past_the_held_limit_are_released_with_their_signal(sim, conn, monkeypatch):
    monkeypatch.setattr(session, "HELD_PIPELINES", 2)
    script = render_template("windows/host_facts").text
    for _ in range(4):
        conn.invoke(script, {"Apply": False})
    assert sim.counter.by_action().get("Signal") == 2
    conn.close()
    assert sim.counter.by_action()["Delete"] == 1 and sim.shells == 0


def test_leaving_the_connector_closes_its_pool_on_the_host(sim):
    with open_target(target_settings(sim)) as conn:
        conn.invoke(render_template("windows/host_facts").text, {"Apply": False})
        assert sim.shells == 1
    assert sim.shells == 0 and sim.counter.by_action()["Delete"] == 1


def test_key_exchange_happens_once_per_pool(sim, conn):
    sim.state.modules[SPO] = "1.0"
    script = render_template("sharepoint/spo_tenant_settings").text
    params = {"Apply": False, "AdminUrl": ADMIN, "UserName": "a@b", "Password": Secret("Whatever-123")}
    conn.invoke(script, params)
    sends = sim.counter.by_action()["Send"]
    conn.invoke(script, params)
    assert sends >= 1 and sim.counter.by_action()["Send"] == sends


# --------------------------------------------------------------------------- appinv_grant

def grant_inputs(**over):
    base = {"backend": "online", "app_id": APP, "app_domain": "backup.example.com", "admin_url": ADMIN,
            "scope": "http://sharepoint/content/tenant", "right": "FullControl",
            "user_name": HostState().spo_admin_user, "password": Secret(SPO_PASSWORD),
            "pnp_client_id": "9e5f94bc-e8a4-4e73-b8be-63364c29d753"}
    base.update(over)
    return base


def pnp_in_pwsh(sim):
    """PowerShell 7 beside Windows PowerShell, with PnP.PowerShell 3.1.0 installed for it."""
    sim.state.pwsh_version = "7.4.6"
    sim.state.pwsh_modules["PnP.PowerShell"] = "3.1.0"


def test_online_grant_is_skipped_as_obsolete_with_its_xml_kept(sim, conn):
    """SharePoint Online by default: nothing for a person, one sentence on what replaced the
    grant, and the permission request XML still rendered and kept (issue 10 item 4)."""
    out, ctx = run_stage(stages.appinv_grant, conn, grant_inputs(), apply=True)
    assert out.status is Status.SKIPPED and out.action is None and out.changed is False
    assert out.messages == [
        "skipped as obsolete: SharePoint Online has ignored appinv.aspx (ACS app-only) grants since 2026-04-02; "
        "app-only access now comes from the application's Sites.FullControl.All permission with certificate "
        "sign-in, which this runbook grants."]
    assert out.warnings == [] and out.outputs["obsolete"] is True and out.outputs["granted"] is False
    (name, xml), = [(n, t) for n, t in ctx.scripts if n.endswith(".xml")]
    assert name == ".xml" and 'Scope="http://sharepoint/content/tenant"' in xml and 'AllowAppOnlyPolicy="true"' in xml


def test_online_grant_found_is_present_but_without_effect_never_ok(sim, conn):
    pnp_in_pwsh(sim)
    sim.world.sharepoint.acs_principals[APP] = ACSPrincipal(APP, "Backup", "backup.example.com")
    for manual in (False, True):
        out, _ = run_stage(stages.appinv_grant, conn, grant_inputs(manual_steps=manual), apply=True)
        assert out.status is Status.SKIPPED and out.action is None, manual
        assert out.outputs["granted"] is True and out.outputs["effective"] is False
        assert any(m.startswith(f"an appinv.aspx grant is present ({APP} holds FullControl at "
                                "http://sharepoint/content/tenant) but without effect") for m in out.messages)


def test_online_grant_hands_exact_steps_to_a_person_when_asked(sim, conn):
    out, ctx = run_stage(stages.appinv_grant, conn, grant_inputs(manual_steps=True), apply=True)
    assert out.status is Status.ACTION_REQUIRED
    a = out.action
    assert a["url"] == f"{ADMIN}/_layouts/15/appinv.aspx"
    assert a["app_id"] == APP and a["app_domain"] == "backup.example.com"
    assert 'Scope="http://sharepoint/content/tenant"' in a["xml"] and 'AllowAppOnlyPolicy="true"' in a["xml"]
    assert any(APP in s and "Lookup" in s for s in a["steps"]) and any("Trust It" in s for s in a["steps"])
    assert not any("turns ok" in s for s in a["steps"])
    assert "2026-04-02" in a["notice"] and "Sites.FullControl.All" in a["notice"] and "certificate" in a["notice"]
    assert out.outputs["verified"] is False and any("PnP.PowerShell" in m for m in out.messages)
    assert [t for n, t in ctx.scripts if n == ".xml"] == [a["xml"]]


@pytest.mark.parametrize("where,pwsh,said", [
    ("windows-powershell", None, "not verified: this host has no PowerShell 7 (pwsh), and PnP.PowerShell 2.1.0 or "
                                 "later (Get-PnPAzureACSPrincipal) under PowerShell 7.2.0 or later runs nowhere else"),
    ("pwsh", "7.2.1", "not verified: PnP.PowerShell 3.1.0 needs PowerShell 7.4.6 or later; this host has 7.2.1"),
])
def test_online_grant_says_where_pnp_cannot_run(sim, conn, where, pwsh, said):
    """PnP.PowerShell 3.1.0 in Windows PowerShell's folders under the 5.1 endpoint: it cannot
    load there, and the stage said "not installed", which was false."""
    (sim.state.modules if where == "windows-powershell" else sim.state.pwsh_modules)["PnP.PowerShell"] = "3.1.0"
    sim.state.pwsh_version = pwsh
    out, ctx = run_stage(stages.appinv_grant, conn, grant_inputs(manual_steps=True), apply=False)
    assert out.outputs["verified"] is False and "-verify" not in [n for n, _ in ctx.scripts]   # never sent
    assert any(m.startswith(said) for m in out.messages), out.messages


def test_online_grant_verified_with_pnp(sim, conn):
    pnp_in_pwsh(sim)
    out, ctx = run_stage(stages.appinv_grant, conn, grant_inputs(manual_steps=True), apply=False)
    assert out.status is Status.ACTION_REQUIRED and out.outputs["verified"] is True
    assert out.outputs["granted"] is False
    assert [s for s, _ in ctx.scripts] == [".xml", "-verify"]
    # the person does the grant; the next run sees it, and calls it what it is
    sim.world.sharepoint.acs_principals[APP] = ACSPrincipal(APP, "Backup", "backup.example.com")
    out, _ = run_stage(stages.appinv_grant, conn, grant_inputs(manual_steps=True), apply=True)
    assert out.status is Status.SKIPPED and out.outputs["granted"] is True and out.action is None
    assert out.changed is False and any("without effect" in m for m in out.messages)


def facts_from_host_facts(conn, powershell7):
    """A Ctx whose stage takes `host_facts` from the host-facts stage, as m365-backup-access's does."""
    ctx = Ctx(conn, apply=True)
    ctx.stage = dataclasses.replace(ctx.stage, inputs={"host_facts": "${stages.host-facts.outputs}"})
    return ctx, {"ps_edition": "Desktop", "powershell7": powershell7}


def test_online_grant_decides_from_the_facts_host_facts_read(sim, conn):
    """The runbook hands over what its host-facts stage read: PowerShell 7 is not read again,
    and where it is missing nothing is sent at all; the stage says whose facts it used."""
    ctx, facts = facts_from_host_facts(conn, None)
    out = stages.appinv_grant(ctx, grant_inputs(manual_steps=True, host_facts=facts))
    assert out.status is Status.ACTION_REQUIRED and sim.counter.requests == 0
    assert any(m.startswith("not verified: this host has no PowerShell 7 (pwsh)") and
               ", as the host-facts stage read it (" in m for m in out.messages), out.messages
    pnp_in_pwsh(sim)
    ctx, facts = facts_from_host_facts(conn, {"version": "7.4.6", "modules": {"PnP.PowerShell": "3.1.0"}})
    out = stages.appinv_grant(ctx, grant_inputs(host_facts=facts))
    assert out.status is Status.SKIPPED and out.outputs["verified"] is True
    assert out.outputs["verification"] == ("looked for the grant with PnP.PowerShell 3.1.0 under PowerShell 7.4.6, "
                                           "as the host-facts stage read it")
    assert [t for t, _ in sim.state.invocations] == ["sharepoint/appinv_verify"]       # no windows/host_facts


def test_online_grant_verification_needs_a_pnp_app(sim, conn):
    pnp_in_pwsh(sim)
    out, _ = run_stage(stages.appinv_grant, conn, grant_inputs(pnp_client_id="", manual_steps=True), apply=True)
    assert out.status is Status.ACTION_REQUIRED and out.outputs["verified"] is False
    assert any("AADSTS700016" in w for w in out.warnings)


def test_online_grant_verification_failure_keeps_the_action(sim, conn):
    pnp_in_pwsh(sim)
    out, _ = run_stage(stages.appinv_grant, conn, grant_inputs(password=Secret("Wrong-Spo-Pass-9"), manual_steps=True),
                       apply=True)
    assert out.status is Status.ACTION_REQUIRED and out.action
    assert any("could not verify" in w for w in out.warnings)
    assert "Wrong-Spo-Pass-9" not in json.dumps(out.__dict__, default=str)


def test_online_grant_in_plan_with_unknown_app_id(sim, conn):
    unknown = Unknown("stages.application.outputs.app_id")
    out, _ = run_stage(stages.appinv_grant, conn, grant_inputs(app_id=unknown), apply=False)
    assert out.status is Status.SKIPPED and out.messages[0].startswith("skipped as obsolete")
    out, _ = run_stage(stages.appinv_grant, conn, grant_inputs(app_id=unknown, manual_steps=True), apply=False)
    assert out.status is Status.ACTION_REQUIRED and "known after apply" in out.action["app_id"]
    assert sim.counter.requests == 0


def test_server_grant_plan_apply_reapply(sim, conn):
    sim.state.sharepoint_server = True
    inputs = grant_inputs(backend="server", site_url="https://sharepoint.contoso.local", display_name="Backup")
    plan, _ = run_stage(stages.appinv_grant, conn, inputs, apply=False)
    assert plan.changed and plan.status is None and sim.state.sp_app_principals == {}
    applied, _ = run_stage(stages.appinv_grant, conn, inputs, apply=True)
    assert applied.changed and applied.after == {"registered": True, "right": "FullControl", "app_only": True}
    principal = sim.state.sp_app_principals[f"{APP}@{sim.world.tenant_id}"]
    assert principal["rights"] == {"SiteSubscription": "FullControl"} and principal["app_only"] is True
    again, _ = run_stage(stages.appinv_grant, conn, inputs, apply=True)
    assert again.changed is False and again.status is None


def test_server_grant_without_sharepoint_server_fails_like_add_pssnapin(sim, conn):
    inputs = grant_inputs(backend="server", site_url="https://sharepoint.contoso.local")
    out, _ = run_stage(stages.appinv_grant, conn, inputs, apply=True)
    assert out.status is Status.FAILED
    assert out.error["records"][0]["fqid"].startswith("AddPSSnapInRead")


@pytest.mark.parametrize("over,bad", [
    ({"backend": "cloud"}, "backend"), ({"scope": "http://sharepoint/social/tenant"}, "scope"),
    ({"right": "Owner"}, "right"), ({"app_domain": ""}, "app_domain"), ({"admin_url": "contoso"}, "admin_url"),
    ({"backend": "server"}, "site_url"),
    ({"backend": "server", "site_url": "https://sp", "scope": "http://sharepoint/content/sitecollection/web/list"},
     "scope"),
])
def test_grant_input_errors(sim, conn, over, bad):
    with pytest.raises(InputError) as e:
        run_stage(stages.appinv_grant, conn, grant_inputs(**over), apply=False)
    assert e.value.input == bad and sim.counter.requests == 0


# --------------------------------------------------------------------------- through the engine

RUNBOOK = '''
name = "spo-host-check"
title = "SharePoint host stages through the engine"
audience = "admin"
rights = ["WinRM access to the host"]

[params.host]
type = "str"
required = true
[params.port]
type = "int"
required = true
[params.ca_bundle]
type = "str"
required = true
[params.host_user]
type = "str"
required = true
[params.host_password]
type = "secret"
[params.spo_user]
type = "str"
required = true
[params.spo_password]
type = "secret"

[targets.host]
type = "psrp"
host = "${params.host}"
port = "${params.port}"
auth = "basic"
username = "${params.host_user}"
password = "${params.host_password}"
ca_bundle = "${params.ca_bundle}"

[[stages]]
id = "facts"
kind = "powershell.template"
template = "windows/host_facts"

[[stages]]
id = "module"
kind = "powershell.template"
template = "sharepoint/spo_module"
inputs = { MinimumVersion = "16.0.0.0" }

[[stages]]
id = "settings"
kind = "powershell.template"
template = "sharepoint/spo_tenant_settings"
[stages.inputs]
AdminUrl = "https://contoso-admin.sharepoint.com"
UserName = "${params.spo_user}"
Password = "${params.spo_password}"
DisableCustomAppAuthentication = false

[[stages]]
id = "grant"
kind = "sharepoint.appinv_grant"
[stages.inputs]
backend = "online"
app_id = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
app_domain = "backup.example.com"
admin_url = "https://contoso-admin.sharepoint.com"
user_name = "${params.spo_user}"
password = "${params.spo_password}"
'''


def test_runbook_through_the_engine_one_pool_per_run_and_no_secret_in_the_run_dir(sim, tmp_path):
    from runner import api

    path = tmp_path / "spo-host-check.toml"
    path.write_text(RUNBOOK)
    rb = api.load_runbook(str(path))
    given = {"host": sim.host, "port": sim.port, "ca_bundle": sim.ca_bundle, "host_user": sim.username,
             "spo_user": sim.state.spo_admin_user}
    values, sources = api.resolve_params(rb, given, environ={"PSRUNNER_HOST_PASSWORD": sim.password,
                                                             "PSRUNNER_SPO_PASSWORD": SPO_PASSWORD})
    state_dir = tmp_path / "state"

    planned = api.plan(rb, values, state_dir=state_dir, secret_sources=sources)
    assert [s.status.value for s in planned.stages] == ["ok", "changed", "changed", "skipped"]
    assert SPO not in sim.state.modules                                  # plan changed nothing
    assert planned.metrics["psrp_pool_opens"] == 1

    ran = api.run(rb, values, state_dir=state_dir, secret_sources=sources)
    by_id = {s.id: s for s in ran.stages}
    assert by_id["module"].status is Status.CHANGED and sim.state.modules[SPO]
    assert by_id["settings"].status is Status.CHANGED
    assert sim.world.sharepoint.disable_custom_app_authentication is False
    assert by_id["grant"].status is Status.SKIPPED and by_id["grant"].action is None
    assert 'AllowAppOnlyPolicy="true"' in (Path(ran.run_dir) / "scripts" / "grant.xml").read_text()
    assert ran.metrics["psrp_pool_opens"] == 1 and ran.metrics["psrp_invocations"] == 4
    print(f"\nrun metrics: {ran.metrics}")

    again = api.run(rb, values, state_dir=state_dir, secret_sources=sources)
    assert [s.status.value for s in again.stages] == ["ok", "ok", "ok", "skipped"]

    for f in state_dir.rglob("*"):
        if f.is_file():
            text = f.read_bytes().decode("utf-8", "replace")
            assert SPO_PASSWORD not in text and sim.password not in text, f
    scripts = [f for f in state_dir.rglob("*.ps1")]
    assert scripts and all(f.read_text().startswith("# psrunner-template: ") for f in scripts)


def test_ntlm_over_http_with_message_encryption(spy):
    seen = spy("sharepoint/spo_tenant_settings")
    with HostSimulator(SimWorld(), HostState(), scheme="http", auth="ntlm") as s:
        s.state.modules[SPO] = "16.0.26712.12000"
        c = open_target({"host": s.host, "port": s.port, "scheme": "http", "auth": "ntlm",
                         "username": s.username, "password": Secret(s.password)})
        try:
            inv = c.invoke(render_template("sharepoint/spo_tenant_settings").text,
                           {"Apply": False, "AdminUrl": ADMIN, "UserName": s.state.spo_admin_user,
                            "Password": Secret(SPO_PASSWORD)})
        finally:
            c.close()
        assert not inv.failed, inv.failure
        assert seen[0]["Password"].value == SPO_PASSWORD
        assert s.counter.encrypted == s.counter.requests > 0     # every envelope sealed


# --------------------------------------------------------------------------- sharepoint.read_settings

def test_read_settings_takes_no_value_to_set_and_sends_nothing(sim, conn):
    from runner.stages.spo_settings import read_settings
    inputs = {"admin_url": ADMIN, "user_name": HostState().spo_admin_user, "password": Secret(SPO_PASSWORD)}
    for name in ("LegacyAuthProtocolsEnabled", "DisableCustomAppAuthentication"):
        with pytest.raises(InputError) as e:
            run_stage(read_settings, conn, {**inputs, name: False}, apply=True)
        assert e.value.input == name and "only reads" in str(e.value)
    with pytest.raises(InputError) as e:
        run_stage(read_settings, conn, {"admin_url": ADMIN}, apply=True)
    assert "needs the admin URL and a sign-in" in str(e.value)
    assert sim.counter.requests == 0
    out, _ = run_stage(read_settings, conn, {**inputs, "tenant_id": Unknown("stages.verify.outputs.tenant_id"),
                                             "thumbprint": "A" * 40}, apply=False)
    assert out.changed is False and out.messages == ["would read the SharePoint settings once tenant_id is known"]
    assert sim.counter.requests == 0
