"""Entra ID directory state of the simulated tenant: applications, service principals, app
role assignments, users, directory role memberships and credentials.

Objects are stored in the JSON shape Microsoft Graph v1.0 returns, so handlers can serve them
with little translation and tests can read them as Graph would show them. What Graph never
shows is kept apart: client secret hashes (`secretText` is returned once by addPassword and
never stored), certificate public keys for client assertions, owners, directory roles and
replication-lag bookkeeping.

The three resource service principals the runbooks grant permissions on are seeded with
their app roles from runner/data/permissions.csv, so consent is checked against the real
app role ids. Azure AD Graph (00000002-0000-0000-c000-000000000000) is retired and absent."""

from __future__ import annotations

import base64
import csv
import datetime as _dt
import hashlib
import hmac
import importlib.resources
import secrets as _secrets
import string
import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .tenant_faults import LagState

if TYPE_CHECKING:  # pragma: no cover
    from .tenant_policies import AppManagementPolicies

GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
SHAREPOINT_APP_ID = "00000003-0000-0ff1-ce00-000000000000"
EXCHANGE_APP_ID = "00000002-0000-0ff1-ce00-000000000000"
AAD_GRAPH_APP_ID = "00000002-0000-0000-c000-000000000000"  # fully retired 2025-07-01 (Microsoft Entra Blog): never seeded
MICROSOFT_TENANT_ID = "f8cdef31-a31e-4b4a-93e4-5f571e91255a"  # owner of first-party apps

# Directory role template ids (the `wids` claim).
GLOBAL_ADMINISTRATOR = "62e90394-69f5-4237-9190-012177145e10"
PRIVILEGED_ROLE_ADMINISTRATOR = "e8611ab8-c189-46e8-94e1-60213ab1f814"
APPLICATION_ADMINISTRATOR = "9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3"
CLOUD_APPLICATION_ADMINISTRATOR = "158c047a-c907-4556-b7ef-446551a6b5f7"
GLOBAL_READER = "f2ef992c-3afb-46b9-b7cf-a126ee74c451"
DEFAULT_USER_ROLE = "b79fbf4d-3ef9-4689-8143-76b194e85509"  # in every member's wids
ROLE_NAMES = {GLOBAL_ADMINISTRATOR: "Global Administrator",
              PRIVILEGED_ROLE_ADMINISTRATOR: "Privileged Role Administrator",
              APPLICATION_ADMINISTRATOR: "Application Administrator",
              CLOUD_APPLICATION_ADMINISTRATOR: "Cloud Application Administrator",
              GLOBAL_READER: "Global Reader"}

# First-party public clients that may run the device-code flow in any tenant.
GRAPH_CLI_CLIENT_ID = "14d82eec-204b-4c2f-b7e8-296a70dab67e"  # Microsoft Graph Command Line Tools
AZURE_CLI_CLIENT_ID = "04b07795-8ddb-461a-bbee-02f9e1bf7b46"
FIRST_PARTY_PUBLIC_CLIENTS = {
    GRAPH_CLI_CLIENT_ID: "Microsoft Graph Command Line Tools",
    AZURE_CLI_CLIENT_ID: "Microsoft Azure CLI",
}

