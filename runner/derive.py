"""Derivations usable in references (`${params.tenant|spo_admin_url}`): small, pure
functions that compute a value from another, with errors that say what to give instead."""

from __future__ import annotations

import re
from typing import Any, Callable

from .errors import ParamError

GUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def tenant_name(tenant: Any) -> str:
    """contoso.onmicrosoft.com -> contoso (the SharePoint tenant name)."""
    t = str(tenant).strip().lower()
    if GUID_RE.match(t):
        raise ParamError(f"the SharePoint tenant name cannot be derived from a tenant id ({t})", param="tenant",
                         hint="give the tenant as its NAME.onmicrosoft.com domain")
    m = re.match(r"^([a-z0-9-]+)\.onmicrosoft\.(com|us)$", t)
    if m:
        return m.group(1)
    raise ParamError(f"the SharePoint tenant name cannot be derived from {tenant!r}", param="tenant",
                     hint="give the tenant as its NAME.onmicrosoft.com domain")


def spo_admin_url(tenant: Any) -> str:
    """contoso.onmicrosoft.com -> https://contoso-admin.sharepoint.com (GCC High: .us)."""
    t = str(tenant).strip().lower()
    suffix = "sharepoint.us" if t.endswith(".onmicrosoft.us") else "sharepoint.com"
    return f"https://{tenant_name(t)}-admin.{suffix}"


def spo_root_url(tenant: Any) -> str:
    t = str(tenant).strip().lower()
    suffix = "sharepoint.us" if t.endswith(".onmicrosoft.us") else "sharepoint.com"
    return f"https://{tenant_name(t)}.{suffix}"


def spo_sign_in(client_id: Any) -> str:
    """How Connect-SPOService will sign in: an app's client id means certificate app-only,
    none a SharePoint Administrator's credential (the spo_module template's SignIn)."""
    return "certificate" if str(client_id or "").strip() else "credential"


DERIVATIONS: dict[str, Callable[[Any], Any]] = {
    "tenant_name": tenant_name,
    "spo_admin_url": spo_admin_url,
    "spo_root_url": spo_root_url,
    "spo_sign_in": spo_sign_in,
    "lower": lambda v: str(v).lower(),
}
