"""A simulated Microsoft 365 tenant: the Entra ID login endpoints msal calls and the
Microsoft Graph subset the runbooks use, over HTTPS on loopback, with directory state,
switchable faults (throttling, outages, dropped connections, replication lag) and request
counting.

It backs `psrunner demo`, rehearsal before a production run, and the tests, which drive it
with the real msal and requests:

    with TenantSimulator() as sim:
        app = msal.ConfidentialClientApplication(sim.operator.client_id,
                client_credential=sim.operator.client_secret, authority=sim.authority,
                instance_discovery=False, http_client=session)   # see below
        token = app.acquire_token_for_client(["https://graph.microsoft.com/.default"])
        requests.get(f"{sim.graph_endpoint}/v1.0/applications", verify=sim.ca_bundle,
                     headers={"Authorization": "Bearer " + token["access_token"]})

`session` must pass verify=sim.ca_bundle on every request (a small requests.Session
subclass): with REQUESTS_CA_BUNDLE set in the environment, Session.verify alone is ignored.

One base URL serves both the login authority (`{base_url}/{tenant_id}`) and Graph
(`{base_url}/v1.0/...`). Scopes keep the real resource id ("https://graph.microsoft.com/
.default"); the token's audience is Graph's even though Graph is served on localhost.

Public names: `TenantSimulator(public_names=("graph.microsoft.com",
"login.microsoftonline.com"))` also puts those names in the server certificate, so a client
whose resolver maps them to the simulator (a hosts entry, or a test's resolver override)
and that trusts `ca_bundle` reaches it under the real names. Absolute URLs in answers
(@odata.nextLink, @odata.context, Location, the OpenID discovery document, the device-code
verification URI) are built from the name the client used (its Host header), as the real
services do; a Host the certificate does not cover gets `base_url`.

Web sign-in: `add_web_app`, `add_user` and `assign_app_role` seed what the OpenID Connect
authorization code flow (tenant_authorize) needs; msal's initiate_auth_code_flow and
acquire_token_by_auth_code_flow work against `authority`.

Counting: `requests` (a RequestCounter) counts requests, writes, $batch items and
sequential round trips; `/_sim/...` is the control endpoint (see tenant_control) and is
never counted, faulted or logged as a client request."""

from __future__ import annotations

import base64
import logging
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .tenant_control import CONTROL_PREFIX, ControlEndpoint
from .tenant_faults import AFTER_KINDS, LAG_KINDS, TERMINAL_KINDS, FaultPlan, RequestCounter
from .tenant_graph import SEG, GraphService, split_segments
from .tenant_http import TenantHTTPServer
from .tenant_login import LoginService
from .tenant_policies import AppManagementPolicies
from .tenant_response import Response
from .tenant_state import (
    DEFAULT_USER_ROLE,
    GLOBAL_ADMINISTRATOR,
    GRAPH_CLI_CLIENT_ID,
    TenantState,
    is_guid,
    new_id,
)
from .tenant_tokens import GrantStore, Signer, new_uti
from .tls import TLSMaterial, make_tls
from .world import SimWorld

log = logging.getLogger("runner.sim.tenant")
HOST_HEADER = re.compile(r"^(?P<name>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::(?P<port>[0-9]{1,5}))?$")
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
DEFAULT_OPERATOR_ROLES = ("Application.ReadWrite.All", "AppRoleAssignment.ReadWrite.All")
DEFAULT_DEVICE_SCOPES = ("Application.ReadWrite.All", "AppRoleAssignment.ReadWrite.All", "User.Read")


class _DropConnection(Exception):
    """A 'drop' fault matched a $batch sub-request: the whole connection is dropped."""


@dataclass
class WebApp:
    """A web app registered for sign-in (authorization code flow): its redirect URIs, its
    app roles by value, and, unless it is public, a client secret."""
    client_id: str
    client_secret: str | None
    object_id: str
    service_principal_id: str
    display_name: str
    redirect_uris: tuple[str, ...]
    roles: dict[str, str]            # app role value -> id

    def __repr__(self) -> str:  # never print the secret
        return (f"WebApp(client_id={self.client_id!r}, display_name={self.display_name!r}, "
                f"roles={sorted(self.roles)!r}, secret={'set' if self.client_secret else 'none'})")


