"""The template twins on their own: plan changes nothing, apply converges, a second apply is
ok, and failures look like the real cmdlets' (message, exception type, FullyQualifiedErrorId)."""

from __future__ import annotations

import copy

import pytest

from runner.powershell.templates import render_template, template_params
from runner.sim import twins
from runner.sim.twin_types import TWINS, HostState, SimSecureString, TwinError, run_twin
from runner.sim.world import ACSPrincipal, SimWorld

SPO = "Microsoft.Online.SharePoint.PowerShell"
CURRENT = "16.0.26712.12000"       # a module that signs in with OAuth (after 16.0.25814.12000)
ADMIN = "https://contoso-admin.sharepoint.com"
APP = "11111111-2222-3333-4444-555555555555"


@pytest.fixture
def state():
    return HostState()


@pytest.fixture
def world():
    return SimWorld()


def creds(state: HostState, password: str | None = None) -> dict:
    return {"UserName": state.spo_admin_user, "Password": SimSecureString(password or state.spo_admin_password)}


def snapshot(state: HostState, world: SimWorld):
    s = copy.deepcopy(state)
    s.invocations = []
    return s, copy.deepcopy(world.sharepoint)


def test_every_template_has_a_twin():
    from runner.powershell.templates import list_templates

    assert set(list_templates()) <= set(TWINS)


def test_run_twin_dispatches_by_header_and_masks_secrets_in_the_log(state, world):
    script = render_template("sharepoint/spo_tenant_settings").text
    state.modules[SPO] = CURRENT
    out = run_twin(script, state, world, {"Apply": False, "AdminUrl": ADMIN, **creds(state)})
    assert out.result["changed"] is False
    (tid, logged), = state.invocations
    assert tid == "sharepoint/spo_tenant_settings" and logged["Password"] == "********"


# --------------------------------------------------------------------------- host facts

def test_host_facts_reports_modules_and_snapin(state, world):
    state.modules = {SPO: "16.0.26712.12000"}
    state.sharepoint_server = True
    out = twins.host_facts(state, world, {"Apply": False, "Modules": ["Az.Accounts"]})
    data = out.result["data"]
    assert data["modules"] == {SPO: "16.0.26712.12000", "PnP.PowerShell": None, "Az.Accounts": None}
    assert data["sharepoint_server_snapin"] is True and data["ps_edition"] == "Desktop"
    assert out.result["changed"] is False


# --------------------------------------------------------------------------- spo_module

def test_spo_module_plan_apply_reapply(state, world):
    before = snapshot(state, world)
    plan = twins.spo_module(state, world, {"Apply": False, "MinimumVersion": "16.0.0.0"})
    assert plan.result["changed"] is True and snapshot(state, world) == before
    applied = twins.spo_module(state, world, {"Apply": True, "MinimumVersion": "16.0.0.0", "Scope": "AllUsers"})
    assert applied.result["changed"] is True
    assert state.modules[SPO] == state.gallery[SPO] and state.nuget_provider
    assert state.internet == [twins.NUGET_BOOTSTRAP, twins.PSGALLERY]
    assert applied.result["before"] == {"version": None}
    assert applied.result["after"] == {"version": state.gallery[SPO]}
    again = twins.spo_module(state, world, {"Apply": True, "MinimumVersion": "16.0.0.0"})
    assert again.result["changed"] is False and again.result["data"]["source"] == "installed"


def test_spo_module_upgrades_an_old_version(state, world):
    state.modules[SPO] = "16.0.20000.10000"
    out = twins.spo_module(state, world, {"Apply": True, "MinimumVersion": "16.0.25000.0"})
    assert out.result["changed"] and state.modules[SPO] == state.gallery[SPO]


