"""App management policies of the simulated tenant: the tenant default
(/policies/defaultAppManagementPolicy) and policies assigned to single applications
(/policies/appManagementPolicies, /applications/{id}/appManagementPolicies), enforced on
addPassword and on certificate uploads the way Entra refuses them.

What is modelled, and from where (Microsoft Graph v1.0 reference, microsoft-graph-docs-contrib):
- tenantAppManagementPolicy: id 00000000-0000-0000-0000-000000000000, isEnabled (false by
  default), applicationRestrictions / servicePrincipalRestrictions, each
  {passwordCredentials: [...], keyCredentials: [...]} ("Get tenantAppManagementPolicy").
- appManagementPolicy: id, displayName, description, isEnabled, restrictions; assigned to an
  application it replaces the tenant default for that application, and an application
  has at most one ("appManagementPolicy resource type", "Create appliesTo").
- passwordCredentialConfiguration: restrictionType passwordAddition | passwordLifetime (the
  symmetricKey* and customPasswordAddition types are accepted and stored, not enforced),
  maxLifetime an ISO 8601 duration, restrictForAppsCreatedAfterDateTime, state
  enabled | disabled; keyCredentialConfiguration: restrictionType asymmetricKeyLifetime.
  Each restrictionType at most once per policy.
- Permissions: reading needs Policy.Read.All (or Policy.ReadWrite.ApplicationConfiguration),
  writing Policy.ReadWrite.ApplicationConfiguration; the per-application lists and
  assignments also Application.Read.All. Delegated callers need a directory role; the
  simulator accepts Global Administrator, Global Reader (reads), Application Administrator
  and Cloud Application Administrator.
- Refusals: 400 CredentialTypeNotAllowedAsPerAppPolicy "Credential type not allowed as per
  assigned policy" and 400 CredentialInvalidLifetimeAsPerAppPolicy "Credential lifetime
  exceeds the max value allowed as per assigned policy", the error codes Microsoft's Teams
  Toolkit tests for after addPassword (teams-toolkit aadAppClient.ts) and the messages the
  Azure CLI prints for them.

Not modelled: servicePrincipalRestrictions enforcement (the runbooks never add credentials
to service principals), identifierUris and audience restrictions, exemptions (excludeActors).
A disabled assigned policy leaves the application under the tenant default."""

from __future__ import annotations

import copy
import datetime as _dt
import re
import threading
from typing import TYPE_CHECKING, Any

from .tenant_response import GraphError, Response
from .tenant_state import (
    APPLICATION_ADMINISTRATOR,
    CLOUD_APPLICATION_ADMINISTRATOR,
    GLOBAL_ADMINISTRATOR,
    GLOBAL_READER,
    StateError,
    is_guid,
    new_id,
    parse_iso,
)

if TYPE_CHECKING:  # pragma: no cover
    from .tenant_graph import Ctx, GraphService

DEFAULT_POLICY_ID = "00000000-0000-0000-0000-000000000000"
POLICY_READ = {"Policy.Read.All", "Policy.ReadWrite.ApplicationConfiguration"}
POLICY_WRITE = {"Policy.ReadWrite.ApplicationConfiguration"}
APP_READ = {"Application.Read.All", "Application.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"}
READ_ROLES = {GLOBAL_ADMINISTRATOR, GLOBAL_READER, APPLICATION_ADMINISTRATOR, CLOUD_APPLICATION_ADMINISTRATOR}
WRITE_ROLES = {GLOBAL_ADMINISTRATOR, APPLICATION_ADMINISTRATOR, CLOUD_APPLICATION_ADMINISTRATOR}
PASSWORD_TYPES = {"passwordAddition", "passwordLifetime", "symmetricKeyAddition", "symmetricKeyLifetime",
                  "customPasswordAddition"}