@dataclass
class OperatorApp:
    """A client-credentials principal registered in the simulated tenant."""
    client_id: str
    client_secret: str | None
    object_id: str                   # the application object
    service_principal_id: str
    display_name: str
    roles: tuple[str, ...]
    wids: tuple[str, ...]
    certificate_pem: str | None = None
    thumbprint: str | None = None    # SHA-1, hex upper case, as the portal shows it

    def __repr__(self) -> str:  # never print the secret
        return (f"OperatorApp(client_id={self.client_id!r}, display_name={self.display_name!r}, "
                f"roles={self.roles!r}, wids={self.wids!r}, secret={'set' if self.client_secret else 'none'})")


class DeviceUser:
    """The user who approves device-code sign-ins. Setting upn, scopes (delegated permissions
    the user has consented to; they become `scp`) or wids (directory role template ids)
    changes the tokens issued from then on."""

    def __init__(self, state: TenantState, user_id: str) -> None:
        self._state, self.object_id = state, user_id

    @property
    def upn(self) -> str:
        return self._state.users[self.object_id]["userPrincipalName"]

    @upn.setter
    def upn(self, value: str) -> None:
        with self._state.lock:
            user = self._state.users[self.object_id]
            user["userPrincipalName"] = value
            user["mail"] = value

    @property
    def display_name(self) -> str:
        return self._state.users[self.object_id]["displayName"]

    @display_name.setter
    def display_name(self, value: str) -> None:
        with self._state.lock:
            self._state.users[self.object_id]["displayName"] = value

    @property
    def scopes(self) -> list[str]:
        return list(self._state.user_scopes.get(self.object_id, []))

    @scopes.setter
    def scopes(self, value: Iterable[str]) -> None:
        with self._state.lock:
            self._state.user_scopes[self.object_id] = list(value)

    @property
    def wids(self) -> list[str]:
        return sorted(self._state.directory_roles.get(self.object_id, set()))

    @wids.setter
    def wids(self, value: Iterable[str]) -> None:
        with self._state.lock:
            self._state.directory_roles[self.object_id] = set(value)

    def __repr__(self) -> str:
        return f"DeviceUser(upn={self.upn!r}, scopes={self.scopes!r}, wids={self.wids!r})"