# Microsoft Graph app roles the operator needs, beyond the seed's table (ids from
# microsoft-graph-docs-contrib concepts/includes/permissions-ids.md).
EXTRA_GRAPH_APP_ROLES = {
    "Application.ReadWrite.All": "1bfefb4e-e0b5-418b-a88f-73c46d2cc8e9",
    "AppRoleAssignment.ReadWrite.All": "06b708a9-e830-4db3-a914-8e69da51d44f",
    "Application.Read.All": "9a5d68dd-52b0-4cc2-bd40-abcf44ac3a30",
    "Application.ReadWrite.OwnedBy": "18a4783c-866b-4cc7-a460-3d5e5662c884",
    "Directory.Read.All": "7ab1d382-f21e-4acd-a863-ba3e13f7da61",
    "Policy.Read.All": "246dd0d5-5bd0-4def-940b-0421030a5b68",
    "Policy.ReadWrite.ApplicationConfiguration": "be74164b-cff1-491c-8741-e671cb536e13",
}
# Delegated permission scopes on Microsoft Graph (same source).
GRAPH_DELEGATED_SCOPES = {
    "Application.ReadWrite.All": "bdfbf15f-ee85-4955-8675-146e8e5296b5",
    "AppRoleAssignment.ReadWrite.All": "84bccea3-f856-4a8a-967b-dbe0a3d53a64",
    "Application.Read.All": "c79f8feb-a9db-4090-85f9-90d820caa0eb",
    "Directory.Read.All": "06da0dbc-49e2-44d2-8312-53f166ab848a",
    "Directory.ReadWrite.All": "c5366453-9fb0-48a5-a156-24f0c49a4b84",
    "User.Read": "e1fe6dd8-ba31-4d61-89e7-88639da4683d",
    "Policy.Read.All": "572fea84-0151-49b2-9301-11cb16974376",
    "Policy.ReadWrite.ApplicationConfiguration": "b27add92-efb2-4f16-84f5-8108ba77985c",
}

# addPassword's endDateTime when none is given: two years ("passwordCredential resource
# type": "The default value is two years from the startDateTime"); there is no maximum.
DEFAULT_SECRET_LIFETIME = _dt.timedelta(days=730)

RESOURCES = {
    GRAPH_APP_ID: ("Microsoft Graph", ["https://graph.microsoft.com", "https://graph.microsoft.com/",
                                       "https://canary.graph.microsoft.com"]),
    SHAREPOINT_APP_ID: ("Office 365 SharePoint Online", ["https://microsoft.sharepoint-df.com"]),
    EXCHANGE_APP_ID: ("Office 365 Exchange Online", ["https://outlook.office365.com",
                                                     "https://outlook.office.com"]),
}


def now_iso() -> str:
    """UTC timestamp the way Graph writes it (ISO 8601, Z)."""
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso(dt: _dt.datetime) -> str:
    return dt.astimezone(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(value: str) -> _dt.datetime:
    v = value.strip()
    if v.endswith("Z"):
        v = v[:-1] + "+00:00"
    dt = _dt.datetime.fromisoformat(v)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=_dt.timezone.utc)
    return dt


def is_guid(value: object) -> bool:
    """A GUID in its 36-character form, as Graph ids and appIds are written."""
    text = str(value)
    if len(text) != 36:
        return False
    try:
        uuid.UUID(text)
        return True
    except ValueError:
        return False


def new_id() -> str:
    return str(uuid.uuid4())


def _hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _make_secret_text() -> str:
    """A client secret of Entra's shape: 40 characters, letters, digits and ~._- ."""
    alphabet = string.ascii_letters + string.digits + "~._-"
    return "".join(_secrets.choice(alphabet) for _ in range(40))


def assignment_id(principal_id: str) -> str:
    """App role assignment ids as Entra makes them: base64url (no padding) of the principal's
    object id bytes (little-endian GUID) followed by 16 more bytes, 43 characters."""
    raw = uuid.UUID(principal_id).bytes_le + uuid.uuid4().bytes_le
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def load_permission_rows() -> list[dict[str, str]]:
    """runner/data/permissions.csv as dicts (resource, resource_app_id, permission, type,
    app_role_id, source)."""
    text = (importlib.resources.files("runner") / "data" / "permissions.csv").read_text("utf-8")
    return list(csv.DictReader(text.splitlines()))


def app_role(value: str, role_id: str, resource_name: str) -> dict[str, Any]:
    return {
        "allowedMemberTypes": ["Application"],
        "description": f"Allows the app to use {value} on {resource_name} without a signed-in user.",
        "displayName": f"{value} (application)",
        "id": role_id,
        "isEnabled": True,
        "origin": "Application",
        "value": value,
    }


@dataclass
class KeyMaterial:
    """A certificate registered in keyCredentials, kept with what client-assertion checks need."""
    key_id: str
    public_key: Any
    sha1: bytes
    sha256: bytes
    not_after: _dt.datetime