def test_spo_module_without_gallery_fails_like_install_module(state, world):
    state.psgallery_reachable = False
    state.nuget_provider = True
    with pytest.raises(TwinError) as e:
        twins.spo_module(state, world, {"Apply": True, "MinimumVersion": "16.0.0.0"})
    assert e.value.spec.fqid == "NoMatchFoundForCriteria,Microsoft.PowerShell.PackageManagement.Cmdlets.InstallPackage"
    assert str(e.value).startswith(f"No match was found for the specified search criteria and module name '{SPO}'")
    assert SPO not in state.modules


def test_spo_module_offline_source(state, world):
    state.psgallery_reachable = False
    state.nuget_provider = True
    state.offline_sources["\\\\files\\psmodules"] = {SPO: "16.0.25912.12000"}
    out = twins.spo_module(state, world, {"Apply": True, "MinimumVersion": "16.0.0.0",
                                          "OfflineSourcePath": "\\\\files\\psmodules"})
    assert out.result["data"]["source"] == "offline" and state.modules[SPO] == "16.0.25912.12000"
    with pytest.raises(TwinError, match="does not exist"):
        twins.spo_module(HostState(psgallery_reachable=False, nuget_provider=True), world,
                         {"Apply": True, "OfflineSourcePath": "D:\\nowhere"})


def test_spo_module_offline_source_reaches_nothing_on_the_internet(state, world):
    """A truly offline host: no NuGet provider, and with spo_module_source no bootstrap is tried
    (it was, before the .nupkg was looked at, and failed there); nor, where the internet is
    reachable, does anything else go out."""
    source = "D:\\psmodules"
    for reachable in (False, True):
        host = HostState(psgallery_reachable=reachable, nuget_provider=False,
                         offline_sources={source: {SPO: CURRENT}})
        out = twins.spo_module(host, world, {"Apply": True, "MinimumVersion": "16.0.25815.0",
                                             "OfflineSourcePath": source})
        assert out.result["data"]["source"] == "offline" and host.modules[SPO] == CURRENT
        assert host.internet == [] and host.nuget_provider is False


def test_spo_module_offline_source_too_old_names_the_folder(state, world):
    state.offline_sources["D:\\psmodules"] = {SPO: "16.0.25000.1"}
    with pytest.raises(TwinError) as e:
        twins.spo_module(state, world, {"Apply": True, "MinimumVersion": "16.0.25815.0",
                                        "OfflineSourcePath": "D:\\psmodules"})
    assert str(e.value) == (f"OfflineSourcePath 'D:\\psmodules' holds no {SPO}.<version>.nupkg of version "
                            "16.0.25815.0 or later.")
    assert SPO not in state.modules and state.internet == []


def test_spo_module_minimum_above_gallery_fails(state, world):
    with pytest.raises(TwinError, match="No match was found"):
        twins.spo_module(state, world, {"Apply": True, "MinimumVersion": "99.0"})


@pytest.mark.parametrize("sign_in,minimum,needed", [
    ("credential", "", "16.0.25815.0"), ("certificate", "", "16.0.26712.12000"),
    ("certificate", "16.0.25815.0", "16.0.26712.12000"), ("certificate", "16.0.27000.1", "16.0.27000.1")])
def test_spo_module_minimum_follows_the_sign_in(state, world, sign_in, minimum, needed):
    """A host with 16.0.25815.0 passed the module stage and then could not sign in with a
    certificate (-ClientId arrived in 16.0.26712.12000): the minimum is now the sign-in's."""
    state.modules[SPO] = "16.0.25815.0"
    state.gallery[SPO] = "16.0.27000.1"
    out = twins.spo_module(state, world, {"Apply": False, "MinimumVersion": minimum, "SignIn": sign_in})
    assert out.result["data"]["minimum_version"] == needed and out.result["data"]["sign_in"] == sign_in
    assert out.result["changed"] is (needed != "16.0.25815.0")
    raised = [m for m in out.result["messages"] if "older than" in m]
    assert raised == ([f"MinimumVersion {minimum} is older than {sign_in} sign-in needs: ensuring {needed}."]
                      if minimum and minimum != needed else [])


