"""App management policies: the limits a tenant puts on the credentials an application may
get. `addPassword` has a *default* lifetime of two years and no documented maximum; the real
limits come from these policies, often 90 days, and Entra refuses a credential that breaks
one with 400 CredentialInvalidLifetimeAsPerAppPolicy or CredentialTypeNotAllowedAsPerAppPolicy.

Read (Microsoft Graph v1.0, "Get tenantAppManagementPolicy", "List appManagementPolicies" of
an application): the policy assigned to the application, which replaces the tenant default
for it while enabled, else the tenant default (`/policies/defaultAppManagementPolicy`, off
unless `isEnabled`). Both need Policy.Read.All; without it the limits are unknown and
`Limits.unread` says why, and Entra's refusal, if one comes, names the policy.
Decide: `Limits` holds what applies to the application: client secrets forbidden
(`passwordAddition`), their longest lifetime (`passwordLifetime`), the longest certificate
lifetime (`asymmetricKeyLifetime`); a restriction counts only while enabled and for
applications created after its `restrictForAppsCreatedAfterDateTime`."""

from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from .client import GraphClient
from .facts import DEFAULT_POLICY, Facts
from .odata import now_utc, parse_time

# Room left under a policy's maximum: the two clocks may disagree by minutes, and a generated
# certificate is valid from five minutes before it is made.
MARGIN = _dt.timedelta(hours=1)
_DURATION = re.compile(r"^P(?:(?P<y>\d+)Y)?(?:(?P<mo>\d+)M)?(?:(?P<w>\d+)W)?(?:(?P<d>\d+)D)?"
                       r"(?:T(?:(?P<h>\d+)H)?(?:(?P<mi>\d+)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?$")
POLICY_REFUSALS = ("CredentialInvalidLifetimeAsPerAppPolicy", "CredentialTypeNotAllowedAsPerAppPolicy")


def parse_duration(text: Any) -> _dt.timedelta | None:
    """`maxLifetime` as Graph writes it ("P90D", "P1Y", "PT12H"); None when unreadable. A year
    counts 365 days and a month 30, the shortest reading that never exceeds the policy."""
    m = _DURATION.match(str(text or "").strip())
    if m is None or not any(m.groupdict().values()):
        return None
    g = {k: float(v) if v else 0.0 for k, v in m.groupdict().items()}
    return _dt.timedelta(days=g["y"] * 365 + g["mo"] * 30 + g["w"] * 7 + g["d"],
                         hours=g["h"], minutes=g["mi"], seconds=g["s"])


@dataclass(frozen=True)
class Limit:
    """One restriction of one policy, named as a person finds it in the Entra admin center."""
    policy: str                          # "'Display name' (id)"
    restriction: str                     # passwordAddition | passwordLifetime | asymmetricKeyLifetime
    max_lifetime: str | None = None      # the ISO 8601 duration as the policy says it

    @property
    def longest(self) -> _dt.timedelta | None:
        """The longest lifetime psrunner asks for under this limit (MARGIN below the maximum)."""
        d = parse_duration(self.max_lifetime)
        return None if d is None else max(d - MARGIN, _dt.timedelta(0))

    def __str__(self) -> str:
        what = self.restriction + (f" {self.max_lifetime}" if self.max_lifetime else "")
        return f"app management policy {self.policy} ({what})"


@dataclass(frozen=True)
class Limits:
    """What the tenant's policies allow this application; all None when nothing limits it."""
    no_secrets: Limit | None = None
    secret_lifetime: Limit | None = None
    certificate_lifetime: Limit | None = None
    unread: str | None = None            # why the policies could not be read

    def shorter(self, limit: Limit | None, wanted: _dt.timedelta) -> _dt.timedelta:
        """`wanted`, or less when `limit` allows less."""
        longest = limit.longest if limit is not None else None
        return wanted if longest is None or wanted <= longest else longest


def _name(policy: dict[str, Any]) -> str:
    return f"'{policy.get('displayName') or 'unnamed'}' ({policy.get('id')})"


def _applies(r: dict[str, Any], created: _dt.datetime) -> bool:
    after = parse_time(r.get("restrictForAppsCreatedAfterDateTime"))
    return str(r.get("state") or "enabled") == "enabled" and (after is None or created >= after)


def decide(policy: dict[str, Any] | None, restrictions: Any, created: _dt.datetime) -> Limits:
    """The limits one enabled policy's restrictions put on an application created at `created`."""
    if policy is None or not isinstance(restrictions, dict):
        return Limits()
    name = _name(policy)
    found: dict[str, Limit] = {}
    for field in ("passwordCredentials", "keyCredentials"):
        for r in restrictions.get(field) or []:
            if isinstance(r, dict) and _applies(r, created):
                kind = str(r.get("restrictionType") or "")
                found[kind] = Limit(name, kind, r.get("maxLifetime"))
    return Limits(no_secrets=found.get("passwordAddition"), secret_lifetime=found.get("passwordLifetime"),
                  certificate_lifetime=found.get("asymmetricKeyLifetime"))


def read_limits(client: GraphClient, facts: Facts, app: dict[str, Any] | None) -> Limits:
    """The limits for `app` (None: an application this run would create now), read once per
    run and application."""
    key = str(app.get("id")) if app else "new"
    if key in facts.app_limits:
        return facts.app_limits[key]
    created = parse_time(app.get("createdDateTime")) if app else None
    created = created or now_utc()
    limits: Limits | None = None
    if app and app.get("appId") not in facts.created_apps:      # a new application has no policy of its own
        resp = client.get(f"/applications/{quote(key, safe='')}/appManagementPolicies", allow=(403,))
        if resp.status == 403:
            limits = Limits(unread="the sign-in may not read app management policies (Policy.Read.All)")
        else:
            own = next((p for p in (resp.body or {}).get("value") or [] if p.get("isEnabled")), None)
            if own is not None:
                limits = decide(own, own.get("restrictions"), created)
    if limits is None:
        # read ahead with the application when this looked like a first onboarding (facts.read_state);
        # an answer other than the policy or a refusal is asked again on its own
        ahead = facts.read_ahead.get(DEFAULT_POLICY)
        resp = ahead if ahead is not None and (ahead.ok or ahead.status == 403) else \
            client.get(DEFAULT_POLICY, allow=(403,))
        if resp.status == 403:
            limits = Limits(unread="the sign-in may not read app management policies (Policy.Read.All)")
        else:
            default = resp.body if isinstance(resp.body, dict) and resp.body.get("isEnabled") else None
            limits = decide(default, (default or {}).get("applicationRestrictions"), created)
    facts.app_limits[key] = limits
    return limits


def refusal(err: Any) -> str | None:
    """The policy refusal code of a Graph error (CredentialInvalidLifetimeAsPerAppPolicy or
    CredentialTypeNotAllowedAsPerAppPolicy), else None."""
    code = getattr(err, "code", None)
    return code if code in POLICY_REFUSALS else None
