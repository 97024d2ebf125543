"""The Microsoft Graph v1.0 subset the runbooks use, served by the tenant simulator.

Applications (create, list with $filter/$select/$top paging, get, update, delete, upsert by
uniqueName with `Prefer: create-if-missing`, addPassword/removePassword, keyCredentials),
service principals (create, upsert by appId, get, list, delete), app role assignments
(appRoleAssignedTo / appRoleAssignments: grant, list, revoke), /organization, /me and
$batch. Every call checks the bearer token and the caller's rights the way Graph does
(app-only `roles` or delegated `scp`, plus directory roles in `wids` where Graph demands
them), and errors carry Graph's body: {"error": {"code", "message", "innerError":
{"request-id", "date", "client-request-id"}}} with the request id also in a header.

Replication lag is modelled per object: a lagging object is missing from reads and from
references until its lag runs out (see FaultPlan "lag")."""

from __future__ import annotations

import datetime as _dt
import json
import re
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, urlencode

from .tenant_batch import ItemFault, run_batch
from .tenant_policies import serve_app_policies, serve_policies
from .tenant_odata import (
    QueryError,
    decode_skiptoken,
    encode_skiptoken,
    parse_filter,
    parse_select,
)
from .tenant_response import GRAPH_JSON, GraphError, Response
from .tenant_state import (
    APPLICATION_ADMINISTRATOR,
    CLOUD_APPLICATION_ADMINISTRATOR,
    GLOBAL_ADMINISTRATOR,
    GRAPH_APP_ID,
    DEFAULT_SECRET_LIFETIME,
    PRIVILEGED_ROLE_ADMINISTRATOR,
    ROLE_NAMES,
    StateError,
    is_guid,
    parse_iso,
)
from .tenant_tokens import TokenError

if TYPE_CHECKING:  # pragma: no cover
    from .tenant import TenantSimulator

GRAPH_AUDIENCES = {"https://graph.microsoft.com", "https://graph.microsoft.com/", GRAPH_APP_ID,
                   "https://canary.graph.microsoft.com"}

READ_APPS = {"Application.Read.All", "Application.ReadWrite.All", "Application.ReadWrite.OwnedBy",
             "Directory.Read.All", "Directory.ReadWrite.All", "Directory.AccessAsUser.All"}
WRITE_APPS = {"Application.ReadWrite.All"}
OWNED_BY = "Application.ReadWrite.OwnedBy"
CREATE_SP = {"Application.ReadWrite.All", "Directory.ReadWrite.All"}
ASSIGN = "AppRoleAssignment.ReadWrite.All"
ASSIGN_READ_PARTNER = {"Application.Read.All", "Application.ReadWrite.All", "Directory.Read.All",
                       "Directory.ReadWrite.All"}
READ_ASSIGNMENTS = READ_APPS | {ASSIGN}
ORG_DELEGATED = {"User.Read", "User.ReadBasic.All", "User.Read.All", "Directory.Read.All",
                 "Directory.ReadWrite.All", "Directory.AccessAsUser.All"}
ORG_APP = {"Organization.Read.All", "Organization.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"}
ME_DELEGATED = {"User.Read", "User.ReadWrite", "User.ReadBasic.All", "User.Read.All", "User.ReadWrite.All",
                "Directory.Read.All", "Directory.ReadWrite.All", "Directory.AccessAsUser.All"}
GRAPH_GRANT_ROLES = {GLOBAL_ADMINISTRATOR, PRIVILEGED_ROLE_ADMINISTRATOR}
OTHER_GRANT_ROLES = GRAPH_GRANT_ROLES | {APPLICATION_ADMINISTRATOR, CLOUD_APPLICATION_ADMINISTRATOR}

APP_FILTER_FIELDS = {"id", "appId", "displayName", "uniqueName", "publisherDomain", "signInAudience"}
SP_FILTER_FIELDS = {"id", "appId", "displayName", "servicePrincipalType", "accountEnabled", "appOwnerOrganizationId"}
STRING_COLLECTIONS = {"identifierUris", "servicePrincipalNames", "tags"}
ASSIGNMENT_FILTER_FIELDS = {"resourceId", "principalId", "appRoleId", "principalType"}
INSUFFICIENT = "Insufficient privileges to complete the operation."
SEG = re.compile(r"^(?P<set>[A-Za-z$]+)(?:\((?P<kk>[A-Za-z]+)='(?P<kv>(?:[^']|'')*)'\))?$")
WRITABLE_APP = {"displayName", "description", "notes", "tags", "identifierUris", "signInAudience",
                "requiredResourceAccess", "keyCredentials", "web", "spa", "publicClient", "api", "appRoles",
                "info", "isFallbackPublicClient", "isDeviceOnlyAuthSupported", "groupMembershipClaims",
                "optionalClaims", "parentalControlSettings", "tokenEncryptionKeyId", "uniqueName",
                "serviceManagementReference", "addIns", "defaultRedirectUri", "passwordCredentials"}
READONLY_APP = {"id", "appId", "createdDateTime", "deletedDateTime", "publisherDomain",
                "applicationTemplateId", "disabledByMicrosoftStatus", "@odata.type"}