def test_spo_module_twin_and_template_agree_on_the_first_releases():
    text = render_template("sharepoint/spo_module").text
    for sign_in, version in twins.SPO_FIRST_RELEASE.items():
        assert f"'{twins.version_text(version)}'" in text and f"{sign_in} " in text


def test_spo_module_bad_version_is_a_cast_error(state, world):
    with pytest.raises(TwinError) as e:
        twins.spo_module(state, world, {"Apply": False, "MinimumVersion": "latest"})
    assert "System.Version" in str(e.value)


# --------------------------------------------------------------------------- spo_tenant_settings

def settings_params(state, apply, **desired):
    return {"Apply": apply, "AdminUrl": ADMIN, **creds(state), **desired}


def test_tenant_settings_need_the_module_when_applying(state, world):
    with pytest.raises(TwinError) as e:
        twins.spo_tenant_settings(state, world, settings_params(state, True))
    assert e.value.spec.exception_type == "System.Management.Automation.CommandNotFoundException"
    assert str(e.value).startswith("The term 'Connect-SPOService' is not recognized")
    state.ps_edition = "Core"
    with pytest.raises(TwinError) as e:
        twins.spo_tenant_settings(state, world, settings_params(state, True))
    assert e.value.spec.fqid.startswith("Modules_ModuleNotFound")


def test_tenant_settings_plan_before_the_module_is_installed(state, world):
    """An earlier stage installs the module: planning reports what applying would do."""
    out = twins.spo_tenant_settings(state, world, settings_params(state, False, DisableCustomAppAuthentication=False))
    assert out.result["changed"] is True and out.result["data"]["module_installed"] is False
    assert out.result["data"]["pending"] == ["DisableCustomAppAuthentication"]
    assert world.sharepoint.disable_custom_app_authentication is True


def test_tenant_settings_wrong_password_is_the_idcrl_error(state, world):
    state.modules[SPO] = CURRENT
    with pytest.raises(TwinError) as e:
        twins.spo_tenant_settings(state, world, {"Apply": False, "AdminUrl": ADMIN,
                                                 **creds(state, "wrong-password")})
    assert str(e.value) == "The sign-in name or password does not match one in the Microsoft account system."
    assert e.value.spec.exception_type == "Microsoft.SharePoint.Client.IdcrlException"


@pytest.mark.parametrize("version,signs_in", [("16.0.24810.12000", False), ("16.0.25814.12000", False),
                                              ("16.0.25912.12000", True), ("16.0.26712.12000", True)])
def test_connect_spo_with_a_credential_needs_a_module_that_signs_in_with_oauth(state, world, version, signs_in):
    """Modules up to 16.0.25814.12000 sign in with IDCRL, blocked for good since 2026-05-01:
    the right password no longer helps; later modules use OAuth."""
    state.modules[SPO] = version
    params = {"Apply": False, "AdminUrl": ADMIN, **creds(state)}
    if signs_in:
        assert twins.spo_tenant_settings(state, world, params).result["changed"] is False
        return
    with pytest.raises(TwinError) as e:
        twins.spo_tenant_settings(state, world, params)
    assert "does not support SharePoint Online credentials" in str(e.value) and "917656" in str(e.value)
    assert e.value.spec.exception_type == "Microsoft.SharePoint.Client.IdcrlException"
    world.sharepoint.legacy_auth_blocked = False          # before the block, IDCRL still worked
    assert twins.spo_tenant_settings(state, world, params).result["changed"] is False


def test_tenant_settings_password_must_be_a_securestring(state, world):
    state.modules[SPO] = CURRENT
    with pytest.raises(TwinError, match="SecureString"):
        twins.spo_tenant_settings(state, world, {"Apply": False, "AdminUrl": ADMIN, "UserName": state.spo_admin_user,
                                                 "Password": state.spo_admin_password})