class TenantSimulator:
    """See the module docstring. Settings that tests and demos tune are plain attributes:
    page_size (Graph page size when $top is absent), token_lifetime (seconds),
    device_code_interval (seconds msal waits between polls), device_pending_polls (polls
    answered authorization_pending before the device user approves), device_auto_approve
    (False: codes wait for approve_device_code() or the /devicelogin page), wids_in_user_tokens
    (False: delegated access tokens leave out `wids`, as Entra does unless an application's
    groupMembershipClaims asks for directory roles; Graph still reads roles from the directory)."""

    def __init__(self, world: SimWorld | None = None, tls: TLSMaterial | None = None,
                 host: str = "127.0.0.1", port: int = 0, *, page_size: int = 100,
                 io_timeout: float = 15.0, public_names: Iterable[str] = ()) -> None:
        self.world = world or SimWorld()
        self.public_names = tuple(n.strip().lower().rstrip(".") for n in public_names if n.strip())
        self._own_tls = tls is None  # made here, so removed (private key included) by stop()
        self.tls = tls or make_tls(hostnames=("localhost", *self.public_names))
        self._names = frozenset((*LOOPBACK_NAMES, *self.public_names))
        self._stopping = threading.Event()
        self.host, self._port = host, port
        self.io_timeout = io_timeout
        self.page_size = page_size
        self.token_lifetime = 3599
        self.device_code_interval = 1
        self.device_code_expires_in = 900
        self.device_pending_polls = 1
        self.device_auto_approve = True
        self.allow_plain_pkce = False  # Entra allows code_challenge_method=plain; see tenant_authorize
        self.wids_in_user_tokens = True
        self.state = TenantState(self.world.tenant_id, self.world.tenant_domain, self.world.lock)
        self.state.policies = AppManagementPolicies(self.world.lock)
        self.faults = FaultPlan()
        self.requests = RequestCounter()
        self.signer = Signer()
        self.grants = GrantStore()
        self.login = LoginService(self)
        self.graph = GraphService(self)
        self.control = ControlEndpoint(self)
        user = self.state.create_user(f"admin@{self.tenant_domain}", "Simulated Admin")
        self.device_user = DeviceUser(self.state, user["id"])
        self.device_user.scopes = DEFAULT_DEVICE_SCOPES
        self.device_user.wids = [GLOBAL_ADMINISTRATOR]
        self.operator = self.add_operator(display_name="psrunner operator (simulator)")
        self._server: TenantHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- identity of the tenant ---------------------------------------------------------
    @property
    def tenant_id(self) -> str:
        return self.world.tenant_id

    @property
    def tenant_domain(self) -> str:
        return self.world.tenant_domain

    @property
    def port(self) -> int:
        if self._server is not None:
            return self._server.server_address[1]
        if self._port:
            return self._port
        raise RuntimeError("the tenant simulator has no port yet: call start() first")

    @property
    def base_url(self) -> str:
        return f"https://localhost:{self.port}"

    @property
    def authority(self) -> str:
        return f"{self.base_url}/{self.tenant_id}"

    def public_url(self, name: str) -> str:
        """The base URL under one of `public_names` (the simulator's port included)."""
        if name.lower() not in self.public_names:
            raise ValueError(f"{name!r} is not one of this simulator's public names {self.public_names}")
        return f"https://{name.lower()}:{self.port}"

    def origin_for(self, headers: dict[str, str]) -> str:
        """`https://` + the Host the client used, when the certificate covers that name;
        else base_url. Absolute URLs in answers start with it."""
        m = HOST_HEADER.match(headers.get("host", "").strip())
        if m is None or m.group("name").strip("[]").lower().rstrip(".") not in self._names:
            return self.base_url
        return f"https://{m.group(0).lower()}"

    @property
    def graph_endpoint(self) -> str:
        return self.base_url

    @property
    def ca_bundle(self) -> str:
        return str(self.tls.ca_bundle)

    @property
    def public_client_id(self) -> str:
        """A first-party public client (Microsoft Graph Command Line Tools) that may run the
        device-code flow in this tenant."""
        return GRAPH_CLI_CLIENT_ID

    # ---- life cycle ---------------------------------------------------------------------
    def start(self) -> TenantSimulator:
        if self._server is not None:
            return self
        if not self.tls.key_file.exists():
            raise RuntimeError("this tenant simulator was stopped and its TLS material removed; make a new one")
        self._stopping.clear()
        self._server = TenantHTTPServer((self.host, self._port), self, self.tls.server_context(), self.io_timeout)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"tenant-sim:{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stopping.set()  # ends injected waits (latency, read-timeout) at once
        self.faults.clear()
        server.shutdown()
        server.close_connections()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._server = self._thread = None
        if self._own_tls:
            shutil.rmtree(self.tls.directory, ignore_errors=True)

    def __enter__(self) -> TenantSimulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- principals ---------------------------------------------------------------------
    def add_operator(self, client_id: str | None = None, *, secret: str | None = None,
                     certificate_pem: str | bytes | None = None,
                     roles: Iterable[str] = DEFAULT_OPERATOR_ROLES, wids: Iterable[str] = (),
                     display_name: str | None = None) -> OperatorApp:
        """Register an app that signs in with client credentials, with its service principal,
        the Microsoft Graph app roles `roles` granted (admin consent) and directory roles
        `wids`. Without `secret` and `certificate_pem` a secret is generated. With
        `certificate_pem` (the public certificate), client assertions signed by its key are
        accepted."""
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization

        st = self.state
        roles, wids = tuple(roles), tuple(wids)
        with st.lock:
            if client_id is not None:
                if not is_guid(client_id):
                    raise ValueError(f"client_id must be a GUID, got {client_id!r}")
                if st.app_by_app_id(client_id) is not None:
                    raise ValueError(f"an application with appId {client_id} already exists")
            name = display_name or f"psrunner operator {len(st.applications) + 1}"
            app = st.create_application({"displayName": name}, app_id=client_id.lower() if client_id else None)
            thumb = None
            pem_text = None
            if certificate_pem is not None:
                pem = certificate_pem.encode() if isinstance(certificate_pem, str) else certificate_pem
                cert = x509.load_pem_x509_certificate(pem)
                der = cert.public_bytes(serialization.Encoding.DER)
                st.update_application(app, {"keyCredentials": [{
                    "type": "AsymmetricX509Cert", "usage": "Verify", "key": base64.b64encode(der).decode(),
                    "displayName": f"CN={name}"}]})
                thumb = cert.fingerprint(hashes.SHA1()).hex().upper()
                pem_text = pem.decode()
            text = None
            if secret is not None or certificate_pem is None:
                _, text = st.add_password(app, "operator secret", text=secret)
            sp = st.create_service_principal(app)
            st.grant_roles(sp, st.graph_sp, roles)
            if wids:
                st.directory_roles[sp["id"]] = set(wids)
        return OperatorApp(client_id=app["appId"], client_secret=text, object_id=app["id"],
                           service_principal_id=sp["id"], display_name=name, roles=roles, wids=wids,
                           certificate_pem=pem_text, thumbprint=thumb)

    def add_user(self, upn: str, display_name: str | None = None, *, password: str | None = None,
                 scopes: Iterable[str] = ()) -> dict[str, Any]:
        """A member of the tenant who can sign in on the simulated sign-in page (with
        `password`, when given) and holds consent for the delegated Graph `scopes`."""
        with self.state.lock:
            user = self.state.create_user(upn, display_name)
            self.state.set_user_password(user, password)
            self.state.user_scopes[user["id"]] = list(scopes)
        return user

    def add_web_app(self, display_name: str, redirect_uris: Iterable[str], *, app_roles: Iterable[str] = (),
                    public: bool = False, assignment_required: bool = False) -> WebApp:
        """Register a web app for sign-in: `redirect_uris` as web (confidential, a secret is
        made) or, with `public`, as SPA redirect URIs (no secret, PKCE only); `app_roles`
        are role values users can be assigned (assign_app_role); `assignment_required`
        refuses users without one (AADSTS50105)."""
        uris = tuple(redirect_uris)
        roles = {value: new_id() for value in app_roles}
        st = self.state
        with st.lock:
            app = st.create_application({
                "displayName": display_name,
                "spa" if public else "web": {"redirectUris": list(uris)},
                "appRoles": [{"allowedMemberTypes": ["User"], "description": f"{value} of {display_name}",
                              "displayName": value, "id": rid, "isEnabled": True, "origin": "Application",
                              "value": value} for value, rid in roles.items()]})
            secret = None if public else st.add_password(app, "web sign-in")[1]
            sp = st.create_service_principal(app, {"appRoleAssignmentRequired": assignment_required})
        return WebApp(client_id=app["appId"], client_secret=secret, object_id=app["id"],
                      service_principal_id=sp["id"], display_name=display_name, redirect_uris=uris, roles=roles)

    def assign_app_role(self, user: dict[str, Any], app: WebApp, role: str) -> dict[str, Any]:
        """Give `user` the app role `role` (a value of app.roles) on the web app; its ID
        tokens for that app then carry it in `roles`."""
        if role not in app.roles:
            raise ValueError(f"{app.display_name} has no app role {role!r}; it has {sorted(app.roles)}")
        st = self.state
        with st.lock:
            return st.create_assignment(user, st.service_principals[app.service_principal_id], app.roles[role],
                                        principal_type="User")

    def seed_service_principals(self, count: int, *, prefix: str = "Enterprise app") -> list[str]:
        """Grow the tenant by `count` service principals (see TenantState.seed_service_principals)."""
        return self.state.seed_service_principals(count, prefix=prefix)

    def set_device_user(self, upn: str | None = None, scopes: Iterable[str] | None = None,
                        wids: Iterable[str] | None = None, display_name: str | None = None) -> DeviceUser:
        if upn is not None:
            self.device_user.upn = upn
        if scopes is not None:
            self.device_user.scopes = scopes
        if wids is not None:
            self.device_user.wids = wids
        if display_name is not None:
            self.device_user.display_name = display_name
        return self.device_user

    def approve_device_code(self, user_code: str, *, decline: bool = False) -> bool:
        """Approve (or decline) a pending device code as the device user, as a person would
        on the verification page. False when the code is unknown, used or expired."""
        dc = self.grants.by_user_code(user_code)
        with self.state.lock:
            if dc is None or dc.state != "pending" or time.time() > dc.expires_at:
                return False
            dc.state = "declined" if decline else "approved"
            dc.user_id = self.device_user.object_id
        return True

    def mint_access_token(self, *, client_id: str | None = None, roles: Iterable[str] | None = None,
                          scopes: Iterable[str] | None = None, wids: Iterable[str] = (),
                          lifetime: int | None = None, audience: str = "https://graph.microsoft.com",
                          object_id: str | None = None) -> str:
        """A signed access token without going through the token endpoint, for tests that
        need an expired token or an unusual claim set. `scopes` makes it delegated; else it
        is app-only with `roles`."""
        now = int(time.time())
        life = self.token_lifetime if lifetime is None else lifetime
        claims: dict[str, Any] = {
            "aud": audience, "iss": f"https://sts.windows.net/{self.tenant_id}/", "iat": now,
            "nbf": min(now, now + life), "exp": now + life, "appid": client_id or self.operator.client_id,
            "tid": self.tenant_id, "uti": new_uti(), "ver": "1.0",
        }
        if scopes is not None:
            claims.update(idtyp="user", scp=" ".join(scopes), oid=object_id or self.device_user.object_id,
                          upn=self.device_user.upn,
                          wids=sorted(set(wids) | {DEFAULT_USER_ROLE}))
        else:
            claims.update(idtyp="app", oid=object_id or self.operator.service_principal_id,
                          roles=list(roles or ()))
            if wids:
                claims["wids"] = sorted(set(wids))
        return self.signer.sign(claims)

    # ---- request path -------------------------------------------------------------------
    def set_latency(self, per_request: float, per_item: float = 0.0) -> None:
        """Hold every HTTP request (sign-in included; a $batch is one request) for
        `per_request` seconds, and every $batch sub-request for `per_item` more, until
        changed; 0 turns a knob off. Replaces latency rules armed before."""
        self.faults.clear(("latency", "item-latency"))
        if per_request > 0:
            self.faults.add("latency", method="*", path=".*", count=None, seconds=per_request)
        if per_item > 0:
            self.faults.add("item-latency", method="*", path=".*", count=None, seconds=per_item)

    def route_of(self, path: str) -> str:
        """Normalized route for counting: ids -> {id}, alternate keys -> {key}, the tenant
        segment of login paths -> {tenant}; Graph's optional /myorganization segment is
        dropped."""
        segs = split_segments(path)
        if len(segs) > 1 and segs[0] in ("v1.0", "beta") and segs[1].lower() == "myorganization":
            segs = [segs[0], *segs[2:]]
        tenants = {self.tenant_id.lower(), self.tenant_domain.lower()}
        out = []
        for i, s in enumerate(segs):
            m = SEG.match(s)
            if m and m.group("kk"):
                out.append(f"{m.group('set')}({m.group('kk')}={{key}})")
            elif is_guid(s) or (len(s) == 43 and all(c.isalnum() or c in "-_" for c in s)):
                out.append("{tenant}" if i == 0 and s.lower() in tenants else "{id}")
            elif i == 0 and s.lower() in tenants:
                out.append("{tenant}")
            else:
                out.append(s)
        return "/" + "/".join(out)

    def lag_new_object(self, method: str, path: str, object_id: str) -> None:
        """Called when the API creates an object: an armed lag fault matching the creating
        request makes the object invisible to reads for a while."""
        fault = self.faults.take(method, path, LAG_KINDS)
        if fault is not None:
            self.state.set_lag(object_id, requests=fault.requests, seconds=fault.seconds,
                               local_tenant=fault.kind == "lag-local-tenant")
            self.requests.record_fault(fault.kind)

    def _wait(self, seconds: float) -> bool:
        """Sleep for an injected delay; False when the simulator stops meanwhile."""
        return not self._stopping.wait(seconds)

    def _take_fault(self, method: str, path: str, latency_kind: str) -> Any:
        latency = self.faults.take(method, path, (latency_kind,))
        if latency is not None:
            self.requests.record_fault(latency_kind)
            latency.release.wait(latency.seconds)      # released early by clear() and stop()
        fault = self.faults.take(method, path, TERMINAL_KINDS)
        if fault is not None:
            self.requests.record_fault(fault.kind)
        return fault

    def _item_fault(self, method: str, path: str, headers: dict[str, str]) -> Response | None:
        fault = self._take_fault(method, path, "item-latency")
        if fault is None:
            return None
        if fault.kind == "drop":
            raise _DropConnection()
        return self.graph.fault_response(fault.kind, fault.retry_after, headers)

    def is_control(self, path: str) -> bool:
        return path == CONTROL_PREFIX or path.startswith(CONTROL_PREFIX + "/")

    def dispatch(self, method: str, path: str, query: str, headers: dict[str, str], body: bytes) -> Response:
        """Serve one HTTP request (called by the server thread). `headers` have lower-case names."""
        method = method.upper()
        if self.is_control(path):
            return self.control.handle(method, path, query, body)
        is_graph = path.startswith(("/v1.0/", "/beta/")) or path in ("/v1.0", "/beta")
        token = not is_graph and method == "POST" and path.rstrip("/").endswith("/oauth2/v2.0/token")
        self.requests.record(method, self.route_of(path), login=not is_graph, token=token)
        fault = self._take_fault(method, path, "latency")
        if fault is not None:
            if fault.kind == "drop":
                return Response(0, drop=True)
            if is_graph:
                return self.graph.fault_response(fault.kind, fault.retry_after, headers)
            status = {"throttle": 429, "unavailable": 503, "gateway": 504}[fault.kind]
            resp = self.login.error(status, "temporarily_unavailable", 90033,
                                    "A transient error has occurred. Please try again.", headers)
            if fault.kind != "gateway":
                resp.headers["Retry-After"] = str(fault.retry_after)
            return resp
        after = self.faults.take(method, path, AFTER_KINDS)
        if after is not None:
            self.requests.record_fault(after.kind)
            # read-timeout: the answer comes later than the client waits; the write still
            # lands afterwards, as a backend that outlives its gateway's timeout does.
            if after.kind == "read-timeout" and not self._wait(after.seconds):
                return Response(0, drop=True)
        try:
            if not is_graph:
                resp = self.login.handle(method, path, query, headers, body)
            else:
                resp = self.graph.handle(method, path, query, headers, body, item_fault=self._item_fault)
            return Response(0, drop=True) if after is not None else resp
        except _DropConnection:
            return Response(0, drop=True)
        except Exception:  # a simulator bug: answer 500 as Graph would rather than hang up
            log.exception("tenant simulator: internal error serving %s %s", method, path)
            return self.graph.error_response(500, "InternalServerError", "The tenant simulator failed to serve "
                                             "this request; see its log.", headers)


