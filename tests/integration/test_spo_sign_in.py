"""The SharePoint sign-in of m365-backup-access as a host would take it, through the real
pypsrp client: the module stage ensures the release the chosen sign-in needs, and certificate
sign-in finds its certificate in either store of the host."""

from __future__ import annotations

import pytest

from runner import api
from runner.sim.demo import sim_params, simulators

SPO = "Microsoft.Online.SharePoint.PowerShell"
THUMB = "5B0E9C1F7A3D2E4B6C8A0F1E3D5C7B9A2E4F6A8C"
APP = "6a1f0e2d-3c4b-4a59-8e7f-90a1b2c3d4e5"


@pytest.fixture(scope="module")
def lab():
    with simulators() as (world, tenant, host):
        yield world, tenant, host


def run(lab, tmp_path, **extra):
    world, tenant, host = lab
    rb = api.load_runbook("m365-backup-access")
    values, _ = api.resolve_params(rb, {**sim_params(tenant, host, world), "legacy_auth": False, **extra})
    return api.run(rb, values, state_dir=tmp_path / "state")


def test_certificate_sign_in_upgrades_a_module_that_has_no_certificate_sign_in(lab, tmp_path):
    """16.0.25815.0 passed the module stage and then Connect-SPOService refused -ClientId:
    the minimum now follows the sign-in (16.0.26712.12000), and the certificate, in the
    machine's store, is found there and named."""
    world, tenant, host = lab
    host.state.modules[SPO] = "16.0.25815.0"
    host.state.certificates[THUMB] = "LocalMachine"
    res = run(lab, tmp_path, spo_user="", spo_client_id=APP, spo_thumbprint=THUMB.lower())
    module, settings = res.stage("spo-module"), res.stage("spo-settings")
    assert module.status.value == "changed", module.error
    assert module.outputs["minimum_version"] == "16.0.26712.12000" and module.outputs["sign_in"] == "certificate"
    assert host.state.modules[SPO] == "16.0.26712.12000"
    assert settings.status.value in ("ok", "changed"), settings.error
    assert settings.outputs["certificate_store"] == "LocalMachine"
    assert f"Signed in with certificate {THUMB.lower()} from Cert:\\LocalMachine\\My." in settings.messages


def test_credential_sign_in_keeps_its_own_minimum(lab, tmp_path):
    world, tenant, host = lab
    host.state.modules[SPO] = "16.0.25815.0"
    res = run(lab, tmp_path)
    module = res.stage("spo-module")
    assert module.status.value == "ok" and module.outputs["minimum_version"] == "16.0.25815.0"
    assert module.outputs["sign_in"] == "credential"
    assert res.stage("spo-settings").status.value in ("ok", "changed"), res.stage("spo-settings").error


def module_runs(host) -> int:
    return sum(1 for template, _ in host.state.invocations if template == "sharepoint/spo_module")


def test_a_recent_enough_module_is_decided_from_host_facts_and_nothing_is_sent(lab, tmp_path):
    world, tenant, host = lab
    host.state.modules[SPO] = "16.0.26712.12000"
    before = module_runs(host)
    module = run(lab, tmp_path).stage("spo-module")
    assert module_runs(host) == before
    assert module.status.value == "ok" and module.outputs["read_by"] == "host-facts"
    assert module.outputs["version"] == "16.0.26712.12000" and module.outputs["minimum_version"] == "16.0.25815.0"
    assert module.messages == [
        "Microsoft.Online.SharePoint.PowerShell 16.0.26712.12000 is installed, as the host-facts stage read it: at or "
        "above 16.0.25815.0, which credential sign-in needs; nothing sent to the host.",
        "Not imported here: spo-settings imports it before it signs in."]


def test_a_plan_with_a_module_too_old_still_shows_the_install(lab, tmp_path):
    world, tenant, host = lab
    host.state.modules[SPO] = "16.0.25814.12000"
    rb = api.load_runbook("m365-backup-access")
    values, _ = api.resolve_params(rb, {**sim_params(tenant, host, world), "legacy_auth": False})
    module = api.plan(rb, values, state_dir=tmp_path / "state").stage("spo-module")
    assert module.status.value == "changed" and "read_by" not in module.outputs
    assert any(m.startswith(f"Would install {SPO} >= 16.0.25815.0") for m in module.messages), module.messages
    assert host.state.modules[SPO] == "16.0.25814.12000"