KEY_TYPES = {"asymmetricKeyLifetime"}
LIFETIME_TYPES = {"passwordLifetime", "symmetricKeyLifetime", "asymmetricKeyLifetime"}
_DURATION = re.compile(r"^P(?:(?P<y>\d+)Y)?(?:(?P<mo>\d+)M)?(?:(?P<w>\d+)W)?(?:(?P<d>\d+)D)?"
                       r"(?:T(?:(?P<h>\d+)H)?(?:(?P<mi>\d+)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?$")


def parse_duration(text: str) -> _dt.timedelta:
    """An ISO 8601 duration as Graph writes maxLifetime ("P90D", "P1Y", "P4DT12H30M5S").
    A year counts 365 days and a month 30, as no calendar anchors them here."""
    m = _DURATION.match(str(text).strip())
    if m is None or not any(m.groupdict().values()) or str(text).strip().endswith("T"):
        raise ValueError(f"{text!r} is not an ISO 8601 duration such as P90D")
    g = {k: float(v) if v else 0.0 for k, v in m.groupdict().items()}
    return _dt.timedelta(days=g["y"] * 365 + g["mo"] * 30 + g["w"] * 7 + g["d"],
                         hours=g["h"], minutes=g["mi"], seconds=g["s"])


def restriction(restriction_type: str, max_lifetime: str | None = None, *,
                created_after: str | None = None, state: str = "enabled") -> dict[str, Any]:
    """One passwordCredentialConfiguration / keyCredentialConfiguration in Graph's shape."""
    return {"restrictionType": restriction_type, "state": state, "maxLifetime": max_lifetime,
            "restrictForAppsCreatedAfterDateTime": created_after}


def restrictions(*, password_lifetime: str | None = None, block_passwords: bool = False,
                 certificate_lifetime: str | None = None, created_after: str | None = None) -> dict[str, Any]:
    """An appManagementConfiguration from the knobs tests and demos turn most."""
    pwd = []
    if block_passwords:
        pwd.append(restriction("passwordAddition", created_after=created_after))
    if password_lifetime:
        pwd.append(restriction("passwordLifetime", password_lifetime, created_after=created_after))
    keys = [restriction("asymmetricKeyLifetime", certificate_lifetime, created_after=created_after)] \
        if certificate_lifetime else []
    return {"passwordCredentials": pwd, "keyCredentials": keys}


def _validate_configuration(conf: Any, prop: str) -> dict[str, Any]:
    bad = GraphError(400, "Request_BadRequest", f"Invalid value specified for property '{prop}'.")
    if not isinstance(conf, dict):
        raise bad
    out: dict[str, Any] = {}
    for field, allowed in (("passwordCredentials", PASSWORD_TYPES), ("keyCredentials", KEY_TYPES)):
        items = conf.get(field, [])
        if not isinstance(items, list) or not all(isinstance(r, dict) for r in items):
            raise bad
        seen: set[str] = set()
        for r in items:
            kind = r.get("restrictionType")
            if kind not in allowed:
                raise GraphError(400, "Request_BadRequest", f"Invalid value specified for property "
                                 f"'restrictionType' of '{field}': {kind!r}.")
            if kind in seen:
                raise GraphError(400, "Request_BadRequest", f"Each restrictionType can be used only once per "
                                 f"policy; '{kind}' appears twice in '{field}'.")
            seen.add(kind)
            if r.get("state", "enabled") not in ("enabled", "disabled"):
                raise GraphError(400, "Request_BadRequest", "Invalid value specified for property 'state'.")
            if kind in LIFETIME_TYPES:
                try:
                    parse_duration(r.get("maxLifetime") or "")
                except ValueError:
                    raise GraphError(400, "Request_BadRequest", f"'maxLifetime' is required for restrictionType "
                                     f"'{kind}' and must be an ISO 8601 duration such as P90D.") from None
            if r.get("restrictForAppsCreatedAfterDateTime"):
                try:
                    parse_iso(str(r["restrictForAppsCreatedAfterDateTime"]))
                except ValueError:
                    raise GraphError(400, "Request_BadRequest", "Invalid value specified for property "
                                     "'restrictForAppsCreatedAfterDateTime'.") from None
        out[field] = [restriction(r["restrictionType"], r.get("maxLifetime"),
                                  created_after=r.get("restrictForAppsCreatedAfterDateTime"),
                                  state=r.get("state", "enabled")) for r in items]
    return out


