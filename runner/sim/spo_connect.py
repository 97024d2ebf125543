"""Connect-SPOService as each release of the SharePoint Online Management Shell has it.

A template that calls Connect-SPOService with a parameter its module does not have fails on
a real host with PowerShell's own binding error; the twins call `connect_spo_service` with
the parameter names the template uses, so they fail the same way in the simulator. The
parameter sets are one table, per module version, with its sources:

- The Connect-SPOService reference on Microsoft Learn
  (https://learn.microsoft.com/powershell/module/microsoft.online.sharepoint.powershell/connect-sposervice,
  parameter set AuthenticationCertificate documented from October 2025): the sets
  AuthenticationLocation (-Url [-Credential] [-ClientTag] [-ModernAuth] [-UseSystemBrowser]
  [-Region]), AuthenticationUrl (-Url -AuthenticationUrl [-Credential] [-ClientTag]
  [-ModernAuth] [-UseSystemBrowser]) and AuthenticationCertificate (-Url -ClientId -TenantId
  [-Certificate] [-CertificatePath] [-CertificateThumbprint] [-CertificatePassword]
  [-ClientTag] [-Region] [-AuthenticationUrl]).
- Microsoft 365 message center MC1188595 (January 2026): certificate app-only sign-in needs
  module 16.0.26712.12000 or later; before it, -ClientId is no parameter of the cmdlet.
- Credential sign-in: releases up to 16.0.25814.12000 go through IDCRL, which SharePoint
  Online refuses for good since 2026-05-01 (twins.SPO_LAST_IDCRL_VERSION).
- -CertificateThumbprint: the reference says the thumbprint is looked up in the current
  user's store; field reports (topedia.com, "SharePoint Online Management Shell now supports
  app-only authentication", November 2025; icewolf.ch, 2026-01-13) show it failing with "No
  certificate was found matching the specified parameters" for a certificate in CurrentUser
  and in LocalMachine alike, and `-Certificate (Get-Item Cert:\\...\\My\\<thumbprint>)` working.
  The twin is as strict as those reports: the thumbprint lookup finds nothing.

The AuthenticationManagedIdentity set the newest reference lists is left out: no source
gives the release it arrived in, and no template uses it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..powershell.modules import SPO_SIGN_IN_MINIMUM
from .twin_types import TwinError

CMDLET_FQID = "Microsoft.Online.SharePoint.PowerShell.ConnectSPOService"
ANY_RELEASE = (0,)
CERTIFICATE_SIGN_IN = SPO_SIGN_IN_MINIMUM["certificate"]      # MC1188595


@dataclass(frozen=True)
class ParameterSet:
    name: str
    since: tuple[int, ...]                       # the first module release that has it
    required: frozenset[str]
    optional: frozenset[str]

    @property
    def names(self) -> frozenset[str]:
        return self.required | self.optional


CONNECT_SPO_SERVICE = (
    ParameterSet("AuthenticationLocation", ANY_RELEASE, frozenset({"Url"}),
                 frozenset({"Credential", "ClientTag", "ModernAuth", "UseSystemBrowser", "Region"})),
    ParameterSet("AuthenticationUrl", ANY_RELEASE, frozenset({"Url", "AuthenticationUrl"}),
                 frozenset({"Credential", "ClientTag", "ModernAuth", "UseSystemBrowser"})),
    ParameterSet("AuthenticationCertificate", CERTIFICATE_SIGN_IN, frozenset({"Url", "ClientId", "TenantId"}),
                 frozenset({"Certificate", "CertificatePath", "CertificateThumbprint", "CertificatePassword",
                            "ClientTag", "Region", "AuthenticationUrl"})),
)


def _binding_error(message: str, fqid: str, target: str | None = None) -> TwinError:
    return TwinError(message, exception_type="System.Management.Automation.ParameterBindingException",
                     category="InvalidArgument", fqid=f"{fqid},{CMDLET_FQID}", target=target)


def parameter_set(module_version: tuple[int, ...], arguments: dict[str, Any]) -> ParameterSet:
    """The set PowerShell binds `arguments` (by parameter name) to on this module release, or
    the binder's error: an unknown name first, then a set that cannot be resolved."""
    sets = [s for s in CONNECT_SPO_SERVICE if module_version >= s.since]
    known = {n.lower(): n for s in sets for n in s.names}
    given = set()
    for name in arguments:
        if name.lower() not in known:
            raise _binding_error(f"A parameter cannot be found that matches parameter name '{name}'.",
                                 "NamedParameterNotFound", name)
        given.add(known[name.lower()])
    for s in sets:                               # the first is the default set
        if given <= s.names and s.required <= given:
            return s
    raise _binding_error("Parameter set cannot be resolved using the specified named parameters.",
                         "AmbiguousParameterSet")


def no_certificate_found() -> TwinError:
    return TwinError("No certificate was found matching the specified parameters. Check the thumbprint or path, "
                     "and then try again.", exception_type="System.ArgumentException", category="ObjectNotFound",
                     fqid=CMDLET_FQID)


def certificate_sign_in(arguments: dict[str, Any]) -> str:
    """The certificate the AuthenticationCertificate set signs in with: the thumbprint of the
    X509Certificate2 passed as -Certificate (a twin passes the thumbprint of what its template
    loaded). -CertificateThumbprint finds nothing, as field reports say (module docstring)."""
    certificate = next((v for k, v in arguments.items() if k.lower() == "certificate"), None)
    if not certificate:
        raise no_certificate_found()
    return str(certificate)