@dataclass
class Caller:
    """Who is calling, from the validated access token."""
    kind: str                    # "app" (client credentials) or "user" (delegated)
    app_id: str
    object_id: str
    permissions: set[str]        # roles (app) or scp (user)
    wids: set[str]
    claims: dict[str, Any] = field(default_factory=dict)

    def has_any(self, perms: set[str]) -> bool:
        return bool(self.permissions & perms)


@dataclass
class Ctx:
    """One Graph request being served (top-level or a $batch item)."""
    method: str
    path: str                    # absolute, "/v1.0/..."
    query: dict[str, str]
    raw_query: list[tuple[str, str]]
    headers: dict[str, str]      # lower-case names
    body: bytes
    origin: str                  # scheme and host the client used: absolute URLs start with it
    caller: Caller | None = None

    def json(self) -> dict[str, Any]:
        if not self.body:
            return {}
        try:
            data = json.loads(self.body)
        except ValueError:
            raise GraphError(400, "BadRequest", "Unable to read JSON request payload. Please ensure Content-Type "
                             "header is set and payload is of valid JSON format.") from None
        if not isinstance(data, dict):
            raise GraphError(400, "BadRequest", "Unable to read JSON request payload: an object was expected.")
        return data

    def prefers(self, token: str) -> bool:
        return token in [p.strip().lower() for p in self.headers.get("prefer", "").split(",")]


def split_segments(path: str) -> list[str]:
    """Split on '/' outside single quotes (keys like uniqueName='a/b' stay whole)."""
    out, cur, quoted = [], [], False
    for ch in path:
        if ch == "'":
            quoted = not quoted
        if ch == "/" and not quoted:
            if cur:
                out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    if cur:
        out.append("".join(cur))
    return out