class AppManagementPolicies:
    """The tenant default, the assignable policies, and which application has which."""

    def __init__(self, lock: threading.RLock) -> None:
        self.lock = lock
        self.default: dict[str, Any] = {
            "id": DEFAULT_POLICY_ID,
            "displayName": "Default app management tenant policy",
            "description": "Default tenant policy that enforces app management restrictions on applications and "
                           "service principals. To apply policy to targeted resources, create a new policy under "
                           "appManagementPolicies collection.",
            "isEnabled": False,
            "applicationRestrictions": restrictions(),
            "servicePrincipalRestrictions": restrictions(),
        }
        self.policies: dict[str, dict[str, Any]] = {}
        self.assigned: dict[str, str] = {}   # application object id -> policy id

    # ---- seeding (tests, demos) -----------------------------------------------------------
    def set_default(self, *, enabled: bool = True, **knobs: Any) -> dict[str, Any]:
        """Turn the tenant default on with `restrictions(**knobs)` for applications, e.g.
        set_default(password_lifetime="P90D")."""
        with self.lock:
            self.default["isEnabled"] = enabled
            self.default["applicationRestrictions"] = restrictions(**knobs)
            return self.default

    def add(self, display_name: str, *, applies_to: list[dict[str, Any]] = (), enabled: bool = True,  # type: ignore[assignment]
            **knobs: Any) -> dict[str, Any]:
        """Create a policy with `restrictions(**knobs)` and assign it to the applications given."""
        with self.lock:
            policy = self.create({"displayName": display_name, "isEnabled": enabled,
                                  "restrictions": restrictions(**knobs)})
            for app in applies_to:
                self.assign(app["id"], policy["id"])
            return policy

    # ---- the directory side ---------------------------------------------------------------
    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(body.get("displayName"), str) or not body["displayName"].strip():
            raise GraphError(400, "Request_BadRequest", "Property 'displayName' is required.")
        policy = {"id": new_id(), "displayName": body["displayName"], "description": body.get("description"),
                  "isEnabled": bool(body.get("isEnabled", True)),
                  "restrictions": _validate_configuration(body.get("restrictions", {}), "restrictions")}
        with self.lock:
            self.policies[policy["id"]] = policy
        return policy

    def update(self, policy: dict[str, Any], body: dict[str, Any], *, tenant_default: bool = False) -> None:
        fields = ("displayName", "description", "isEnabled") + (
            ("applicationRestrictions", "servicePrincipalRestrictions") if tenant_default else ("restrictions",))
        unknown = [k for k in body if k not in fields and k != "@odata.type"]
        if unknown:
            raise GraphError(400, "Request_BadRequest", f"Property '{unknown[0]}' does not exist on this policy.")
        clean = {k: (_validate_configuration(v, k) if k.endswith("estrictions") else v) for k, v in body.items()
                 if k != "@odata.type"}
        with self.lock:
            policy.update(clean)

    def delete(self, policy_id: str) -> None:
        with self.lock:
            self.policies.pop(policy_id, None)
            for app_id in [a for a, p in self.assigned.items() if p == policy_id]:
                del self.assigned[app_id]

    def assign(self, app_object_id: str, policy_id: str) -> None:
        with self.lock:
            if app_object_id in self.assigned and self.assigned[app_object_id] != policy_id:
                raise GraphError(400, "Request_BadRequest", "Only one app management policy can be assigned to an "
                                 "application; remove the one assigned first.")
            self.assigned[app_object_id] = policy_id

    def policy_of(self, app_object_id: str) -> dict[str, Any] | None:
        with self.lock:
            return self.policies.get(self.assigned.get(app_object_id, ""))

    # ---- enforcement ----------------------------------------------------------------------
    def _effective(self, app: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
        own = self.policy_of(app["id"])
        if own is not None and own["isEnabled"]:
            return own["id"], own["restrictions"]
        if self.default["isEnabled"]:
            return DEFAULT_POLICY_ID, self.default["applicationRestrictions"]
        return None

    def _active(self, app: dict[str, Any], field: str) -> list[tuple[str, dict[str, Any]]]:
        with self.lock:
            eff = self._effective(app)
            if eff is None:
                return []
            policy_id, conf = eff
            created = parse_iso(app["createdDateTime"])
            out = []
            for r in conf.get(field, []):
                after = r.get("restrictForAppsCreatedAfterDateTime")
                if r.get("state", "enabled") == "enabled" and (not after or created >= parse_iso(after)):
                    out.append((policy_id, copy.deepcopy(r)))
            return out

    def check_password(self, app: dict[str, Any], start: _dt.datetime, end: _dt.datetime) -> None:
        """Raise the error Graph answers addPassword with when a policy forbids this secret."""
        for policy_id, r in self._active(app, "passwordCredentials"):
            if r["restrictionType"] == "passwordAddition":
                raise StateError("CredentialTypeNotAllowedAsPerAppPolicy",
                                 f"Credential type not allowed as per assigned policy '{policy_id}'.")
            if r["restrictionType"] == "passwordLifetime" and end - start > parse_duration(r["maxLifetime"]):
                raise _too_long(policy_id)

    def check_key(self, app: dict[str, Any], start: _dt.datetime, end: _dt.datetime) -> None:
        """Raise the error Graph answers a certificate upload with when it lives too long."""
        for policy_id, r in self._active(app, "keyCredentials"):
            if r["restrictionType"] == "asymmetricKeyLifetime" and end - start > parse_duration(r["maxLifetime"]):
                raise _too_long(policy_id)


def _too_long(policy_id: str) -> StateError:
    return StateError("CredentialInvalidLifetimeAsPerAppPolicy",
                      f"Credential lifetime exceeds the max value allowed as per assigned policy '{policy_id}'.")


# ---- Microsoft Graph routes ----------------------------------------------------------------

def _require(graph: GraphService, ctx: Ctx, perms: set[str], roles: set[str], *, apps: bool = False) -> None:
    c = ctx.caller
    assert c is not None
    if not c.has_any(perms) or (apps and not c.has_any(APP_READ)) or (c.kind == "user" and not c.wids & roles):
        raise GraphError(403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")


def serve_policies(graph: GraphService, ctx: Ctx, tail: list[str]) -> Response:
    """/policies/defaultAppManagementPolicy and /policies/appManagementPolicies[/{id}[/appliesTo]]."""
    store = graph.state.policies
    if tail == ["defaultAppManagementPolicy"]:
        if ctx.method == "GET":
            _require(graph, ctx, POLICY_READ, READ_ROLES)
            return graph.single(ctx, store.default, "policies/defaultAppManagementPolicy",
                                "microsoft.graph.tenantAppManagementPolicy")
        if ctx.method == "PATCH":
            _require(graph, ctx, POLICY_WRITE, WRITE_ROLES)
            store.update(store.default, ctx.json(), tenant_default=True)
            return graph.ok(204, None, ctx.headers)
        raise graph.method_not_allowed()
    if not tail or tail[0] != "appManagementPolicies" or len(tail) > 3:
        raise GraphError(400, "BadRequest", f"Resource not found for the segment '{'/'.join(tail) or 'policies'}'.")
    if len(tail) == 1:
        if ctx.method == "GET":
            _require(graph, ctx, POLICY_READ, READ_ROLES)
            return graph.list_objects(ctx, "policies/appManagementPolicies", list(store.policies.values()),
                                      {"id", "displayName", "isEnabled"}, "appManagementPolicy",
                                      "microsoft.graph.appManagementPolicy", check_visible=False)
        if ctx.method == "POST":
            _require(graph, ctx, POLICY_WRITE, WRITE_ROLES)
            policy = store.create(ctx.json())
            out = graph.serialize(policy, None, single=True)
            out["@odata.context"] = f"{ctx.origin}/v1.0/$metadata#policies/appManagementPolicies/$entity"
            return graph.ok(201, out, ctx.headers)
        raise graph.method_not_allowed()
    policy = store.policies.get(tail[1].lower()) if is_guid(tail[1]) else None
    if policy is None:
        raise graph.not_found(tail[1])
    if len(tail) == 3:
        if tail[2] != "appliesTo" or ctx.method != "GET":
            raise GraphError(400, "BadRequest", f"Resource not found for the segment '{tail[2]}'.")
        _require(graph, ctx, POLICY_READ, READ_ROLES, apps=True)
        apps = [dict(a, **{"@odata.type": "#microsoft.graph.application"})
                for a in list(graph.state.applications.values()) if store.assigned.get(a["id"]) == policy["id"]]
        return graph.list_objects(ctx, f"policies/appManagementPolicies('{policy['id']}')/appliesTo", apps,
                                  {"id", "appId", "displayName"}, "directoryObject",
                                  "microsoft.graph.directoryObject")
    if ctx.method == "GET":
        _require(graph, ctx, POLICY_READ, READ_ROLES)
        return graph.single(ctx, policy, "policies/appManagementPolicies", "microsoft.graph.appManagementPolicy")
    if ctx.method == "PATCH":
        _require(graph, ctx, POLICY_WRITE, WRITE_ROLES)
        store.update(policy, ctx.json())
        return graph.ok(204, None, ctx.headers)
    if ctx.method == "DELETE":
        _require(graph, ctx, POLICY_WRITE, WRITE_ROLES)
        store.delete(policy["id"])
        return graph.ok(204, None, ctx.headers)
    raise graph.method_not_allowed()


def serve_app_policies(graph: GraphService, ctx: Ctx, app: dict[str, Any], tail: list[str]) -> Response:
    """/applications/{id}/appManagementPolicies, .../$ref (assign) and .../{policyId}/$ref (remove)."""
    store = graph.state.policies
    if tail == [] and ctx.method == "GET":
        _require(graph, ctx, POLICY_READ, READ_ROLES, apps=True)
        own = store.policy_of(app["id"])
        return graph.list_objects(ctx, f"applications('{app['id']}')/appManagementPolicies",
                                  [own] if own else [], {"id", "displayName", "isEnabled"}, "appManagementPolicy",
                                  "microsoft.graph.appManagementPolicy", check_visible=False)
    if tail == ["$ref"] and ctx.method == "POST":
        _require(graph, ctx, POLICY_WRITE, WRITE_ROLES, apps=True)
        ref = str(ctx.json().get("@odata.id") or "")
        policy_id = ref.rstrip("/").rpartition("/")[2].lower()
        if "/policies/appManagementPolicies/" not in ref or policy_id not in store.policies:
            raise GraphError(400, "Request_BadRequest", f"Invalid @odata.id '{ref}': expected "
                             "https://graph.microsoft.com/v1.0/policies/appManagementPolicies/{id}.")
        store.assign(app["id"], policy_id)
        return graph.ok(204, None, ctx.headers)
    if len(tail) == 2 and tail[1] == "$ref" and ctx.method == "DELETE":
        _require(graph, ctx, POLICY_WRITE, WRITE_ROLES, apps=True)
        with store.lock:
            if store.assigned.get(app["id"]) != tail[0].lower():
                raise graph.not_found(tail[0])
            del store.assigned[app["id"]]
        return graph.ok(204, None, ctx.headers)
    raise graph.method_not_allowed()
