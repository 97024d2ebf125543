"""Python twins of the templates in ps_templates/: the same effect on simulated state.

Each twin follows its template step by step (read first, change only on difference, change
nothing when Apply is false, read back after a change) and fails the way the real cmdlets
fail: the same message, exception type, category and FullyQualifiedErrorId, so a runbook
rehearsed against the simulator meets the errors it would meet on a real host.

Parameters arrive bound by the host simulator (names as declared in the template's param()
block; SecureStrings as SimSecureString)."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from ..powershell.modules import PNP_ACS_READ, PNP_MODULE, SPO_MODULE, pnp_needs_powershell, version_tuple
from ..powershell.modules import SPO_SIGN_IN_MINIMUM as SPO_FIRST_RELEASE
from ..powershell.modules import text as version_text
from ..powershell.result import template_result
from . import spo_connect
from .twin_types import HostState, SimSecureString, TwinError, TwinOutput, twin
from .world import ACSPrincipal, SimWorld

NUGET_MINIMUM = (2, 8, 5, 201)
# where Install-PackageProvider and Install-Module reach out to (HostState.internet records them)
NUGET_BOOTSTRAP = "https://onegetcdn.azureedge.net/providers/nuget-2.8.5.208.package.swidtag"
PSGALLERY = "https://www.powershellgallery.com/api/v2"
RIGHT_RANK = {"Read": 1, "Write": 2, "Manage": 3, "FullControl": 4}
TENANT_SETTINGS = ("LegacyAuthProtocolsEnabled", "DisableCustomAppAuthentication")
TENANT_ATTR = {"LegacyAuthProtocolsEnabled": "legacy_auth_protocols_enabled",
               "DisableCustomAppAuthentication": "disable_custom_app_authentication"}


# --------------------------------------------------------------------------- helpers

def _param(params: dict[str, Any], name: str, default: Any = None) -> Any:
    for k, v in params.items():
        if k.lower() == name.lower():
            return v
    return default


def _flag(params: dict[str, Any], name: str, default: bool = False) -> bool:
    v = _param(params, name, default)
    return default if v is None else bool(v)


def _version(text: str, param: str = "MinimumVersion") -> tuple[int, ...]:
    if not isinstance(text, str) or not re.fullmatch(r"\d+(\.\d+){1,3}", text.strip()):
        raise TwinError(
            f'Cannot convert value "{text}" to type "System.Version". Error: "Version string portion '
            f'was too short or too long."',
            exception_type="System.Management.Automation.RuntimeException", category="InvalidArgument",
            fqid="InvalidCastParseTargetInvocation", target=param)
    return tuple(int(p) for p in text.strip().split("."))


def command_not_found(name: str) -> TwinError:
    return TwinError(
        f"The term '{name}' is not recognized as the name of a cmdlet, function, script file, or "
        f"operable program. Check the spelling of the name, or if a path was included, verify that "
        f"the path is correct and try again.",
        exception_type="System.Management.Automation.CommandNotFoundException",
        category="ObjectNotFound", fqid="CommandNotFoundException", target=name)


def module_not_found(name: str) -> TwinError:
    return TwinError(
        f"The specified module '{name}' was not loaded because no valid module file was found in any "
        f"module directory.",
        exception_type="System.IO.FileNotFoundException", category="ResourceUnavailable",
        fqid="Modules_ModuleNotFound,Microsoft.PowerShell.Commands.ImportModuleCommand", target=name)


def no_match_for_module(name: str) -> TwinError:
    return TwinError(
        f"No match was found for the specified search criteria and module name '{name}'. Try "
        f"Get-PSRepository to see all available registered module repositories.",
        exception_type="System.Exception", category="ObjectNotFound",
        fqid="NoMatchFoundForCriteria,Microsoft.PowerShell.PackageManagement.Cmdlets.InstallPackage",
        target="Microsoft.PowerShell.Commands.InstallPackage")


def no_nuget_provider() -> TwinError:
    return TwinError(
        "No match was found for the specified search criteria for the provider 'NuGet'. The package "
        "provider requires 'PackageManagement' and 'Provider' tags. Please check if the specified "
        "package has the tags.",
        exception_type="System.Exception", category="InvalidArgument",
        fqid="NoMatchFoundForProvider,Microsoft.PowerShell.PackageManagement.Cmdlets.InstallPackageProvider",
        target="NuGet")


PNP_MANAGEMENT_SHELL = "31359c7f-bd7e-475c-86db-fdb8c937548e"


def pnp_management_shell_gone() -> TwinError:
    """Connect-PnPOnline without -ClientId falls back to the PnP Management Shell app, a
    multi-tenant app of the PnP team (not Microsoft's), which the PnP team deleted on
    2024-09-09 (announced in the pnp/powershell repository's discussions, August 2024)."""
    return TwinError(
        f"AADSTS700016: Application with identifier '{PNP_MANAGEMENT_SHELL}' was not found in the directory "
        f"'Contoso'. This can happen if the application has not been installed by the administrator of the "
        f"tenant or consented to by any user in the tenant.",
        exception_type="Microsoft.Identity.Client.MsalServiceException", category="NotSpecified",
        fqid="Microsoft.Identity.Client.MsalServiceException,PnP.PowerShell.Commands.Base.ConnectOnline")


def idcrl_sign_in_failed() -> TwinError:
    return TwinError(
        "The sign-in name or password does not match one in the Microsoft account system.",
        exception_type="Microsoft.SharePoint.Client.IdcrlException", category="NotSpecified",
        fqid="Microsoft.Online.SharePoint.PowerShell.ConnectSPOService")


# Connect-SPOService -Credential signs in with IDCRL up to this module version; releases after
# it (from 2025-03-28) use OAuth. IDCRL is blocked for good since 2026-05-01, so an older
# module cannot sign in with a credential any more, whatever the password.
SPO_LAST_IDCRL_VERSION = (16, 0, 25814, 12000)
# SPO_FIRST_RELEASE (from runner/powershell/modules.py, with its sources): the first release
# each sign-in of spo_tenant_settings works with, the spo_module template's table


def idcrl_blocked(admin_url: str) -> TwinError:
    return TwinError(
        f"Cannot contact web site '{admin_url}' or the web site does not support SharePoint Online "
        f"credentials. The response status code is 'Unauthorized'. The response headers are "
        f"'X-MSDAVEXT_Error=917656; Access+denied.+Before+opening+files+in+this+location%2c+you+must+first+"
        f"browse+to+the+web+site+and+select+the+option+to+login+automatically.'.",
        exception_type="Microsoft.SharePoint.Client.IdcrlException", category="NotSpecified",
        fqid="Microsoft.Online.SharePoint.PowerShell.ConnectSPOService")


def _thrown(message: str) -> TwinError:
    """What a `throw 'text'` in the template produces."""
    return TwinError(message, exception_type="System.Management.Automation.RuntimeException",
                     category="OperationStopped", fqid=message)


def _secure(params: dict[str, Any], name: str) -> str | None:
    value = _param(params, name)
    if value is None:
        return None
    if isinstance(value, SimSecureString):
        return value.value
    raise TwinError(
        f"Cannot process argument transformation on parameter '{name}'. Cannot convert the "
        f"\"{type(value).__name__}\" value of type \"System.String\" to type \"System.Security.SecureString\".",
        exception_type="System.Management.Automation.ParameterBindingArgumentTransformationException",
        category="InvalidData", fqid=f"ParameterArgumentTransformationError,{name}", target=name)


def _module_loadable(state: HostState, cmdlet: str) -> None:
    """Autoload (Windows PowerShell) or Import-Module -UseWindowsPowerShell (PowerShell 7)."""
    if SPO_MODULE in state.modules:
        return
    if state.ps_edition == "Core":
        raise module_not_found(SPO_MODULE)
    raise command_not_found(cmdlet)


PWSH_PATH = "C:\\Program Files\\PowerShell\\7\\pwsh.exe"


def _pwsh_sees(state: HostState) -> dict[str, str]:
    """The modules PowerShell 7 lists: its own folders and Windows PowerShell's."""
    return {**state.modules, **state.pwsh_modules}


def _endpoint_sees(state: HostState) -> dict[str, str]:
    """The modules the endpoint lists: Windows PowerShell 5.1 does not see PowerShell 7's."""
    return _pwsh_sees(state) if state.ps_edition == "Core" else dict(state.modules)


def _admin_host(world: SimWorld) -> str:
    return f"{world.sharepoint.tenant_name}-admin.sharepoint.com".lower()


def _check_admin_url(world: SimWorld, url: str) -> None:
    parts = urlsplit(url or "")
    if parts.scheme.lower() != "https" or (parts.hostname or "").lower() != _admin_host(world):
        raise TwinError(
            f"Could not connect to SharePoint Online: '{url}' is not the SharePoint admin site of this "
            f"tenant.", exception_type="System.Net.WebException", category="NotSpecified",
            fqid="Microsoft.Online.SharePoint.PowerShell.ConnectSPOService", target=url)


def _check_tenant(world: SimWorld, tenant: str) -> None:
    if (tenant or "").lower() not in {world.tenant_id.lower(), world.tenant_domain.lower()}:
        raise TwinError(f"AADSTS90002: Tenant '{tenant}' not found.",
                        exception_type="Microsoft.Identity.Client.MsalServiceException",
                        category="NotSpecified", fqid="Microsoft.Online.SharePoint.PowerShell.ConnectSPOService")


def _check_thumbprint(state: HostState, thumbprint: str) -> None:
    if (thumbprint or "").upper() not in state.certificates:
        raise TwinError(f"Certificate with thumbprint '{thumbprint}' was not found in the certificate store.",
                        exception_type="System.ArgumentException", category="ObjectNotFound",
                        fqid="PnP.PowerShell.Commands.Base.ConnectOnline", target=thumbprint)


def _check_credential(state: HostState, user: str, password: str | None) -> None:
    if user.lower() != state.spo_admin_user.lower() or password != state.spo_admin_password:
        raise idcrl_sign_in_failed()


def _sign_in(state: HostState, world: SimWorld, params: dict[str, Any]) -> None:
    """appinv_verify's Connect-PnPOnline: with the certificate when a thumbprint is given,
    else the credential (the template checked beforehand that what each needs is there)."""
    if _param(params, "Thumbprint"):
        _check_tenant(world, _param(params, "TenantId", ""))
        _check_thumbprint(state, _param(params, "Thumbprint", ""))
    else:
        _check_credential(state, _param(params, "UserName", ""), _secure(params, "Password"))


def _connect_spo(state: HostState, world: SimWorld, params: dict[str, Any]) -> str | None:
    """spo_tenant_settings' sign-in block, then Connect-SPOService as the installed module has
    it (runner/sim/spo_connect.py: the parameter sets per release). Returns the store the
    certificate came from, None for a credential sign-in."""
    admin_url = str(_param(params, "AdminUrl", "") or "")
    client_id = _param(params, "ClientId", "") or ""
    tenant = _param(params, "TenantId", "") or ""
    thumbprint = (_param(params, "Thumbprint", "") or "").upper()
    user = _param(params, "UserName", "") or ""
    version = _version(state.modules[SPO_MODULE])
    if client_id:
        if not (tenant and thumbprint):
            raise _thrown("Certificate sign-in needs ClientId, TenantId and Thumbprint together.")
        store = state.certificates.get(thumbprint)     # the template looks in CurrentUser, then LocalMachine
        if store is None:
            raise _thrown(f"No certificate with thumbprint {thumbprint} in Cert:\\CurrentUser\\My or "
                          f"Cert:\\LocalMachine\\My on {state.computer_name}.")
        arguments = {"Url": admin_url, "ClientId": client_id, "TenantId": tenant, "Certificate": thumbprint}
        spo_connect.parameter_set(version, arguments)
        _check_tenant(world, tenant)
        return store
    if user:
        password = _secure(params, "Password")
        if password is None:
            raise _thrown("Credential sign-in needs Password (a SecureString) with UserName.")
        if world.sharepoint.legacy_auth_blocked and version <= SPO_LAST_IDCRL_VERSION:
            raise idcrl_blocked(admin_url)
        _check_credential(state, user, password)
        return None
    raise _thrown("No sign-in given: pass UserName and Password, or ClientId, TenantId and Thumbprint.")


# --------------------------------------------------------------------------- windows/host_facts

@twin("windows/host_facts")
def host_facts(state: HostState, world: SimWorld, params: dict[str, Any]) -> TwinOutput:
    names = [SPO_MODULE, PNP_MODULE]
    for extra in _param(params, "Modules", None) or []:
        if extra not in names:
            names.append(extra)
    messages = [f"{state.computer_name}: PowerShell {state.ps_version} ({state.ps_edition})"]
    powershell7 = None
    known = (SPO_MODULE, PNP_MODULE)
    if state.ps_edition == "Core":
        messages.append("PowerShell 7: the SharePoint Online module loads through Import-Module "
                        "-UseWindowsPowerShell.")
        powershell7 = {"version": state.ps_version, "path": "endpoint",
                       "modules": {n: _pwsh_sees(state).get(n) for n in known}}
    elif state.pwsh_version:
        messages.append(f"PowerShell {state.pwsh_version} (pwsh) is installed beside Windows PowerShell.")
        powershell7 = {"version": state.pwsh_version, "path": PWSH_PATH,
                       "modules": {n: _pwsh_sees(state).get(n) for n in known}}
    facts = {
        "ps_version": state.ps_version,
        "ps_edition": state.ps_edition,
        "computer_name": state.computer_name,
        "os": "Microsoft Windows NT 10.0.20348.0",
        "modules": {n: _endpoint_sees(state).get(n) for n in names},
        "sharepoint_server_snapin": bool(state.sharepoint_server) and state.ps_edition == "Desktop",
        "nuget_provider": "2.8.5.208" if state.nuget_provider else None,
        "powershell7": powershell7,
    }
    return TwinOutput(template_result(changed=False, data=facts, messages=messages))


# --------------------------------------------------------------------------- sharepoint/spo_module

@twin("sharepoint/spo_module")
def spo_module(state: HostState, world: SimWorld, params: dict[str, Any]) -> TwinOutput:
    apply = _flag(params, "Apply")
    sign_in = _param(params, "SignIn", "credential")
    if sign_in not in SPO_FIRST_RELEASE:
        raise TwinError(
            f'Cannot validate argument on parameter \'SignIn\'. The argument "{sign_in}" does not belong to the set '
            f'"{",".join(SPO_FIRST_RELEASE)}" specified by the ValidateSet attribute. Supply an argument that is in '
            f'the set and then try the command again.',
            exception_type="System.Management.Automation.ParameterBindingValidationException",
            category="InvalidData", fqid="ParameterArgumentValidationError", target="SignIn")
    needed = SPO_FIRST_RELEASE[sign_in]
    minimum = _param(params, "MinimumVersion", "") or ""
    wanted = _version(minimum) if minimum else needed
    scope = _param(params, "Scope", "CurrentUser")
    offline = _param(params, "OfflineSourcePath", "") or ""
    messages: list[str] = []
    if wanted < needed:
        messages.append(f"MinimumVersion {minimum} is older than {sign_in} sign-in needs: ensuring {version_text(needed)}.")
        wanted = needed
    verbose: list[str] = []

    installed = state.modules.get(SPO_MODULE)
    current = _version(installed) if installed else None
    before = {"version": installed}
    source = "offline" if offline else "PSGallery"
    changed = False

    if current is not None and current >= wanted:
        messages.append(f"{SPO_MODULE} {installed} is installed (>= {version_text(wanted)}).")
        source = "installed"
    elif not apply:
        changed = True
        messages.append(f"Would install {SPO_MODULE} >= {version_text(wanted)} from {source} for {scope}.")
    elif offline:
        # no NuGet provider, no repository: the newest .nupkg at or above the minimum is
        # extracted into the module folder (the template's offline branch)
        if offline not in state.offline_sources:
            raise _thrown(f"OfflineSourcePath '{offline}' does not exist on {state.computer_name}.")
        available = state.offline_sources[offline].get(SPO_MODULE)
        if available is None or _version(available) < wanted:
            raise _thrown(f"OfflineSourcePath '{offline}' holds no {SPO_MODULE}.<version>.nupkg of version "
                          f"{version_text(wanted)} or later.")
        verbose.append(f"Extracted {offline}\\{SPO_MODULE}.{available}.nupkg into the {scope} module folder.")
    else:
        if not state.nuget_provider:
            if not state.psgallery_reachable:
                raise no_nuget_provider()
            state.internet.append(NUGET_BOOTSTRAP)
            state.nuget_provider = True
            messages.append("Installed the NuGet package provider.")
        available = None
        if state.psgallery_reachable:
            state.internet.append(PSGALLERY)
            available = state.gallery.get(SPO_MODULE)
        if available is None or _version(available) < wanted:
            raise no_match_for_module(SPO_MODULE)
    if apply and source != "installed":
        state.modules[SPO_MODULE] = available
        current = _version(available)
        changed = True
        messages.append(f"Installed {SPO_MODULE} {available} from {source} for {scope}.")

    imported = apply and current is not None
    after_version = state.modules.get(SPO_MODULE) if current is not None else (version_text(wanted) if changed else None)
    return TwinOutput(
        template_result(changed=changed, before=before, after={"version": after_version},
                        data={"module": SPO_MODULE, "version": after_version, "minimum_version": version_text(wanted),
                              "sign_in": sign_in, "source": source, "scope": scope, "ps_edition": state.ps_edition,
                              "imported": imported},
                        messages=messages),
        verbose=verbose)


# --------------------------------------------------------------------------- sharepoint/spo_tenant_settings

@twin("sharepoint/spo_tenant_settings")
def spo_tenant_settings(state: HostState, world: SimWorld, params: dict[str, Any]) -> TwinOutput:
    apply = _flag(params, "Apply")
    admin_url = _param(params, "AdminUrl", "")
    desired = {n: bool(_param(params, n)) for n in TENANT_SETTINGS if _param(params, n) is not None}
    if not apply and SPO_MODULE not in state.modules:
        return TwinOutput(template_result(
            changed=bool(desired), after=desired,
            data={"admin_url": admin_url, "desired": desired, "converged": [], "refused": {},
                  "pending": [n for n in TENANT_SETTINGS if n in desired], "module_installed": False},
            messages=[f"{SPO_MODULE} is not installed yet: the settings are read and set when applying, "
                      f"after the module is installed."]))
    _module_loadable(state, "Connect-SPOService")
    _check_admin_url(world, admin_url)
    store = _connect_spo(state, world, params)

    sp = world.sharepoint
    messages: list[str] = []
    if store:
        messages.append(f"Signed in with certificate {_param(params, 'Thumbprint')} from Cert:\\{store}\\My.")
    warnings: list[str] = []
    with world.lock:
        before = {n: bool(getattr(sp, TENANT_ATTR[n])) for n in TENANT_SETTINGS}
        if desired.get("LegacyAuthProtocolsEnabled"):
            messages.append("Microsoft blocks IDCRL legacy authentication permanently from 2026-05-01; "
                            "the tenant may refuse or ignore LegacyAuthProtocolsEnabled = $true.")
        converged, pending, refused, changed = [], [], {}, False
        for name in TENANT_SETTINGS:
            if name not in desired:
                continue
            want = desired[name]
            if before[name] == want:
                converged.append(name)
                continue
            if not apply:
                pending.append(name)
                changed = True
                messages.append(f"Would set {name} from {before[name]} to {want}.")
                continue
            # Set-SPOTenant: the platform ignores enabling IDCRL legacy auth once it is blocked.
            state.set_spo_tenant.append({name: want})
            if not (name == "LegacyAuthProtocolsEnabled" and want and sp.legacy_auth_blocked):
                setattr(sp, TENANT_ATTR[name], want)
            now = bool(getattr(sp, TENANT_ATTR[name]))
            if now == want:
                converged.append(name)
                changed = True
                messages.append(f"Set {name} from {before[name]} to {want}.")
            else:
                refused[name] = (f"Set-SPOTenant -{name} ${str(want).lower()} returned without error but the "
                                 f"tenant still reports {now}; the platform ignores this setting.")
        after = {n: (desired[n] if n in pending else bool(getattr(sp, TENANT_ATTR[n]))) for n in TENANT_SETTINGS}
    data = {"admin_url": admin_url, "desired": desired, "converged": converged,
            "pending": pending, "refused": refused, "module_installed": True, "certificate_store": store}
    refusals: dict[str, dict[str, Any]] = {}
    for name in sorted(refused):
        entry: dict[str, Any] = {"wanted": desired[name], "reason": refused[name]}
        if name == "LegacyAuthProtocolsEnabled" and desired[name]:
            entry["since"] = "2026-05-01"
            entry["reason"] += (" IDCRL legacy sign-in is blocked for good: whatever needed it signs in with "
                                "modern authentication (an Entra app with a certificate).")
        refusals[name] = entry
    return TwinOutput(template_result(changed=changed, before=before, after=after, data=data, messages=messages,
                                      refusals=refusals or None), warnings=warnings)


# --------------------------------------------------------------------------- sharepoint/appinv_verify

def _scope_matches(principal: ACSPrincipal, scope: str) -> bool:
    return principal.scope.rstrip("/").lower() == scope.rstrip("/").lower()


@twin("sharepoint/appinv_verify")
def appinv_verify(state: HostState, world: SimWorld, params: dict[str, Any]) -> TwinOutput:
    app_id = str(_param(params, "AppId", ""))
    scope = _param(params, "Scope", "http://sharepoint/content/tenant")
    right = _param(params, "Right", "FullControl")
    if _param(params, "Thumbprint"):
        if not (_param(params, "PnPClientId") and _param(params, "TenantId")):
            raise _thrown("Certificate sign-in needs PnPClientId, TenantId and Thumbprint together.")
    elif _param(params, "UserName"):
        if _secure(params, "Password") is None:
            raise _thrown("Credential sign-in needs Password (a SecureString) with UserName.")
    else:
        raise _thrown("No sign-in given: pass UserName and Password, or PnPClientId, TenantId and Thumbprint.")
    # where PnP.PowerShell can run: the endpoint under PowerShell 7, else pwsh.exe beside it
    if state.ps_edition == "Core":
        ran_in, powershell = "endpoint", state.ps_version
    elif state.pwsh_version:
        ran_in, powershell = PWSH_PATH, state.pwsh_version
    else:
        raise _thrown(f"PowerShell 7 (pwsh.exe) is not installed on {state.computer_name}; PnP.PowerShell 2.1.0 "
                      f"and later (Get-PnPAzureACSPrincipal) runs only there.")
    pnp = _pwsh_sees(state).get(PNP_MODULE)
    try:        # the template's read: any error comes back as its message alone
        ps, pnp_v = version_tuple(powershell), version_tuple(pnp)
        if pnp_v is None or pnp_v < PNP_ACS_READ:
            has = f"PnP.PowerShell {pnp}" if pnp else "no PnP.PowerShell"
            raise _thrown(f"PowerShell {powershell} on {state.computer_name} has {has}; Get-PnPAzureACSPrincipal "
                          f"needs PnP.PowerShell 2.1.0 or later.")
        needs = pnp_needs_powershell(pnp_v)
        if needs and ps is not None and ps < needs:
            raise _thrown(f"PnP.PowerShell {pnp} needs PowerShell {version_text(needs)} or later; "
                          f"{state.computer_name} has {powershell}.")
        _check_admin_url(world, _param(params, "AdminUrl", ""))
        _sign_in(state, world, params)
        if not _param(params, "PnPClientId"):
            raise pnp_management_shell_gone()
    except TwinError as e:
        raise _thrown(str(e)) from None

    with world.lock:
        principal = next((p for p in world.sharepoint.acs_principals.values()
                          if p.app_id.lower() == app_id.lower()), None)
        granted_right = principal.right if principal and _scope_matches(principal, scope) else None
        allow_app_only = bool(principal.allow_app_only) if granted_right else False
    wanted_scope = re.sub(r"^http://sharepoint/", "", scope)
    granted = bool(granted_right and RIGHT_RANK.get(granted_right, 0) >= RIGHT_RANK[right] and allow_app_only)
    if granted_right:
        msg = f"ACS principal {app_id} holds {granted_right} at {wanted_scope} (app-only: {allow_app_only})."
    elif principal:
        msg = f"ACS principal {app_id} exists but holds no right at {wanted_scope}."
    else:
        msg = f"No ACS principal for {app_id}: the appinv.aspx grant has not been made."
    return TwinOutput(template_result(
        changed=False,
        data={"app_id": app_id, "scope": scope, "right": right, "principal_found": principal is not None,
              "granted_right": granted_right, "allow_app_only": allow_app_only, "granted": granted,
              "pnp_version": pnp, "powershell": powershell, "ran_in": ran_in},
        messages=[f"Read with PnP.PowerShell {pnp} under PowerShell {powershell} ({ran_in}).", msg]))


# --------------------------------------------------------------------------- sharepoint/appinv_server_grant

@twin("sharepoint/appinv_server_grant")
def appinv_server_grant(state: HostState, world: SimWorld, params: dict[str, Any]) -> TwinOutput:
    apply = _flag(params, "Apply")
    site_url = _param(params, "SiteUrl", "")
    app_id = str(_param(params, "AppId", ""))
    display_name = _param(params, "DisplayName", "") or app_id
    scope = _param(params, "Scope", "SiteSubscription")
    right = _param(params, "Right", "FullControl")
    app_only = _flag(params, "AppOnly", True)
    if not state.sharepoint_server or state.ps_edition != "Desktop":
        raise TwinError(
            "The Windows PowerShell snap-in 'Microsoft.SharePoint.PowerShell' is not installed on this computer.",
            exception_type="System.Management.Automation.PSArgumentException", category="InvalidArgument",
            fqid="AddPSSnapInRead,Microsoft.PowerShell.Commands.AddPSSnapinCommand",
            target="Microsoft.SharePoint.PowerShell")
    if not re.match(r"(?i)^https?://[^/\s]+", site_url or ""):
        raise TwinError(f"Cannot find an SPSite object with Id or Url: {site_url}.",
                        exception_type="System.Management.Automation.PSArgumentException",
                        category="InvalidData", fqid="Microsoft.SharePoint.PowerShell.SPCmdletPipeBindException,"
                        "Microsoft.SharePoint.PowerShell.SPCmdletGetSite", target=site_url)

    # The app-only policy is the principal's own flag (IsAppOnlyPolicyAllowed), apart from its
    # rights: Set-SPAppPrincipalPermission -EnableAppOnlyPolicy turns it on with a grant, and
    # UpdateAppOnlyPolicy sets it either way (Microsoft Learn, SPAppPrincipalPermissionsManager).
    name_id = f"{app_id}@{world.tenant_id}"
    messages: list[str] = []
    principal = state.sp_app_principals.get(name_id)
    current_right = (principal or {}).get("rights", {}).get(scope, "None") if principal else "None"
    current_app_only = bool((principal or {}).get("app_only", False))
    before = {"registered": principal is not None, "right": current_right, "app_only": current_app_only}
    changed = False
    if principal is None:
        changed = True
        if apply:
            principal = {"display_name": display_name, "rights": {}, "app_only": False}
            state.sp_app_principals[name_id] = principal
            messages.append(f"Registered app principal {name_id}.")
        else:
            messages.append(f"Would register app principal {name_id}.")
    if current_right != right:
        changed = True
        if apply:
            principal["rights"][scope] = right
            principal["app_only"] = principal["app_only"] or bool(app_only)
            messages.append(f"Granted {right} at {scope} (app-only: {app_only}).")
        else:
            messages.append(f"Would grant {right} at {scope} (app-only: {app_only}).")
    elif current_app_only != app_only:
        changed = True
        messages.append(f"App principal holds {right} at {scope} with the app-only policy {current_app_only}.")
    else:
        messages.append(f"App principal already holds {right} at {scope} (app-only: {app_only}).")
    if apply and principal["app_only"] != bool(app_only):
        principal["app_only"] = bool(app_only)
        messages.append(f"App-only policy set to {app_only}.")
    elif not apply and before["registered"] and current_app_only != app_only:
        messages.append(f"Would set the app-only policy to {app_only}.")
    if apply:
        p = state.sp_app_principals[name_id]
        after = {"registered": True, "right": p["rights"].get(scope, "None"), "app_only": p["app_only"]}
    else:
        after = {"registered": True, "right": right, "app_only": bool(app_only)}
    return TwinOutput(template_result(
        changed=changed, before=before, after=after,
        data={"name_identifier": name_id, "app_id": app_id, "scope": scope, "right": right,
              "app_only": bool(app_only)},
        messages=messages))


# The Active Directory and service twins live beside these and register on the same import.
from . import twins_ad, twins_services  # noqa: E402,F401
