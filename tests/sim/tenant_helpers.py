"""What the tenant simulator's tests share: a requests Session that trusts the simulator's
CA, sign-in through the real msal, a small Graph caller and a throwaway certificate."""

from __future__ import annotations

import base64
import datetime as dt
import json

import msal
import requests

from runner.sim.tenant_state import GRAPH_APP_ID


GRAPH_DEFAULT = ["https://graph.microsoft.com/.default"]
APP_RW_ALL = "1bfefb4e-e0b5-418b-a88f-73c46d2cc8e9"
APP_ROLE_ASSIGN_RW = "06b708a9-e830-4db3-a914-8e69da51d44f"
SITES_FULLCONTROL_GRAPH = "a82116e5-55eb-4c41-a434-62fe8a61c773"
USER_READ_ALL = "df021288-bdef-4463-88db-98f22de89214"


class CASession(requests.Session):
    """Passes the simulator's CA bundle per request: REQUESTS_CA_BUNDLE in the environment
    would otherwise override Session.verify."""

    def __init__(self, ca_bundle: str) -> None:
        super().__init__()
        self.ca_bundle = ca_bundle

    def request(self, method, url, **kw):  # type: ignore[override]
        kw.setdefault("verify", self.ca_bundle)
        kw.setdefault("timeout", 10)
        return super().request(method, url, **kw)


def claims_of(token: str) -> dict:
    part = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def make_cert(cn: str = "psrunner-test", days: int = 30):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=days)).sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    return cert, cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem


def cca(sim, client_id, credential):
    return msal.ConfidentialClientApplication(client_id, client_credential=credential, authority=sim.authority,
                                              instance_discovery=False, http_client=CASession(sim.ca_bundle))


def app_token(sim, operator=None) -> str:
    op = operator or sim.operator
    result = cca(sim, op.client_id, op.client_secret).acquire_token_for_client(GRAPH_DEFAULT)
    assert "access_token" in result, result
    return result["access_token"]


def device_token(sim) -> str:
    pca = msal.PublicClientApplication(sim.public_client_id, authority=sim.authority, instance_discovery=False,
                                       http_client=CASession(sim.ca_bundle))
    flow = pca.initiate_device_flow(scopes=GRAPH_DEFAULT)
    result = pca.acquire_token_by_device_flow(flow)
    assert "access_token" in result, result
    return result["access_token"]


class Graph:
    def __init__(self, sim, http, token):
        self.sim, self.http, self.token = sim, http, token

    def __call__(self, method, path, body=None, headers=None, **kw):
        h = {"Authorization": f"Bearer {self.token}"}
        h.update(headers or {})
        url = path if path.startswith("https://") else f"{self.sim.graph_endpoint}/v1.0{path}"
        return self.http.request(method, url, json=body, headers=h, **kw)


def new_app(graph, name="contoso-backup", **extra):
    r = graph("POST", "/applications", {"displayName": name, **extra})
    assert r.status_code == 201, r.text
    return r.json()


def new_sp(graph, app_id):
    r = graph("POST", "/servicePrincipals", {"appId": app_id})
    assert r.status_code == 201, r.text
    return r.json()


def graph_sp_id(sim):
    return sim.state.sp_by_app_id(GRAPH_APP_ID)["id"]