def test_tenant_settings_plan_apply_reapply_with_a_refusal(state, world):
    state.modules[SPO] = CURRENT
    desired = {"LegacyAuthProtocolsEnabled": True, "DisableCustomAppAuthentication": False}
    before = snapshot(state, world)
    plan = twins.spo_tenant_settings(state, world, settings_params(state, False, **desired))
    assert snapshot(state, world) == before
    assert plan.result["changed"] is True and plan.result["data"]["pending"] == list(desired)
    assert "status" not in plan.result

    applied = twins.spo_tenant_settings(state, world, settings_params(state, True, **desired))
    r = applied.result
    assert world.sharepoint.disable_custom_app_authentication is False
    assert world.sharepoint.legacy_auth_protocols_enabled is False          # refused: blocked since 2026-05-01
    assert r["changed"] is True and "status" not in r and "action" not in r
    assert r["refusals"] == {"LegacyAuthProtocolsEnabled": {
        "wanted": True, "since": "2026-05-01", "reason": r["data"]["refused"]["LegacyAuthProtocolsEnabled"]
        + " IDCRL legacy sign-in is blocked for good: whatever needed it signs in with modern authentication "
          "(an Entra app with a certificate)."}}
    assert r["data"]["converged"] == ["DisableCustomAppAuthentication"]
    assert list(r["data"]["refused"]) == ["LegacyAuthProtocolsEnabled"]
    assert "still reports False" in r["refusals"]["LegacyAuthProtocolsEnabled"]["reason"]
    assert r["before"] == {"LegacyAuthProtocolsEnabled": False, "DisableCustomAppAuthentication": True}
    assert r["after"] == {"LegacyAuthProtocolsEnabled": False, "DisableCustomAppAuthentication": False}

    again = twins.spo_tenant_settings(state, world, settings_params(state, True, **desired))
    assert again.result["changed"] is False and "status" not in again.result
    assert list(again.result["refusals"]) == ["LegacyAuthProtocolsEnabled"]      # the platform says no again


def test_tenant_settings_converge_when_the_platform_allows(state, world):
    state.modules[SPO] = CURRENT
    world.sharepoint.legacy_auth_blocked = False
    out = twins.spo_tenant_settings(state, world, settings_params(state, True, LegacyAuthProtocolsEnabled=True))
    assert world.sharepoint.legacy_auth_protocols_enabled is True
    assert out.result["changed"] and "status" not in out.result
    assert out.result["after"]["DisableCustomAppAuthentication"] is True   # not managed: untouched


THUMB = "AB12CD" * 6 + "AB12"


def cert_params(world, **extra):
    return {"Apply": False, "AdminUrl": ADMIN, "ClientId": APP, "TenantId": world.tenant_id,
            "Thumbprint": THUMB.lower(), **extra}


@pytest.mark.parametrize("store", ["CurrentUser", "LocalMachine"])
def test_tenant_settings_certificate_sign_in_from_either_store(state, world, store):
    """The template finds the certificate in CurrentUser, then LocalMachine, passes it as
    -Certificate and says which store it came from."""
    state.modules[SPO] = CURRENT
    state.certificates[THUMB] = store
    out = twins.spo_tenant_settings(state, world, cert_params(world))
    assert out.result["changed"] is False and out.result["data"]["certificate_store"] == store
    assert f"Signed in with certificate {THUMB.lower()} from Cert:\\{store}\\My." in out.result["messages"]


def test_tenant_settings_certificate_in_neither_store(state, world):
    state.modules[SPO] = CURRENT
    with pytest.raises(TwinError) as e:
        twins.spo_tenant_settings(state, world, cert_params(world))
    assert str(e.value) == (f"No certificate with thumbprint {THUMB} in Cert:\\CurrentUser\\My or "
                            f"Cert:\\LocalMachine\\My on {state.computer_name}.")
    state.certificates[THUMB] = "CurrentUser"
    with pytest.raises(TwinError, match="together"):
        twins.spo_tenant_settings(state, world, cert_params(world, TenantId=""))


