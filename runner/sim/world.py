"""State shared by the two simulators when both run: the SharePoint side of one tenant.

The tenant simulator owns Entra/Graph state; the host simulator's template twins change
SharePoint tenant settings and read ACS principals. Both see the same `SharePointState`
when given the same `SimWorld`."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field


@dataclass
class ACSPrincipal:
    """A SharePoint app principal granted through appinv.aspx (or Register-SPAppPrincipal)."""
    app_id: str
    display_name: str
    app_domain: str = ""
    scope: str = "http://sharepoint/content/tenant"
    right: str = "FullControl"
    allow_app_only: bool = True


@dataclass
class SharePointState:
    """`Get-SPOTenant` as far as the runbooks read it, plus what the platform allows in late 2026."""
    tenant_name: str = "contoso"
    legacy_auth_protocols_enabled: bool = False
    disable_custom_app_authentication: bool = True
    # 2026-05-01: IDCRL legacy auth permanently blocked; Set-SPOTenant refuses to enable it.
    legacy_auth_blocked: bool = True
    # 2026-04-02: ACS app-only retired; appinv.aspx grants no longer take effect.
    acs_retired: bool = True
    acs_principals: dict[str, ACSPrincipal] = field(default_factory=dict)


@dataclass
class SimWorld:
    tenant_id: str = "8f7c1b2a-3d4e-4f50-9a6b-7c8d9e0f1a2b"
    tenant_domain: str = "contoso.onmicrosoft.com"
    sharepoint: SharePointState = field(default_factory=SharePointState)
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