class TenantState:
    """Directory objects keyed by object id. Read freely; change through the methods so the
    indexes and credential stores stay consistent. Every method takes the world lock.

    Lookups by appId, uniqueName and assignment principal/resource go through indexes, so a
    tenant seeded with 10,000 service principals (seed_service_principals) answers as fast
    as an empty one. An index entry is checked against the object it names before use, so a
    test that deletes from the dicts directly leaves no wrong answer behind."""

    def __init__(self, tenant_id: str, tenant_domain: str, lock: threading.RLock) -> None:
        self.tenant_id = tenant_id
        self.tenant_domain = tenant_domain
        self.lock = lock
        self.applications: dict[str, dict[str, Any]] = {}
        self.service_principals: dict[str, dict[str, Any]] = {}
        self.app_role_assignments: dict[str, dict[str, Any]] = {}
        self.users: dict[str, dict[str, Any]] = {}
        self.directory_roles: dict[str, set[str]] = {}   # principal object id -> role template ids
        self.owners: dict[str, set[str]] = {}            # object id -> owner principal ids
        self.user_scopes: dict[str, list[str]] = {}      # user id -> consented delegated scopes
        self.organization: dict[str, Any] = {}
        self._secret_hashes: dict[str, dict[str, str]] = {}   # appId -> keyId -> sha256
        self._keys: dict[str, dict[str, KeyMaterial]] = {}    # appId -> keyId -> material
        self._user_passwords: dict[str, str] = {}             # user id -> sha256
        self._lag: dict[str, LagState] = {}
        # App management policies; the simulator sets them (they build on this module).
        self.policies: AppManagementPolicies | None = None
        # indexes: lower-cased key -> object id (or assignment ids)
        self._app_by_app_id: dict[str, str] = {}
        self._app_by_unique_name: dict[str, str] = {}
        self._sp_by_app_id: dict[str, str] = {}
        # principal or resource id -> assignment ids, in the order they were made
        self._assignments_by: dict[str, dict[str, dict[str, None]]] = {"principalId": {}, "resourceId": {}}
        self._seed()

    # ---- seed ---------------------------------------------------------------------------
    def _seed(self) -> None:
        created = now_iso()
        self.organization = {
            "id": self.tenant_id,
            "deletedDateTime": None,
            "displayName": self.tenant_domain.split(".")[0].capitalize(),
            "createdDateTime": created,
            "tenantType": "AAD",
            "countryLetterCode": "US",
            "preferredLanguage": "en",
            "verifiedDomains": [{
                "capabilities": "Email, OfficeCommunicationsOnline",
                "isDefault": True,
                "isInitial": True,
                "name": self.tenant_domain,
                "type": "Managed",
            }],
        }
        roles: dict[str, list[dict[str, Any]]] = {k: [] for k in RESOURCES}
        for row in load_permission_rows():
            rid = row["resource_app_id"]
            if rid in roles and row["type"] == "Role":
                roles[rid].append(app_role(row["permission"], row["app_role_id"], RESOURCES[rid][0]))
        have = {r["value"] for r in roles[GRAPH_APP_ID]}
        for value, role_id in EXTRA_GRAPH_APP_ROLES.items():
            if value not in have:
                roles[GRAPH_APP_ID].append(app_role(value, role_id, "Microsoft Graph"))
        for app_id, (name, uris) in RESOURCES.items():
            sp = self._sp_shape(app_id, name, app_owner=MICROSOFT_TENANT_ID)
            sp["appRoles"] = roles[app_id]
            sp["servicePrincipalNames"] = [app_id] + uris
            if app_id == SHAREPOINT_APP_ID:
                sp["servicePrincipalNames"].append(f"https://{self.sharepoint_host}")
            if app_id == GRAPH_APP_ID:
                sp["oauth2PermissionScopes"] = [{
                    "adminConsentDescription": f"Allows the app to use {v} on behalf of the signed-in user.",
                    "adminConsentDisplayName": v,
                    "id": sid,
                    "isEnabled": True,
                    "type": "User" if v == "User.Read" else "Admin",
                    "userConsentDescription": None,
                    "userConsentDisplayName": None,
                    "value": v,
                } for v, sid in GRAPH_DELEGATED_SCOPES.items()]
            self._add_sp(sp)
        for app_id, name in FIRST_PARTY_PUBLIC_CLIENTS.items():
            self._add_sp(self._sp_shape(app_id, name, app_owner=MICROSOFT_TENANT_ID))

    def seed_service_principals(self, count: int, *, prefix: str = "Enterprise app") -> list[str]:
        """Add `count` service principals of multi-tenant apps published elsewhere (no
        application object here), the enterprise apps every real tenant accumulates, so
        benchmarks can show that requests and time do not grow with the tenant. Returns
        their object ids. Cheap: 10,000 take a fraction of a second."""
        created = now_iso()
        owner = "72f988bf-86f1-41af-91ab-2d7cd011db47"  # a publisher tenant that is not this one
        ids = []
        with self.lock:
            start = len(self.service_principals)
            for i in range(count):
                sp = self._sp_shape(new_id(), f"{prefix} {start + i:05d}", app_owner=owner, created=created)
                self._add_sp(sp)
                ids.append(sp["id"])
        return ids

    @property
    def sharepoint_host(self) -> str:
        return f"{self.tenant_domain.split('.')[0]}.sharepoint.com"

    # ---- shapes -------------------------------------------------------------------------
    def _sp_shape(self, app_id: str, display_name: str, *, app_owner: str,
                  created: str | None = None) -> dict[str, Any]:
        return {
            "id": new_id(),
            "deletedDateTime": None,
            "accountEnabled": True,
            "alternativeNames": [],
            "appDisplayName": display_name,
            "appDescription": None,
            "appId": app_id,
            "applicationTemplateId": None,
            "appOwnerOrganizationId": app_owner,
            "appRoleAssignmentRequired": False,
            "createdDateTime": created or now_iso(),
            "description": None,
            "displayName": display_name,
            "homepage": None,
            "loginUrl": None,
            "logoutUrl": None,
            "notes": None,
            "notificationEmailAddresses": [],
            "preferredSingleSignOnMode": None,
            "replyUrls": [],
            "servicePrincipalNames": [app_id],
            "servicePrincipalType": "Application",
            "signInAudience": "AzureADMultipleOrgs",
            "tags": [],
            "tokenEncryptionKeyId": None,
            "addIns": [],
            "appRoles": [],
            "info": {"logoUrl": None, "marketingUrl": None, "privacyStatementUrl": None,
                     "supportUrl": None, "termsOfServiceUrl": None},
            "keyCredentials": [],
            "oauth2PermissionScopes": [],
            "passwordCredentials": [],
        }

    def _app_shape(self, display_name: str, app_id: str | None = None) -> dict[str, Any]:
        return {
            "id": new_id(),
            "deletedDateTime": None,
            "appId": app_id or new_id(),
            "applicationTemplateId": None,
            "disabledByMicrosoftStatus": None,
            "createdDateTime": now_iso(),
            "displayName": display_name,
            "description": None,
            "groupMembershipClaims": None,
            "identifierUris": [],
            "isDeviceOnlyAuthSupported": None,
            "isFallbackPublicClient": None,
            "notes": None,
            "publisherDomain": self.tenant_domain,
            "serviceManagementReference": None,
            "signInAudience": "AzureADMyOrg",
            "tags": [],
            "tokenEncryptionKeyId": None,
            "uniqueName": None,
            "defaultRedirectUri": None,
            "optionalClaims": None,
            "addIns": [],
            "api": {"acceptMappedClaims": None, "knownClientApplications": [],
                    "requestedAccessTokenVersion": None, "oauth2PermissionScopes": [],
                    "preAuthorizedApplications": []},
            "appRoles": [],
            "info": {"logoUrl": None, "marketingUrl": None, "privacyStatementUrl": None,
                     "supportUrl": None, "termsOfServiceUrl": None},
            "keyCredentials": [],
            "parentalControlSettings": {"countriesBlockedForMinors": [], "legalAgeGroupRule": "Allow"},
            "passwordCredentials": [],
            "publicClient": {"redirectUris": []},
            "requiredResourceAccess": [],
            "web": {"homePageUrl": None, "logoutUrl": None, "redirectUris": [],
                    "implicitGrantSettings": {"enableAccessTokenIssuance": False,
                                              "enableIdTokenIssuance": False}},
            "spa": {"redirectUris": []},
        }

    # ---- lookups ------------------------------------------------------------------------
    @staticmethod
    def _indexed(index: dict[str, str], key: str, store: dict[str, dict[str, Any]],
                 field: str) -> dict[str, Any] | None:
        obj = store.get(index.get(key.lower(), ""))
        if obj is None or str(obj.get(field) or "").lower() != key.lower():
            return None
        return obj

    def app_by_app_id(self, app_id: str) -> dict[str, Any] | None:
        with self.lock:
            return self._indexed(self._app_by_app_id, app_id, self.applications, "appId")

    def app_by_unique_name(self, name: str) -> dict[str, Any] | None:
        with self.lock:
            return self._indexed(self._app_by_unique_name, name, self.applications, "uniqueName")

    def apps_named(self, display_name: str) -> list[dict[str, Any]]:
        with self.lock:
            return [a for a in self.applications.values() if a["displayName"] == display_name]

    def sp_by_app_id(self, app_id: str) -> dict[str, Any] | None:
        with self.lock:
            return self._indexed(self._sp_by_app_id, app_id, self.service_principals, "appId")

    def _add_sp(self, sp: dict[str, Any]) -> None:
        self.service_principals[sp["id"]] = sp
        self._sp_by_app_id[sp["appId"].lower()] = sp["id"]

    def _index_app(self, app: dict[str, Any]) -> None:
        self._app_by_app_id[app["appId"].lower()] = app["id"]
        if app.get("uniqueName"):
            self._app_by_unique_name[str(app["uniqueName"]).lower()] = app["id"]

    @property
    def graph_sp(self) -> dict[str, Any]:
        sp = self.sp_by_app_id(GRAPH_APP_ID)
        assert sp is not None
        return sp

    def _assignments(self, side: str, object_id: str) -> list[dict[str, Any]]:
        found = (self.app_role_assignments.get(i) for i in self._assignments_by[side].get(object_id, {}))
        return [a for a in found if a is not None and a[side] == object_id]

    def assignments_of(self, principal_id: str) -> list[dict[str, Any]]:
        """App role assignments granted to a principal (its appRoleAssignments)."""
        with self.lock:
            return self._assignments("principalId", principal_id)

    def assignments_to(self, resource_id: str) -> list[dict[str, Any]]:
        """App role assignments granted on a resource (its appRoleAssignedTo)."""
        with self.lock:
            return self._assignments("resourceId", resource_id)

    def role_values(self, principal_id: str, resource_id: str) -> list[str]:
        """App role values a principal holds on a resource: what its tokens carry in `roles`."""
        with self.lock:
            resource = self.service_principals.get(resource_id)
            if resource is None:
                return []
            by_id = {r["id"]: r["value"] for r in resource.get("appRoles", [])}
            return sorted({by_id[a["appRoleId"]] for a in self.assignments_of(principal_id)
                           if a["resourceId"] == resource_id and a["appRoleId"] in by_id})

    # ---- replication lag ----------------------------------------------------------------
    def set_lag(self, object_id: str, *, requests: int = 0, seconds: float = 0.0, local_tenant: bool = False) -> None:
        import time as _time
        with self.lock:
            self._lag[object_id] = LagState(until=_time.time() + seconds if seconds > 0 else 0.0,
                                            remaining=max(0, requests), local_tenant=local_tenant)

    def visible(self, object_id: str) -> bool:
        """Whether a read replica sees the object yet. Each call on a lagging object counts
        as one failed lookup."""
        with self.lock:
            lag = self._lag.get(object_id)
            if lag is None:
                return True
            if lag.observe():
                del self._lag[object_id]
                return True
            return False

    def lag_ids(self) -> set[str]:
        """Objects that lag now (a cheap test before calling visible() on each of many)."""
        with self.lock:
            return set(self._lag)

    def lagging(self, object_id: str) -> LagState | None:
        """Peek without consuming a lookup: the object's lag, or None when it is visible."""
        with self.lock:
            return self._lag.get(object_id)

    # ---- applications -------------------------------------------------------------------
    def create_application(self, body: dict[str, Any], *, owner: str | None = None,
                           app_id: str | None = None) -> dict[str, Any]:
        with self.lock:
            app = self._app_shape(body.get("displayName", ""), app_id)
            self._apply_app_fields(app, body)
            self.applications[app["id"]] = app
            self._index_app(app)
            if owner:
                self.owners.setdefault(app["id"], set()).add(owner)
            return app

    def update_application(self, app: dict[str, Any], body: dict[str, Any]) -> None:
        with self.lock:
            self._apply_app_fields(app, body)
            self._index_app(app)

    def _apply_app_fields(self, app: dict[str, Any], body: dict[str, Any]) -> None:
        for key, value in body.items():
            if key == "keyCredentials":
                app["keyCredentials"] = self._store_key_credentials(app, value)
            elif key in ("id", "appId", "createdDateTime", "deletedDateTime", "publisherDomain"):
                continue  # read-only: Graph ignores them on write
            else:
                app[key] = value

    def delete_application(self, app: dict[str, Any]) -> None:
        """Deleting an app registration removes its service principal and that SP's app role
        assignments, as Entra does in the home tenant."""
        with self.lock:
            self.applications.pop(app["id"], None)
            self._app_by_app_id.pop(app["appId"].lower(), None)
            self._app_by_unique_name.pop(str(app.get("uniqueName") or "").lower(), None)
            self._secret_hashes.pop(app["appId"], None)
            self._keys.pop(app["appId"], None)
            self.owners.pop(app["id"], None)
            sp = self.sp_by_app_id(app["appId"])
            if sp is not None:
                self.delete_service_principal(sp)

    # ---- credentials --------------------------------------------------------------------
    def add_password(self, app: dict[str, Any], display_name: str | None = None,
                     end: _dt.datetime | None = None, start: _dt.datetime | None = None,
                     *, text: str | None = None) -> tuple[dict[str, Any], str]:
        """Add a client secret; returns (stored credential, secretText). Only the hash of the
        text is kept. `text` chooses the secret (operators of the simulator only; Graph
        always generates it)."""
        with self.lock:
            text = text or _make_secret_text()
            start = start or _dt.datetime.now(_dt.timezone.utc)
            end = end or start + DEFAULT_SECRET_LIFETIME
            cred = {
                "customKeyIdentifier": None,
                "displayName": display_name,
                "endDateTime": iso(end),
                "hint": text[:3],
                "keyId": new_id(),
                "secretText": None,
                "startDateTime": iso(start),
            }
            app["passwordCredentials"].append(cred)
            self._secret_hashes.setdefault(app["appId"], {})[cred["keyId"]] = _hash_secret(text)
            return cred, text

    def remove_password(self, app: dict[str, Any], key_id: str) -> bool:
        with self.lock:
            before = len(app["passwordCredentials"])
            app["passwordCredentials"] = [c for c in app["passwordCredentials"]
                                          if c["keyId"].lower() != key_id.lower()]
            hashes = self._secret_hashes.get(app["appId"], {})
            for k in [k for k in hashes if k.lower() == key_id.lower()]:
                del hashes[k]
            return len(app["passwordCredentials"]) != before

    def check_secret(self, app: dict[str, Any], secret: str) -> bool:
        """True when `secret` matches an unexpired password credential of the app."""
        with self.lock:
            hashes = self._secret_hashes.get(app["appId"], {})
            given = _hash_secret(secret)
            now = _dt.datetime.now(_dt.timezone.utc)
            for cred in app["passwordCredentials"]:
                h = hashes.get(cred["keyId"])
                if h and hmac.compare_digest(h, given) and parse_iso(cred["endDateTime"]) > now \
                        and parse_iso(cred["startDateTime"]) <= now + _dt.timedelta(minutes=5):
                    return True
            return False

    def _store_key_credentials(self, app: dict[str, Any], creds: Any) -> list[dict[str, Any]]:
        """Validate and store keyCredentials (PATCH replaces the collection). Entries that
        carry only the keyId of an existing key keep that key."""
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes

        if not isinstance(creds, list):
            raise StateError("Request_BadRequest", "Invalid value specified for property 'keyCredentials' of resource 'Application'.")
        existing = {c["keyId"].lower(): c for c in app.get("keyCredentials", [])}
        old_keys = self._keys.get(app["appId"], {})
        stored: list[dict[str, Any]] = []
        keys: dict[str, KeyMaterial] = {}
        for c in creds:
            if not isinstance(c, dict):
                raise StateError("Request_BadRequest", "Invalid value specified for property 'keyCredentials' of resource 'Application'.")
            kid = str(c.get("keyId") or "").lower()
            if not c.get("key") and kid in existing:
                stored.append(existing[kid])
                if kid in old_keys:
                    keys[kid] = old_keys[kid]
                continue
            if c.get("type") not in ("AsymmetricX509Cert", "X509CertAndPassword"):
                raise StateError("Request_BadRequest", "Invalid value specified for property 'type' of resource 'KeyCredential'.")
            if c.get("usage") not in ("Verify", "Sign"):
                raise StateError("Request_BadRequest", "Invalid value specified for property 'usage' of resource 'KeyCredential'.")
            try:
                der = base64.b64decode(c.get("key") or "", validate=True)
                cert = x509.load_der_x509_certificate(der)
            except (ValueError, TypeError):
                raise StateError("Request_BadRequest", "Invalid value specified for property 'key' of resource 'KeyCredential'.") from None
            not_after = cert.not_valid_after_utc
            if not_after <= _dt.datetime.now(_dt.timezone.utc):
                raise StateError("Request_BadRequest", "Key credential end date is invalid.")
            if self.policies is not None:
                self.policies.check_key(app, cert.not_valid_before_utc, not_after)
            sha1 = cert.fingerprint(hashes.SHA1())
            kid = kid or new_id()
            stored.append({
                "customKeyIdentifier": base64.b64encode(sha1).decode(),
                "displayName": c.get("displayName") or cert.subject.rfc4514_string(),
                "endDateTime": iso(not_after),
                "key": base64.b64encode(der).decode(),
                "keyId": kid,
                "startDateTime": iso(cert.not_valid_before_utc),
                "type": "AsymmetricX509Cert",
                "usage": c["usage"],
            })
            if c["usage"] == "Verify":
                keys[kid] = KeyMaterial(kid, cert.public_key(), sha1, cert.fingerprint(hashes.SHA256()), not_after)
        self._keys[app["appId"]] = keys
        return stored

    def find_key(self, app: dict[str, Any], *, sha1: bytes | None = None,
                 sha256: bytes | None = None) -> KeyMaterial | None:
        with self.lock:
            for km in self._keys.get(app["appId"], {}).values():
                if (sha256 is not None and km.sha256 == sha256) or (sha1 is not None and km.sha1 == sha1):
                    return km
            return None

    # ---- service principals -------------------------------------------------------------
    def create_service_principal(self, app: dict[str, Any], body: dict[str, Any] | None = None) -> dict[str, Any]:
        with self.lock:
            sp = self._sp_shape(app["appId"], app["displayName"], app_owner=self.tenant_id)
            sp["appRoles"] = [dict(r) for r in app.get("appRoles", [])]
            sp["servicePrincipalNames"] = [app["appId"]] + list(app.get("identifierUris", []))
            sp["signInAudience"] = app.get("signInAudience", "AzureADMyOrg")
            for key, value in (body or {}).items():
                if key not in ("id", "appId", "appOwnerOrganizationId", "createdDateTime", "deletedDateTime"):
                    sp[key] = value
            self._add_sp(sp)
            return sp

    def update_service_principal(self, sp: dict[str, Any], body: dict[str, Any]) -> None:
        with self.lock:
            for key, value in body.items():
                if key not in ("id", "appId", "appOwnerOrganizationId", "createdDateTime", "deletedDateTime"):
                    sp[key] = value

    def delete_service_principal(self, sp: dict[str, Any]) -> None:
        with self.lock:
            self.service_principals.pop(sp["id"], None)
            if self._sp_by_app_id.get(sp["appId"].lower()) == sp["id"]:
                del self._sp_by_app_id[sp["appId"].lower()]
            self.directory_roles.pop(sp["id"], None)
            for a in self._assignments("principalId", sp["id"]) + self._assignments("resourceId", sp["id"]):
                self.delete_assignment(a)

    # ---- app role assignments -----------------------------------------------------------
    def find_assignment(self, principal_id: str, resource_id: str, app_role_id: str) -> dict[str, Any] | None:
        with self.lock:
            return next((a for a in self._assignments("principalId", principal_id)
                         if a["resourceId"] == resource_id and a["appRoleId"].lower() == app_role_id.lower()), None)

    def delete_assignment(self, assignment: dict[str, Any]) -> None:
        with self.lock:
            self.app_role_assignments.pop(assignment["id"], None)
            for side in ("principalId", "resourceId"):
                self._assignments_by[side].get(assignment[side], {}).pop(assignment["id"], None)

    def create_assignment(self, principal: dict[str, Any], resource: dict[str, Any],
                          app_role_id: str, principal_type: str = "ServicePrincipal") -> dict[str, Any]:
        with self.lock:
            a = {
                "id": assignment_id(principal["id"]),
                "deletedDateTime": None,
                "appRoleId": app_role_id,
                "createdDateTime": now_iso(),
                "principalDisplayName": principal.get("displayName"),
                "principalId": principal["id"],
                "principalType": principal_type,
                "resourceDisplayName": resource.get("displayName"),
                "resourceId": resource["id"],
            }
            self.app_role_assignments[a["id"]] = a
            for side in ("principalId", "resourceId"):
                self._assignments_by[side].setdefault(a[side], {})[a["id"]] = None
            return a

    def grant_roles(self, principal: dict[str, Any], resource: dict[str, Any], values: Iterable[str]) -> None:
        """Assign app roles by value (what admin consent does); unknown values are an error."""
        with self.lock:
            by_value = {r["value"]: r["id"] for r in resource.get("appRoles", [])}
            unknown = [v for v in values if v not in by_value]
            if unknown:
                raise ValueError(f"{resource['displayName']} has no app role(s) {', '.join(unknown)}; "
                                 f"known: {', '.join(sorted(by_value))}")
            for v in values:
                if self.find_assignment(principal["id"], resource["id"], by_value[v]) is None:
                    self.create_assignment(principal, resource, by_value[v])

    # ---- users --------------------------------------------------------------------------
    def user_by_upn(self, upn: str) -> dict[str, Any] | None:
        with self.lock:
            return next((u for u in self.users.values() if u["userPrincipalName"].lower() == upn.strip().lower()), None)

    def set_user_password(self, user: dict[str, Any], password: str | None) -> None:
        """Only a hash is kept; None: the user signs in on the simulated page without one."""
        with self.lock:
            if password is None:
                self._user_passwords.pop(user["id"], None)
            else:
                self._user_passwords[user["id"]] = _hash_secret(password)

    def check_user_password(self, user: dict[str, Any], password: str) -> bool:
        with self.lock:
            stored = self._user_passwords.get(user["id"])
            return stored is None or hmac.compare_digest(stored, _hash_secret(password))

    def create_user(self, upn: str, display_name: str | None = None) -> dict[str, Any]:
        with self.lock:
            if self.user_by_upn(upn) is not None:
                raise ValueError(f"a user {upn!r} already exists")
            user = {
                "id": new_id(),
                "businessPhones": [],
                "displayName": display_name or upn.split("@")[0].capitalize(),
                "givenName": None,
                "jobTitle": None,
                "mail": upn,
                "mobilePhone": None,
                "officeLocation": None,
                "preferredLanguage": "en-US",
                "surname": None,
                "userPrincipalName": upn,
            }
            self.users[user["id"]] = user
            return user


class StateError(Exception):
    """A write the directory refuses; carries the Graph error code."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status