@pytest.mark.parametrize("version", ["16.0.25815.0", "16.0.26100.12000", "16.0.26712.11999"])
def test_certificate_sign_in_on_a_module_before_16_0_26712_12000_is_powershells_binding_error(state, world, version):
    """MC1188595: Connect-SPOService has -ClientId only from 16.0.26712.12000. Before, the
    cmdlet refuses it as PowerShell's binder does (the twin was lenient and let it sign in)."""
    state.modules[SPO] = version
    state.certificates[THUMB] = "CurrentUser"
    with pytest.raises(TwinError) as e:
        twins.spo_tenant_settings(state, world, cert_params(world))
    assert str(e.value) == "A parameter cannot be found that matches parameter name 'ClientId'."
    assert e.value.spec.fqid == "NamedParameterNotFound,Microsoft.Online.SharePoint.PowerShell.ConnectSPOService"
    assert e.value.spec.exception_type == "System.Management.Automation.ParameterBindingException"


def test_connect_spo_parameter_sets_per_release():
    from runner.sim import spo_connect

    old, new = (16, 0, 25815, 0), (16, 0, 26712, 12000)
    cert = {"Url": ADMIN, "ClientId": APP, "TenantId": "t", "Certificate": THUMB}
    assert spo_connect.parameter_set(new, cert).name == "AuthenticationCertificate"
    assert spo_connect.parameter_set(old, {"Url": ADMIN, "Credential": "c"}).name == "AuthenticationLocation"
    assert spo_connect.parameter_set(new, {"url": ADMIN, "credential": "c"}).name == "AuthenticationLocation"
    with pytest.raises(TwinError, match="parameter name 'ClientId'"):
        spo_connect.parameter_set(old, cert)
    with pytest.raises(TwinError, match="cannot be resolved"):
        spo_connect.parameter_set(new, {"Url": ADMIN, "ClientId": APP, "Credential": "c"})
    with pytest.raises(TwinError, match="No certificate was found matching"):        # field reports
        spo_connect.certificate_sign_in({"Url": ADMIN, "ClientId": APP, "TenantId": "t", "CertificateThumbprint": THUMB})


def test_the_templates_connect_spo_calls_bind_on_the_modules_they_need():
    """Every Connect-SPOService line of spo_tenant_settings names parameters of one set of the
    cmdlet on a current module; the certificate line none on 16.0.25815.0."""
    import re

    from runner.sim import spo_connect

    text = render_template("sharepoint/spo_tenant_settings").text
    calls = [line for line in text.splitlines() if line.strip().startswith("Connect-SPOService -")]
    assert len(calls) == 2
    for line in calls:
        names = {n: True for n in re.findall(r"\s-(\w+)", re.sub(r"\([^)]*\)", "", line))}
        spo_connect.parameter_set((16, 0, 26712, 12000), names)
        if "ClientId" in names:
            assert "Certificate" in names and "CertificateThumbprint" not in names
            with pytest.raises(TwinError, match="ClientId"):
                spo_connect.parameter_set((16, 0, 25815, 0), names)


def test_tenant_settings_wrong_admin_url(state, world):
    state.modules[SPO] = CURRENT
    with pytest.raises(TwinError, match="admin site"):
        twins.spo_tenant_settings(state, world, {**settings_params(state, False), "AdminUrl": "https://fabrikam-admin.sharepoint.com"})


# --------------------------------------------------------------------------- appinv_verify

PNP = "PnP.PowerShell"


def verify_params(state, **extra):
    return {"Apply": False, "AdminUrl": ADMIN, "AppId": APP, "PnPClientId": APP, **creds(state), **extra}


def test_appinv_verify_under_windows_powershell_needs_powershell_7(state, world):
    """PnP.PowerShell 2.1.0 and later runs under PowerShell 7 only: a module in Windows
    PowerShell's folders does not make the read possible there (the twin let it run)."""
    state.modules[PNP] = "3.1.0"
    with pytest.raises(TwinError) as e:
        twins.appinv_verify(state, world, verify_params(state))
    assert str(e.value) == ("PowerShell 7 (pwsh.exe) is not installed on WIN-SIM01; PnP.PowerShell 2.1.0 and later "
                            "(Get-PnPAzureACSPrincipal) runs only there.")


