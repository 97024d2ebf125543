"""What the PowerShell modules the templates use need from the host, per module version:
stage code decides from host facts whether a template can run there, and the host
simulator's twins refuse what a real host would (runner/sim/twins.py).

PnP.PowerShell (source: the PnP.PowerShell CHANGELOG, github.com/pnp/powershell):
- 2.1.0 added Get-PnPAzureACSPrincipal, the read appinv_verify needs, and removed support for
  Windows PowerShell 5: it runs only under PowerShell 7.2 or later;
- 3.0.0 moved to .NET 8 and needs PowerShell 7.4.6 or later.
Releases before 2.1.0 (1.x still ran under Windows PowerShell 5.1) have no such cmdlet. A
module installed for PowerShell 7 alone (its own module folders) is invisible to Windows
PowerShell 5.1, which the default WinRM endpoint (Microsoft.PowerShell) runs; PowerShell 7
also sees the Windows PowerShell module folders.

PnP's sign-in app: Get-PnPAzureACSPrincipal lists the tenant's legacy service principals
through Microsoft Graph (PnP Core SDK, github.com/pnp/pnpcore: `servicePrincipals?$filter=
servicePrincipalType eq 'Legacy'`), so the Entra app given as pnp_client_id needs a Graph
read permission (Application.Read.All) besides its SharePoint one."""

from __future__ import annotations

import re

PNP_MODULE = "PnP.PowerShell"
PNP_ACS_READ = (2, 1, 0)                    # Get-PnPAzureACSPrincipal
PNP_POWERSHELL = (((3, 0, 0), (7, 4, 6)),   # (first PnP release, the PowerShell it needs), newest first
                  ((2, 1, 0), (7, 2, 0)))


def version_tuple(text: str | None) -> tuple[int, ...] | None:
    """'7.4.6' -> (7, 4, 6); None for anything that is not a dotted version."""
    m = re.match(r"^\s*(\d+(?:\.\d+){0,3})", str(text or ""))
    return tuple(int(p) for p in m.group(1).split(".")) if m else None


def text(version: tuple[int, ...]) -> str:
    return ".".join(str(p) for p in version)


def pnp_needs_powershell(pnp_version: tuple[int, ...]) -> tuple[int, ...] | None:
    """The PowerShell 7 release this PnP.PowerShell release needs; None when it also runs
    under Windows PowerShell 5.1 (before 2.1.0)."""
    return next((ps for first, ps in PNP_POWERSHELL if pnp_version >= first), None)


def pnp_verdict(ps_version: str | None, pnp_version: str | None) -> str | None:
    """Why appinv_verify cannot read ACS principals with this PowerShell 7 and PnP.PowerShell
    (versions as host facts give them), or None when it can."""
    ps, pnp = version_tuple(ps_version), version_tuple(pnp_version)
    wanted = (f"PnP.PowerShell {text(PNP_ACS_READ)} or later (Get-PnPAzureACSPrincipal) under PowerShell "
              f"{text(PNP_POWERSHELL[-1][1])} or later")
    if ps is None:
        return f"this host has no PowerShell 7 (pwsh), and {wanted} runs nowhere else"
    if pnp is None:
        return f"{wanted} is needed; PowerShell {text(ps)} on this host has no PnP.PowerShell"
    if pnp < PNP_ACS_READ:
        return f"{wanted} is needed; PowerShell {text(ps)} on this host has PnP.PowerShell {text(pnp)}"
    needs = pnp_needs_powershell(pnp)
    if needs and ps < needs:
        return f"PnP.PowerShell {text(pnp)} needs PowerShell {text(needs)} or later; this host has {text(ps)}"
    return None


# Microsoft.Online.SharePoint.PowerShell: the first release each sign-in of spo_tenant_settings
# works with (the template sharepoint/spo_module applies the same rule on the host):
# - credential (Connect-SPOService -Credential): 16.0.25815.0, the first after 16.0.25814.12000;
#   older releases sign in with IDCRL, which SharePoint Online refuses since 2026-05-01
#   (Microsoft 365 message center MC1184649);
# - certificate (-ClientId -TenantId -Certificate): 16.0.26712.12000, which brought it
#   (Microsoft 365 message center MC1188595, January 2026).
SPO_MODULE = "Microsoft.Online.SharePoint.PowerShell"
SPO_SIGN_IN_MINIMUM = {"credential": (16, 0, 25815, 0), "certificate": (16, 0, 26712, 12000)}


def spo_module_minimum(sign_in: str, minimum_version: str = "") -> tuple[int, ...] | None:
    """The release of the SharePoint module to ensure: what `sign_in` needs, or the given
    minimum when it is newer; None for a sign-in or version this cannot read."""
    needed = SPO_SIGN_IN_MINIMUM.get(sign_in)
    if needed is None:
        return None
    if not minimum_version:
        return needed
    given = version_tuple(minimum_version)
    return None if given is None else max(given, needed)