class GraphService:
    def __init__(self, sim: TenantSimulator) -> None:
        self.sim = sim

    @property
    def state(self):
        return self.sim.state

    # ---- envelope -----------------------------------------------------------------------
    def _headers(self, headers: dict[str, str]) -> tuple[str, str, dict[str, str]]:
        rid = str(uuid.uuid4())
        crid = headers.get("client-request-id") or rid
        h = {"request-id": rid, "client-request-id": crid, "Cache-Control": "no-cache",
             "Strict-Transport-Security": "max-age=31536000",
             "x-ms-ags-diagnostic": json.dumps({"ServerInfo": {"DataCenter": "Simulator", "Slice": "E",
                                                               "Ring": "0", "ScaleUnit": "000",
                                                               "RoleInstance": "psrunner-sim"}})}
        return rid, crid, h

    def error_response(self, status: int, code: str, message: str, headers: dict[str, str],
                       details: list[dict[str, Any]] | None = None, extra: dict[str, str] | None = None) -> Response:
        rid, crid, h = self._headers(headers)
        err: dict[str, Any] = {"code": code, "message": message}
        if details:
            err["details"] = details
        err["innerError"] = {"date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S"),
                             "request-id": rid, "client-request-id": crid}
        h.update(extra or {})
        if status == 401:
            h["WWW-Authenticate"] = ('Bearer realm="", authorization_uri="' + self.sim.origin_for(headers)
                                     + '/common/oauth2/'
                                     'authorize", client_id="' + GRAPH_APP_ID + '"')
        return Response(status, {"error": err}, headers=h, content_type=GRAPH_JSON)

    def fault_response(self, kind: str, retry_after: int, headers: dict[str, str]) -> Response:
        if kind == "throttle":
            return self.error_response(429, "TooManyRequests", "Too many requests.", headers,
                                       extra={"Retry-After": str(retry_after)})
        if kind == "unavailable":
            return self.error_response(503, "serviceNotAvailable", "The service is temporarily unavailable. "
                                       "Please retry later.", headers, extra={"Retry-After": str(retry_after)})
        return self.error_response(504, "UnknownError", "The gateway did not receive a timely response "
                                   "from the upstream service.", headers)

    def ok(self, status: int, body: Any, headers: dict[str, str], extra: dict[str, str] | None = None) -> Response:
        _, _, h = self._headers(headers)
        h.update(extra or {})
        if body is None:
            return Response(status, None, headers=h)
        if isinstance(body, dict) and "@odata.context" in body:
            body = {"@odata.context": body.pop("@odata.context"), **body}
        return Response(status, body, headers=h, content_type=GRAPH_JSON)

    # ---- entry points -------------------------------------------------------------------
    def handle(self, method: str, path: str, query: str, headers: dict[str, str], body: bytes,
               *, item_fault: ItemFault | None = None,
               caller: Caller | None = None, in_batch: bool = False) -> Response:
        """Serve one Graph request. `headers` have lower-case names. `item_fault` is consulted
        for each $batch sub-request (per-item throttling)."""
        raw_query = parse_qsl(query, keep_blank_values=True)
        ctx = Ctx(method.upper(), path, {k: v for k, v in raw_query}, raw_query, headers, body,
                  self.sim.origin_for(headers))
        try:
            if caller is None:
                caller = self.authenticate(headers)
            ctx.caller = caller
            segs = split_segments(path)
            if len(segs) > 1 and segs[1].lower() == "myorganization":  # what many SDKs send
                segs = [segs[0], *segs[2:]]
            if not segs or segs[0] != "v1.0":
                if segs and segs[0] == "beta":
                    raise GraphError(400, "BadRequest", "The simulator serves Microsoft Graph v1.0 only.")
                raise GraphError(400, "BadRequest", f"Invalid version: {segs[0] if segs else ''}")
            rest = segs[1:]
            if rest == ["$batch"]:
                if in_batch or ctx.method != "POST":
                    raise GraphError(400, "BadRequest", "Nested $batch requests are not allowed." if in_batch
                                     else "Specified HTTP method is not allowed for the request target.")
                return run_batch(self, ctx, item_fault)
            return self.dispatch(ctx, rest)
        except GraphError as e:
            return self.error_response(e.status, e.code, e.message, headers, e.details, e.headers)
        except QueryError as e:
            return self.error_response(400, e.code, e.message, headers)
        except StateError as e:
            return self.error_response(e.status, e.code, e.message, headers)

    def authenticate(self, headers: dict[str, str]) -> Caller:
        auth = headers.get("authorization", "")
        if not auth.strip():
            raise GraphError(401, "InvalidAuthenticationToken", "Access token is empty.")
        scheme, _, token = auth.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise GraphError(401, "InvalidAuthenticationToken", "Access token is empty.")
        try:
            claims = self.sim.signer.verify(token.strip())
        except TokenError as e:
            raise GraphError(401, "InvalidAuthenticationToken", e.reason) from None
        if claims.get("aud") not in GRAPH_AUDIENCES:
            raise GraphError(401, "InvalidAuthenticationToken", "Access token validation failure. Invalid audience.")
        if claims.get("tid") != self.sim.tenant_id:
            raise GraphError(401, "InvalidAuthenticationToken", "Access token validation failure. Invalid issuer.")
        exp = claims.get("exp")
        if not isinstance(exp, (int, float)) or exp <= _dt.datetime.now(_dt.timezone.utc).timestamp():
            raise GraphError(401, "InvalidAuthenticationToken", "Lifetime validation failed, the token is expired.")
        wids = set(claims.get("wids") or [])
        if claims.get("idtyp") == "app" or "scp" not in claims:
            return Caller("app", claims.get("appid", ""), claims.get("oid", ""), set(claims.get("roles") or []),
                          wids, claims)
        # Graph decides a user's directory roles from the directory, whether or not the token
        # carries them in `wids`.
        wids |= self.state.directory_roles.get(str(claims.get("oid", "")), set())
        return Caller("user", claims.get("appid", ""), claims.get("oid", ""), set(str(claims["scp"]).split()),
                      wids, claims)

    # ---- authorization ------------------------------------------------------------------
    def _deny(self) -> GraphError:
        return GraphError(403, "Authorization_RequestDenied", INSUFFICIENT)

    def require(self, ctx: Ctx, perms: set[str]) -> None:
        assert ctx.caller is not None
        if not ctx.caller.has_any(perms):
            raise self._deny()

    def require_app_write(self, ctx: Ctx, app: dict[str, Any] | None) -> None:
        """Application.ReadWrite.All, or (app-only) Application.ReadWrite.OwnedBy on an app the
        caller owns (or is creating: app is None)."""
        c = ctx.caller
        assert c is not None
        if c.has_any(WRITE_APPS):
            return
        if c.kind == "app" and OWNED_BY in c.permissions and (
                app is None or c.object_id in self.state.owners.get(app["id"], set())):
            return
        raise self._deny()

    # ---- routing ------------------------------------------------------------------------
    def dispatch(self, ctx: Ctx, rest: list[str]) -> Response:
        if not rest:
            raise GraphError(400, "BadRequest", "Resource not found for the segment ''.")
        m = SEG.match(rest[0])
        if not m:
            raise GraphError(400, "BadRequest", f"Resource not found for the segment '{rest[0]}'.")
        entity, kk, kv = m.group("set"), m.group("kk"), m.group("kv")
        key = (kk, kv.replace("''", "'")) if kk else None
        tail = rest[1:]
        if entity == "applications":
            return self.applications(ctx, key, tail)
        if entity == "servicePrincipals":
            return self.service_principals(ctx, key, tail)
        if entity == "policies" and not key:
            return serve_policies(self, ctx, tail)
        if entity == "organization" and not key and not tail:
            return self.organization(ctx)
        if entity == "me" and not key and not tail:
            return self.me(ctx)
        if entity == "me" and not key and tail == ["transitiveMemberOf", "microsoft.graph.directoryRole"]:
            return self.my_directory_roles(ctx)
        raise GraphError(400, "BadRequest", f"Resource not found for the segment '{rest[0]}'.")

    def method_not_allowed(self) -> GraphError:
        return GraphError(405, "Request_BadRequest", "Specified HTTP method is not allowed for the request target.")

    def not_found(self, ident: str) -> GraphError:
        return GraphError(404, "Request_ResourceNotFound", f"Resource '{ident}' does not exist or one of its "
                          "queried reference-property objects are not present.")

    def _check_id(self, value: str) -> str:
        if not is_guid(value):
            raise GraphError(400, "Request_BadRequest", f"Invalid object identifier '{value}'.")
        return value.lower()

    # ---- applications -------------------------------------------------------------------
    def _find(self, what: str, collection: dict[str, dict[str, Any]], lookups: dict[str, Any],
              key: tuple[str, str] | None, ident: str | None, observe: bool) -> dict[str, Any]:
        """An object by id, or by one of its alternate keys (`lookups`: key name -> finder)."""
        if key is not None:
            kk, kv = key
            if kk not in lookups:
                raise GraphError(400, "BadRequest", f"'{kk}' is not an alternate key of {what}.")
            obj, label = lookups[kk](kv), kv
        else:
            assert ident is not None
            obj, label = collection.get(self._check_id(ident)), ident
        if obj is None or (observe and not self.state.visible(obj["id"])):
            raise self.not_found(label)
        return obj

    def _find_app(self, key: tuple[str, str] | None, ident: str | None, *, observe: bool = True) -> dict[str, Any]:
        st = self.state
        return self._find("application", st.applications,
                          {"uniqueName": st.app_by_unique_name,
                           "appId": lambda v: st.app_by_app_id(v) if is_guid(v) else None},
                          key, ident, observe)

    def applications(self, ctx: Ctx, key: tuple[str, str] | None, tail: list[str]) -> Response:
        if key is None and not tail:
            if ctx.method == "GET":
                self.require(ctx, READ_APPS)
                return self.list_objects(ctx, "applications", list(self.state.applications.values()),
                                         APP_FILTER_FIELDS, "application", "microsoft.graph.application")
            if ctx.method == "POST":
                self.require_app_write(ctx, None)
                return self.create_app(ctx, ctx.json())
            raise self.method_not_allowed()
        ident = None
        if key is None:
            ident, tail = tail[0], tail[1:]
        if not tail:
            if ctx.method == "GET":
                self.require(ctx, READ_APPS)
                app = self._find_app(key, ident)
                return self.single(ctx, app, "applications", "microsoft.graph.application")
            if ctx.method == "PATCH":
                return self.patch_app(ctx, key, ident)
            if ctx.method == "DELETE":
                app = self._find_app(key, ident)
                self.require_app_write(ctx, app)
                self.state.delete_application(app)
                return self.ok(204, None, ctx.headers)
            raise self.method_not_allowed()
        if tail[0] == "appManagementPolicies":
            return serve_app_policies(self, ctx, self._find_app(key, ident), tail[1:])
        if len(tail) == 1 and tail[0] in ("addPassword", "removePassword"):
            if ctx.method != "POST":
                raise self.method_not_allowed()
            app = self._find_app(key, ident)
            self.require_app_write(ctx, app)
            return self.add_password(ctx, app) if tail[0] == "addPassword" else self.remove_password(ctx, app)
        raise GraphError(400, "BadRequest", f"Resource not found for the segment '{tail[0]}'.")

    def _validate_app_body(self, body: dict[str, Any], existing: dict[str, Any] | None) -> None:
        for k in body:
            if k not in WRITABLE_APP and k not in READONLY_APP:
                raise GraphError(400, "Request_BadRequest", f"Property '{k}' does not exist on type "
                                 "'microsoft.graph.application'. Make sure to only use property names that are "
                                 "defined by the type.")
        if "passwordCredentials" in body:
            raise GraphError(400, "Request_BadRequest", "Updating passwordCredentials is not supported; use the "
                             "addPassword and removePassword methods.")
        if "displayName" in body and (not isinstance(body["displayName"], str) or not body["displayName"].strip()):
            raise GraphError(400, "Request_BadRequest", "Invalid value specified for property 'displayName' of "
                             "resource 'Application'.")
        if existing is not None and "uniqueName" in body and existing.get("uniqueName") and \
                str(body["uniqueName"]).lower() != existing["uniqueName"].lower():
            raise GraphError(400, "Request_BadRequest", "Property 'uniqueName' is read-only once set.")
        rra = body.get("requiredResourceAccess")
        if rra is not None:
            bad = GraphError(400, "Request_BadRequest", "Invalid value specified for property "
                             "'requiredResourceAccess' of resource 'Application'.")
            if not isinstance(rra, list):
                raise bad
            for r in rra:
                if not isinstance(r, dict) or not is_guid(r.get("resourceAppId")) or \
                        not isinstance(r.get("resourceAccess"), list):
                    raise bad
                for a in r["resourceAccess"]:
                    if not isinstance(a, dict) or a.get("type") not in ("Role", "Scope") or not is_guid(a.get("id")):
                        raise bad

    def create_app(self, ctx: Ctx, body: dict[str, Any], unique_name: str | None = None) -> Response:
        if unique_name is not None:
            body = {**body, "uniqueName": unique_name}
        self._validate_app_body(body, None)
        if not body.get("displayName"):
            raise GraphError(400, "Request_BadRequest", "Property 'displayName' is required.")
        st = self.state
        with st.lock:
            un = body.get("uniqueName")
            if un and st.app_by_unique_name(str(un)) is not None:
                raise GraphError(400, "Request_BadRequest", "Another object with the same value for property "
                                 "uniqueName already exists.", details=[{"code": "ObjectConflict", "message":
                                 "Another object with the same value for property uniqueName already exists.",
                                 "target": "uniqueName"}])
            assert ctx.caller is not None
            owner = ctx.caller.object_id
            app = st.create_application(body, owner=owner)
            self.sim.lag_new_object(ctx.method, ctx.path, app["id"])
        out = self.serialize(app, None, single=True)
        out["@odata.context"] = f"{ctx.origin}/v1.0/$metadata#applications/$entity"
        loc = f"{ctx.origin}/v2/{self.sim.tenant_id}/directoryObjects/{app['id']}/Microsoft.DirectoryServices.Application"
        return self.ok(201, out, ctx.headers, {"Location": loc})

    def patch_app(self, ctx: Ctx, key: tuple[str, str] | None, ident: str | None) -> Response:
        body = ctx.json()
        upsert = key is not None and key[0] == "uniqueName" and ctx.prefers("create-if-missing")
        st = self.state
        with st.lock:
            try:
                app = self._find_app(key, ident, observe=not upsert)
            except GraphError as e:
                if e.status == 404 and upsert:
                    self.require_app_write(ctx, None)
                    assert key is not None
                    return self.create_app(ctx, body, unique_name=key[1])
                raise
            self.require_app_write(ctx, app)
            self._validate_app_body(body, app)
            st.update_application(app, body)
        return self.ok(204, None, ctx.headers)

    def add_password(self, ctx: Ctx, app: dict[str, Any]) -> Response:
        body = ctx.json()
        pc = body.get("passwordCredential") or {}
        if not isinstance(pc, dict):
            raise GraphError(400, "Request_BadRequest", "Invalid value specified for property 'passwordCredential'.")
        try:
            start = parse_iso(pc["startDateTime"]) if pc.get("startDateTime") else None
            end = parse_iso(pc["endDateTime"]) if pc.get("endDateTime") else None
        except (ValueError, TypeError):
            raise GraphError(400, "Request_BadRequest", "Invalid value specified for property 'endDateTime' of "
                             "resource 'PasswordCredential'.") from None
        now = _dt.datetime.now(_dt.timezone.utc)
        if end is not None and (end <= now or (start is not None and end <= start)):
            raise GraphError(400, "Request_BadRequest", "Invalid value specified for property 'endDateTime' of "
                             "resource 'PasswordCredential'.")
        start = start or now
        end = end or start + DEFAULT_SECRET_LIFETIME
        assert self.state.policies is not None
        self.state.policies.check_password(app, start, end)
        cred, text = self.state.add_password(app, pc.get("displayName"), end, start)
        out = dict(cred)
        out["secretText"] = text
        out["@odata.context"] = f"{ctx.origin}/v1.0/$metadata#microsoft.graph.passwordCredential"
        return self.ok(200, out, ctx.headers)

    def remove_password(self, ctx: Ctx, app: dict[str, Any]) -> Response:
        key_id = str(ctx.json().get("keyId") or "")
        if not is_guid(key_id):
            raise GraphError(400, "Request_BadRequest", "Invalid value specified for property 'keyId'.")
        if not self.state.remove_password(app, key_id):
            raise GraphError(400, "Request_BadRequest", f"No password credential found with keyId '{key_id}'.")
        return self.ok(204, None, ctx.headers)

    # ---- service principals -------------------------------------------------------------
    def _find_sp(self, key: tuple[str, str] | None, ident: str | None, *, observe: bool = True) -> dict[str, Any]:
        st = self.state
        return self._find("servicePrincipal", st.service_principals,
                          {"appId": lambda v: st.sp_by_app_id(v) if is_guid(v) else None},
                          key, ident, observe)

    def service_principals(self, ctx: Ctx, key: tuple[str, str] | None, tail: list[str]) -> Response:
        if key is None and not tail:
            if ctx.method == "GET":
                self.require(ctx, READ_APPS)
                return self.list_objects(ctx, "servicePrincipals", list(self.state.service_principals.values()),
                                         SP_FILTER_FIELDS, "servicePrincipal", "microsoft.graph.servicePrincipal")
            if ctx.method == "POST":
                body = ctx.json()
                return self.create_sp(ctx, str(body.get("appId") or ""), body)
            raise self.method_not_allowed()
        ident = None
        if key is None:
            ident, tail = tail[0], tail[1:]
        if not tail:
            if ctx.method == "GET":
                self.require(ctx, READ_APPS)
                return self.single(ctx, self._find_sp(key, ident), "servicePrincipals",
                                   "microsoft.graph.servicePrincipal")
            if ctx.method == "PATCH":
                return self.patch_sp(ctx, key, ident)
            if ctx.method == "DELETE":
                sp = self._find_sp(key, ident)
                app = self.state.app_by_app_id(sp["appId"])
                if app is None:  # not one of ours (first-party or multi-tenant)
                    self.require(ctx, {"Application.ReadWrite.All", "Directory.ReadWrite.All"})
                else:
                    self.require_app_write(ctx, app)
                self.state.delete_service_principal(sp)
                return self.ok(204, None, ctx.headers)
            raise self.method_not_allowed()
        if tail[0] in ("appRoleAssignments", "appRoleAssignedTo") and len(tail) <= 2:
            return self.assignments(ctx, key, ident, tail[0], tail[1] if len(tail) == 2 else None)
        raise GraphError(400, "BadRequest", f"Resource not found for the segment '{tail[0]}'.")

    def _sp_create_allowed(self, ctx: Ctx, app: dict[str, Any] | None) -> None:
        c = ctx.caller
        assert c is not None
        if c.has_any(CREATE_SP):
            return
        if c.kind == "app" and OWNED_BY in c.permissions and app is not None and \
                c.object_id in self.state.owners.get(app["id"], set()):
            return
        raise self._deny()

    def _no_backing_app(self, app_id: str) -> GraphError:
        msg = f"The appId '{app_id}' of the service principal does not reference a valid application object."
        return GraphError(400, "Request_BadRequest", msg,
                          details=[{"code": "NoBackingApplicationObject", "message": msg, "target": "appId"}])

    def _not_local_tenant(self) -> GraphError:
        # What Graph answers an app-only caller creating the service principal of an app it
        # created a moment ago, before the app has replicated (azure-cli #28009,
        # azure-powershell #29530, terraform-provider-azuread #504 quote this body).
        return GraphError(403, "Authorization_RequestDenied", "When using this permission, the backing application "
                          "of the service principal being created must in the local tenant")

    def create_sp(self, ctx: Ctx, app_id: str, body: dict[str, Any], *, upsert: bool = False) -> Response:
        st = self.state
        if not is_guid(app_id):
            raise GraphError(400, "Request_BadRequest", "Invalid value specified for property 'appId' of resource "
                             "'ServicePrincipal'.")
        with st.lock:
            app = st.app_by_app_id(app_id)
            self._sp_create_allowed(ctx, app)
            existing = st.sp_by_app_id(app_id)
            if existing is not None and not upsert:
                raise GraphError(409, "Request_MultipleObjectsWithSameKeyValue", "The service principal cannot be "
                                 "created, updated, or restored because the service principal name "
                                 f"{app_id} is already in use.")
            lag = st.lagging(app["id"]) if app is not None else None
            if app is None or not st.visible(app["id"]):
                if lag is not None and lag.local_tenant and ctx.caller is not None and ctx.caller.kind == "app":
                    raise self._not_local_tenant()
                raise self._no_backing_app(app_id)
            clean = {k: v for k, v in body.items() if k != "appId"}
            sp = st.create_service_principal(app, clean)
            assert ctx.caller is not None
            if ctx.caller.kind == "app" and not ctx.caller.has_any(CREATE_SP):
                st.owners.setdefault(sp["id"], set()).add(ctx.caller.object_id)
            self.sim.lag_new_object(ctx.method, ctx.path, sp["id"])
        out = self.serialize(sp, None, single=True)
        out["@odata.context"] = f"{ctx.origin}/v1.0/$metadata#servicePrincipals/$entity"
        return self.ok(201, out, ctx.headers)

    def patch_sp(self, ctx: Ctx, key: tuple[str, str] | None, ident: str | None) -> Response:
        body = ctx.json()
        upsert = key is not None and ctx.prefers("create-if-missing")
        st = self.state
        with st.lock:
            try:
                sp = self._find_sp(key, ident, observe=not upsert)
            except GraphError as e:
                if e.status == 404 and upsert:
                    assert key is not None
                    return self.create_sp(ctx, key[1], body, upsert=True)
                raise
            app = st.app_by_app_id(sp["appId"])
            if app is None:
                self.require(ctx, {"Application.ReadWrite.All", "Directory.ReadWrite.All"})
            else:
                self.require_app_write(ctx, app)
            st.update_service_principal(sp, body)
        return self.ok(204, None, ctx.headers)

    # ---- app role assignments -----------------------------------------------------------
    def assignments(self, ctx: Ctx, key: tuple[str, str] | None, ident: str | None, nav: str,
                    assignment_id: str | None) -> Response:
        st = self.state
        sp = self._find_sp(key, ident)
        side = "principalId" if nav == "appRoleAssignments" else "resourceId"
        if assignment_id is None:
            if ctx.method == "GET":
                self.require(ctx, READ_ASSIGNMENTS)
                items = st.assignments_of(sp["id"]) if side == "principalId" else st.assignments_to(sp["id"])
                return self.list_objects(ctx, f"servicePrincipals('{sp['id']}')/{nav}", items,
                                         ASSIGNMENT_FILTER_FIELDS, "appRoleAssignment",
                                         "microsoft.graph.appRoleAssignment", check_visible=False)
            if ctx.method == "POST":
                return self.grant(ctx, sp, nav)
            raise self.method_not_allowed()
        a = st.app_role_assignments.get(assignment_id)
        if a is None or a[side] != sp["id"]:
            raise self.not_found(assignment_id)
        if ctx.method == "GET":
            self.require(ctx, READ_ASSIGNMENTS)
            out = self.serialize(a, self._select(ctx, a, "microsoft.graph.appRoleAssignment"), single=True)
            out["@odata.context"] = (f"{ctx.origin}/v1.0/$metadata#servicePrincipals('{sp['id']}')/"
                                     f"{nav}/$entity")
            return self.ok(200, out, ctx.headers)
        if ctx.method == "DELETE":
            self.require(ctx, {ASSIGN})
            st.delete_assignment(a)
            return self.ok(204, None, ctx.headers)
        raise self.method_not_allowed()

    def grant(self, ctx: Ctx, sp: dict[str, Any], nav: str) -> Response:
        """POST appRoleAssignedTo (on the resource) or appRoleAssignments (on the principal)."""
        c = ctx.caller
        assert c is not None
        if ASSIGN not in c.permissions or not c.has_any(ASSIGN_READ_PARTNER):
            raise self._deny()
        body = ctx.json()
        for prop in ("principalId", "resourceId", "appRoleId"):
            if not is_guid(body.get(prop)):
                raise GraphError(400, "Request_BadRequest", f"Invalid value specified for property '{prop}' of "
                                 "resource 'AppRoleAssignment'.")
        st = self.state
        with st.lock:
            if nav == "appRoleAssignedTo":
                resource = sp
                if body["resourceId"].lower() != sp["id"]:
                    raise GraphError(400, "Request_BadRequest", "The resourceId in the request body must be the id "
                                     "of the service principal in the request URL.")
                principal = st.service_principals.get(body["principalId"].lower())
                principal_type = "ServicePrincipal"
                if principal is None:
                    principal = st.users.get(body["principalId"].lower())
                    principal_type = "User"
                if principal is None or not st.visible(principal["id"]):
                    raise GraphError(400, "Request_BadRequest", "Not a valid reference update.")
            else:
                principal, principal_type = sp, "ServicePrincipal"
                if body["principalId"].lower() != sp["id"]:
                    raise GraphError(400, "Request_BadRequest", "The principalId in the request body must be the id "
                                     "of the service principal in the request URL.")
                resource = st.service_principals.get(body["resourceId"].lower())
                if resource is None or not st.visible(resource["id"]):
                    raise GraphError(400, "Request_BadRequest", "Not a valid reference update.")
            if c.kind == "user":
                need = GRAPH_GRANT_ROLES if resource["appId"] == GRAPH_APP_ID else OTHER_GRANT_ROLES
                if not (c.wids & need):
                    raise self._deny()
            member = "Application" if principal_type == "ServicePrincipal" else "User"
            role = next((r for r in resource.get("appRoles", []) if r["id"].lower() == body["appRoleId"].lower()), None)
            default_access = body["appRoleId"] == "00000000-0000-0000-0000-000000000000" and not resource.get("appRoles")
            if not default_access and (role is None or not role.get("isEnabled", True)
                                       or member not in role.get("allowedMemberTypes", [])):
                raise GraphError(400, "Request_BadRequest", "Permission being assigned was not found on application "
                                 f"'{resource['appId']}'.")
            if st.find_assignment(principal["id"], resource["id"], body["appRoleId"]) is not None:
                raise GraphError(400, "Request_BadRequest", "Permission being assigned already exists on the object.")
            a = st.create_assignment(principal, resource, body["appRoleId"].lower(), principal_type)
        out = self.serialize(a, None, single=True)
        out["@odata.context"] = f"{ctx.origin}/v1.0/$metadata#servicePrincipals('{sp['id']}')/{nav}/$entity"
        return self.ok(201, out, ctx.headers)

    # ---- organization and me ------------------------------------------------------------
    def organization(self, ctx: Ctx) -> Response:
        if ctx.method != "GET":
            raise self.method_not_allowed()
        c = ctx.caller
        assert c is not None
        self.require(ctx, ORG_APP if c.kind == "app" else ORG_DELEGATED)
        return self.list_objects(ctx, "organization", [self.state.organization], {"id"}, "organization",
                                 "microsoft.graph.organization", check_visible=False)

    def me(self, ctx: Ctx) -> Response:
        if ctx.method != "GET":
            raise self.method_not_allowed()
        c = ctx.caller
        assert c is not None
        if c.kind != "user":
            raise GraphError(400, "BadRequest", "/me request is only valid with delegated authentication flow.")
        self.require(ctx, ME_DELEGATED)
        user = self.state.users.get(c.object_id)
        if user is None:
            raise self.not_found(c.object_id)
        return self.single(ctx, user, "users", "microsoft.graph.user")

    def my_directory_roles(self, ctx: Ctx) -> Response:
        """GET /me/transitiveMemberOf/microsoft.graph.directoryRole: the signed-in user's
        directory roles ("List a user's memberships (direct and transitive)", User.Read)."""
        c = ctx.caller
        assert c is not None
        if ctx.method != "GET":
            raise self.method_not_allowed()
        if c.kind != "user":
            raise GraphError(400, "BadRequest", "/me request is only valid with delegated authentication flow.")
        self.require(ctx, ME_DELEGATED)
        roles = [{"id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.state.tenant_id}/{t}")),
                  "displayName": ROLE_NAMES.get(t, t), "roleTemplateId": t, "description": None,
                  "deletedDateTime": None}
                 for t in sorted(self.state.directory_roles.get(c.object_id, set()))]
        return self.list_objects(ctx, "directoryRoles", roles, {"displayName", "roleTemplateId"}, "directoryRole",
                                 "microsoft.graph.directoryRole", check_visible=False)

    # ---- reads: select, list, paging ----------------------------------------------------
    def _check_query_options(self, ctx: Ctx, allowed: set[str]) -> None:
        for k, _ in ctx.raw_query:
            name = k if k.startswith("$") else "$" + k
            if name not in allowed:
                raise GraphError(400, "BadRequest", f"Query option '{name}' is not supported by the simulator "
                                 "for this request.")

    def _opt(self, ctx: Ctx, name: str) -> str | None:
        return ctx.query.get(name, ctx.query.get(name.lstrip("$")))

    def _select(self, ctx: Ctx, sample: dict[str, Any], type_name: str) -> list[str] | None:
        text = self._opt(ctx, "$select")
        if text is None:
            return None
        return parse_select(text, set(sample.keys()), type_name)

    def serialize(self, obj: dict[str, Any], select: list[str] | None, *, single: bool) -> dict[str, Any]:
        """Graph's view of a stored object: selected properties only; keyCredentials' `key`
        is null unless a single object was read with $select=keyCredentials."""
        out = {k: obj[k] for k in select} if select else dict(obj)
        if "keyCredentials" in out:
            show_key = single and select is not None and "keyCredentials" in select
            out["keyCredentials"] = [dict(kc, key=kc.get("key") if show_key else None)
                                     for kc in out["keyCredentials"]]
        if "passwordCredentials" in out:
            out["passwordCredentials"] = [dict(pc, secretText=None) for pc in out["passwordCredentials"]]
        return json.loads(json.dumps(out))  # a deep copy: callers never share stored dicts

    def single(self, ctx: Ctx, obj: dict[str, Any], set_name: str, type_name: str) -> Response:
        self._check_query_options(ctx, {"$select"})
        select = self._select(ctx, obj, type_name)
        out = self.serialize(obj, select, single=True)
        ctx_sel = f"({','.join(select)})" if select else ""
        out["@odata.context"] = f"{ctx.origin}/v1.0/$metadata#{set_name}{ctx_sel}/$entity"
        return self.ok(200, out, ctx.headers)

    def list_objects(self, ctx: Ctx, set_name: str, items: list[dict[str, Any]], filter_fields: set[str],
                     resource: str, type_name: str, *, check_visible: bool = True) -> Response:
        with self.state.lock:  # a consistent page while other requests write
            return self._list_objects(ctx, set_name, items, filter_fields, resource, type_name, check_visible)

    def _list_objects(self, ctx: Ctx, set_name: str, items: list[dict[str, Any]], filter_fields: set[str],
                      resource: str, type_name: str, check_visible: bool) -> Response:
        self._check_query_options(ctx, {"$filter", "$select", "$top", "$skiptoken", "$count"})
        if self._opt(ctx, "$count") not in (None, "false") and \
                ctx.headers.get("consistencylevel", "").lower() != "eventual":
            raise GraphError(400, "Request_BadRequest", "$count is not currently supported.")
        sample = items[0] if items else {}
        select = self._select(ctx, sample, type_name) if sample else None
        if self._opt(ctx, "$select") is not None and not sample:
            select = [s.strip() for s in (self._opt(ctx, "$select") or "").split(",") if s.strip()]
        flt = self._opt(ctx, "$filter")
        if flt:
            pred = parse_filter(flt, filter_fields, STRING_COLLECTIONS, resource)
            items = [o for o in items if pred(o)]
        if check_visible:
            lagging = self.state.lag_ids()
            if lagging:
                items = [o for o in items if o["id"] not in lagging or self.state.visible(o["id"])]
        top_s = self._opt(ctx, "$top")
        if top_s is not None:
            try:
                top = int(top_s)
            except ValueError:
                top = -1
            if not 1 <= top <= 999:
                raise GraphError(400, "Request_BadRequest", f"Invalid page size specified: '{top_s}'. Must be "
                                 "between 1 and 999 inclusive.")
            page_size = top
        else:
            page_size = self.sim.page_size
        tok = self._opt(ctx, "$skiptoken")
        offset = decode_skiptoken(tok) if tok else 0
        page = items[offset:offset + page_size]
        sel = f"({','.join(select)})" if select else ""
        out: dict[str, Any] = {"@odata.context": f"{ctx.origin}/v1.0/$metadata#{set_name}{sel}"}
        if self._opt(ctx, "$count") == "true":
            out["@odata.count"] = len(items)
        if offset + page_size < len(items):
            params = [(k, v) for k, v in ctx.raw_query if k.lstrip("$") != "skiptoken"]
            params.append(("$skiptoken", encode_skiptoken(offset + page_size)))
            out["@odata.nextLink"] = (f"{ctx.origin}{quote(ctx.path, safe='/()=$,')}?"
                                      f"{urlencode(params, quote_via=quote, safe='$,()')}")
        out["value"] = [self.serialize(o, select, single=False) for o in page]
        return self.ok(200, out, ctx.headers)