@pytest.mark.parametrize("pwsh,pnp,message", [
    ("7.4.6", None, "PowerShell 7.4.6 on WIN-SIM01 has no PnP.PowerShell; Get-PnPAzureACSPrincipal needs "
                    "PnP.PowerShell 2.1.0 or later."),
    ("7.4.6", "1.12.0", "PowerShell 7.4.6 on WIN-SIM01 has PnP.PowerShell 1.12.0; Get-PnPAzureACSPrincipal needs "
                        "PnP.PowerShell 2.1.0 or later."),
    ("7.2.1", "3.1.0", "PnP.PowerShell 3.1.0 needs PowerShell 7.4.6 or later; WIN-SIM01 has 7.2.1."),
])
def test_appinv_verify_in_pwsh_names_what_the_host_lacks(state, world, pwsh, pnp, message):
    state.pwsh_version = pwsh
    if pnp:
        state.pwsh_modules[PNP] = pnp
    with pytest.raises(TwinError) as e:
        twins.appinv_verify(state, world, verify_params(state))
    assert str(e.value) == message


@pytest.mark.parametrize("edition,where", [("Desktop", "pwsh"), ("Core", "endpoint")])
def test_appinv_verify_runs_where_pnp_can(state, world, edition, where):
    if edition == "Core":
        state.ps_edition, state.ps_version = "Core", "7.4.6"
    else:
        state.pwsh_version = "7.4.6"
    state.pwsh_modules[PNP] = "3.1.0"
    data = twins.appinv_verify(state, world, verify_params(state)).result["data"]
    assert data["ran_in"] == (twins.PWSH_PATH if where == "pwsh" else "endpoint")
    assert data["pnp_version"] == "3.1.0" and data["powershell"] == "7.4.6"
    facts = twins.host_facts(state, world, {"Apply": False}).result["data"]
    assert facts["powershell7"]["version"] == "7.4.6" and facts["powershell7"]["modules"][PNP] == "3.1.0"
    assert facts["modules"][PNP] == ("3.1.0" if edition == "Core" else None)   # 5.1 does not see it


def test_appinv_verify_reads_acs_principals(state, world):
    state.pwsh_version = "7.4.6"
    state.pwsh_modules[PNP] = "3.1.0"
    params = verify_params(state)
    out = twins.appinv_verify(state, world, params)
    assert out.result["data"]["granted"] is False and out.result["data"]["principal_found"] is False
    world.sharepoint.acs_principals[APP] = ACSPrincipal(APP, "Backup", right="Read")
    out = twins.appinv_verify(state, world, params)
    assert out.result["data"]["principal_found"] and not out.result["data"]["granted"]
    world.sharepoint.acs_principals[APP].right = "FullControl"
    out = twins.appinv_verify(state, world, params)
    assert out.result["data"]["granted"] is True and out.result["changed"] is False
    world.sharepoint.acs_principals[APP].allow_app_only = False
    assert twins.appinv_verify(state, world, params).result["data"]["granted"] is False


def test_appinv_verify_without_a_pnp_client_id_meets_the_removed_management_shell(state, world):
    state.pwsh_version = "7.4.6"
    state.pwsh_modules[PNP] = "3.1.0"
    with pytest.raises(TwinError) as e:
        twins.appinv_verify(state, world, {"Apply": False, "AdminUrl": ADMIN, "AppId": APP, **creds(state)})
    assert str(e.value).startswith("AADSTS700016") and twins.PNP_MANAGEMENT_SHELL in str(e.value)


# --------------------------------------------------------------------------- appinv_server_grant

def test_server_grant_needs_the_snapin(state, world):
    with pytest.raises(TwinError) as e:
        twins.appinv_server_grant(state, world, {"SiteUrl": "https://sp.contoso.local", "AppId": APP})
    assert e.value.spec.fqid == "AddPSSnapInRead,Microsoft.PowerShell.Commands.AddPSSnapinCommand"