def serve(host: str = "127.0.0.1", port: int = 8443, *, secret_file: str | Path | None = None,
          world: SimWorld | None = None, tls_dir: str | Path | None = None,
          out: Callable[[str], None] = print, stop_event: threading.Event | None = None) -> None:
    """Run a tenant simulator until Ctrl-C (or `stop_event`). Prints what a person needs to
    point psrunner at it; the operator secret goes to a 0600 file, never to the terminal."""
    from ..secrets import write_private

    tls = make_tls(tls_dir) if tls_dir else None
    sim = TenantSimulator(world=world, tls=tls, host=host, port=port).start()
    path = Path(secret_file) if secret_file else sim.tls.directory / "operator-secret.txt"
    write_private(path, (sim.operator.client_secret or "") + "\n")
    out(f"tenant simulator listening on {sim.base_url}")
    out(f"  authority:       {sim.authority}")
    out(f"  graph endpoint:  {sim.graph_endpoint}/v1.0")
    out(f"  tenant:          {sim.tenant_id} ({sim.tenant_domain})")
    out(f"  CA bundle:       {sim.ca_bundle}")
    out(f"  operator client: {sim.operator.client_id} (secret in {path})")
    out(f"  device sign-in:  {sim.public_client_id} as {sim.device_user.upn}")
    out("press Ctrl-C to stop")
    stop = stop_event or threading.Event()
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()
        out("tenant simulator stopped")