def test_server_grant_plan_apply_reapply(state, world):
    state.sharepoint_server = True
    params = {"SiteUrl": "https://sp.contoso.local", "AppId": APP, "DisplayName": "Backup",
              "Scope": "SiteSubscription", "Right": "FullControl", "AppOnly": True}
    plan = twins.appinv_server_grant(state, world, {**params, "Apply": False})
    assert plan.result["changed"] and state.sp_app_principals == {}
    applied = twins.appinv_server_grant(state, world, {**params, "Apply": True})
    assert applied.result["changed"]
    (nid, principal), = state.sp_app_principals.items()
    assert nid == f"{APP}@{world.tenant_id}" and principal["rights"] == {"SiteSubscription": "FullControl"}
    assert principal["app_only"] is True
    assert applied.result["before"] == {"registered": False, "right": "None", "app_only": False}
    assert applied.result["after"] == {"registered": True, "right": "FullControl", "app_only": True}
    again = twins.appinv_server_grant(state, world, {**params, "Apply": True})
    assert again.result["changed"] is False


def test_server_grant_turns_on_the_app_only_policy_of_a_right_already_held(state, world):
    """A principal that holds the right with the app-only policy off (granted by hand without
    'Allow the app to make app-only calls') is not left so: the grant is no app-only grant."""
    state.sharepoint_server = True
    nid = f"{APP}@{world.tenant_id}"
    state.sp_app_principals[nid] = {"display_name": "Backup", "rights": {"SiteSubscription": "FullControl"},
                                    "app_only": False}
    params = {"SiteUrl": "https://sp.contoso.local", "AppId": APP, "Scope": "SiteSubscription",
              "Right": "FullControl", "AppOnly": True}
    plan = twins.appinv_server_grant(state, world, {**params, "Apply": False})
    assert plan.result["changed"] is True and state.sp_app_principals[nid]["app_only"] is False
    assert "Would set the app-only policy to True." in plan.result["messages"]
    applied = twins.appinv_server_grant(state, world, {**params, "Apply": True})
    assert applied.result["changed"] is True and state.sp_app_principals[nid]["app_only"] is True
    assert applied.result["before"]["app_only"] is False and applied.result["after"]["app_only"] is True
    assert twins.appinv_server_grant(state, world, {**params, "Apply": True}).result["changed"] is False
    # and the other way: AppOnly false turns the policy off
    off = twins.appinv_server_grant(state, world, {**params, "AppOnly": False, "Apply": True})
    assert off.result["changed"] is True and state.sp_app_principals[nid]["app_only"] is False


def test_server_grant_template_reads_and_sets_the_app_only_policy_apart_from_the_right():
    """The template side of the fix the twin models: the policy is read before and after, and
    set with its own call when the right is already there."""
    from runner.powershell.templates import render_template
    text = render_template("sharepoint/appinv_server_grant").text
    assert "IsAppOnlyPolicyAllowed($principal)" in text and "UpdateAppOnlyPolicy($principal, $AppOnly)" in text
    assert "elseif ($before.app_only -ne $AppOnly)" in text
    assert "$after.app_only -ne $AppOnly" in text


def test_twin_parameters_match_template_parameters():
    """Every name a twin reads is declared by its template (the binder rejects others)."""
    import inspect
    import re

    from runner.powershell.templates import list_templates

    for tid in list_templates():
        fn = TWINS[tid]
        declared = {d.name for d in template_params(tid)}
        src = inspect.getsource(fn)
        read = set(re.findall(r'_(?:param|flag|secure)\(params, "(\w+)"', src))
        if "_sign_in(" in src:
            read |= {"UserName", "Password", "TenantId", "Thumbprint", "PnPClientId"}
        if "_connect_spo(" in src:
            read |= {"AdminUrl", "UserName", "Password", "ClientId", "TenantId", "Thumbprint"}
        assert read <= declared, (tid, read - declared)
