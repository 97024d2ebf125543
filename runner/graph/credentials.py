"""The application's credentials: client secrets (`addPassword`) and certificates
(`keyCredentials`).

Read: the application's passwordCredentials / keyCredentials (facts.read_app_by_object_id).
Decide: `secret_state` / `certificate_state` sort ours into those valid past the renewal
horizon and those expiring before it. Write: `add_password` (its value, shown once by Graph,
comes back as a Secret and goes nowhere else) and `upload_certificate` (keyCredentials is
replaced as a whole by PATCH, so every existing key is sent back with the new one)."""

from __future__ import annotations

import base64
import datetime as _dt
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from ..errors import GraphError
from ..secrets import Secret
from .client import GraphClient
from .odata import get_one, iso, parse_time
from .responses import GraphResponse

if TYPE_CHECKING:
    from .certs import CertMaterial

KEY_FIELDS = ("customKeyIdentifier", "displayName", "endDateTime", "key", "keyId", "startDateTime", "type", "usage")


@dataclass
class CredentialState:
    """Our credentials (by display name) on the application, sorted by validity."""
    valid: list[dict[str, Any]] = field(default_factory=list)      # valid past the horizon
    expiring: list[dict[str, Any]] = field(default_factory=list)   # valid now, not past the horizon


def is_named(credential: dict[str, Any], name: str) -> bool:
    """True for a credential called `name`, or `name #<tag>` (credential_ledger.tagged: each
    new secret carries a tag of its own, so an interrupted creation can be found again)."""
    display = credential.get("displayName") or ""
    return display == name or bool(re.fullmatch(re.escape(name) + r" #[0-9a-f]{8}", display))


def _state(creds: list[dict[str, Any]], name: str, min_days: int, now: _dt.datetime) -> CredentialState:
    horizon = now + _dt.timedelta(days=min_days)
    ours = [c for c in creds if is_named(c, name)]
    valid = [c for c in ours if (parse_time(c.get("endDateTime")) or now) > horizon]
    expiring = [c for c in ours if c not in valid and (parse_time(c.get("endDateTime")) or now) > now]
    return CredentialState(valid, expiring)


# --------------------------------------------------------------------------- client secrets

def secret_state(app: dict[str, Any], name: str, min_days: int, now: _dt.datetime) -> CredentialState:
    return _state(list(app.get("passwordCredentials") or []), name, min_days, now)


def add_password(client: GraphClient, app: dict[str, Any], object_id: str, name: str,
                 end: _dt.datetime) -> tuple[dict[str, Any], Secret, list[str]]:
    """A new client secret: (its credential without the value, the value, the key ids of
    secrets removed because an earlier answer carrying their value was lost)."""
    before_ids = {str(c.get("keyId")) for c in app.get("passwordCredentials") or []}
    path = f"/applications/{quote(object_id, safe='')}"
    removed: list[str] = []

    def reconcile() -> GraphResponse | None:
        # The connection dropped after addPassword was sent: a secret may exist whose value we
        # never received. It is useless to us and a liability, so remove it, then add again.
        current = get_one(client, f"{path}?$select=id,passwordCredentials") or {}
        for c in current.get("passwordCredentials") or []:
            kid = str(c.get("keyId"))
            if kid not in before_ids and (c.get("displayName") or "") == name:
                remove_password(client, object_id, kid)
                removed.append(kid)
        return None

    resp = client.post(f"{path}/addPassword",
                       json={"passwordCredential": {"displayName": name, "endDateTime": iso(end)}},
                       lag=True, reconcile=reconcile)
    body = resp.body if isinstance(resp.body, dict) else {}
    text = body.get("secretText")
    if not text:
        raise GraphError("addPassword returned no secretText", status=resp.status, code=None,
                         request_id=resp.request_id)
    value = Secret(text, "client secret")          # registered: redacted from here on
    del text
    cred = {k: v for k, v in body.items() if k != "secretText"}
    app.setdefault("passwordCredentials", []).append(cred)
    return cred, value, removed


# --------------------------------------------------------------------------- certificates

def key_thumbprint(k: dict[str, Any]) -> str | None:
    """SHA-1 thumbprint (upper hex) of a keyCredential: from its key when Graph returned it,
    else from customKeyIdentifier (base64 of the thumbprint bytes, or the hex itself)."""
    raw = k.get("key")
    if raw:
        from cryptography import x509

        from .certs import CertMaterial, thumbprint_of_der_b64
        try:
            der = base64.b64decode(raw)
            if der[:1] == b"0":           # DER: an ASN.1 SEQUENCE
                return thumbprint_of_der_b64(raw)
            # some answers carry the PEM text base64-encoded
            return CertMaterial(x509.load_pem_x509_certificate(der)).thumbprint
        except ValueError:
            pass                          # unreadable key material: fall back to the identifier
    cki = k.get("customKeyIdentifier")
    if isinstance(cki, str) and cki:
        if re.fullmatch(r"[0-9A-Fa-f]{40}", cki):
            return cki.upper()
        try:
            b = base64.b64decode(cki, validate=True)
            if len(b) == 20:
                return b.hex().upper()
        except ValueError:
            pass
    return None


def certificate_state(app: dict[str, Any], name: str, min_days: int, now: _dt.datetime) -> CredentialState:
    return _state(list(app.get("keyCredentials") or []), name, min_days, now)


def has_certificate(app: dict[str, Any], thumbprint: str) -> bool:
    return any(key_thumbprint(k) == thumbprint for k in app.get("keyCredentials") or [])


def current_keys(client: GraphClient, app: dict[str, Any], object_id: str) -> list[dict[str, Any]]:
    """Every key on the application with its key material, which a PATCH must send back; it
    is returned only when a single application is read with $select."""
    keys = list(app.get("keyCredentials") or [])
    if any(not k.get("key") for k in keys):
        fresh = get_one(client, f"/applications/{quote(object_id, safe='')}?$select=id,keyCredentials") or {}
        keys = list(fresh.get("keyCredentials") or [])
        if any(not k.get("key") for k in keys):
            raise GraphError("cannot read the key material of the application's existing certificates, so "
                             "uploading a new one would remove them", status=None, code="KeysUnreadable",
                             hint="add the certificate in the portal, or remove the unreadable ones first")
    return keys


def upload_certificate(client: GraphClient, app: dict[str, Any], object_id: str, keys: list[dict[str, Any]],
                       cert: CertMaterial, name: str) -> None:
    """Add `cert`'s public part to the application, keeping `keys` (from current_keys)."""
    keep = [{f: v for f, v in k.items() if f in KEY_FIELDS} for k in keys]
    new_key = {"type": "AsymmetricX509Cert", "usage": "Verify", "key": cert.der_b64, "displayName": name}
    client.patch(f"/applications/{quote(object_id, safe='')}", json={"keyCredentials": keep + [new_key]}, lag=True)
    app["keyCredentials"] = keep + [{**new_key,
                                     "customKeyIdentifier": base64.b64encode(bytes.fromhex(cert.thumbprint)).decode(),
                                     "endDateTime": iso(cert.not_after)}]


# --------------------------------------------------------------------------- retiring

def replaced(creds: list[dict[str, Any]], grace_days: int, now: _dt.datetime) -> list[dict[str, Any]]:
    """The credentials a newer one replaces and that are older than `grace_days`: every one
    but the newest (by start), created at least `grace_days` ago. The newest is never among
    them, so an application is never left without the credential just handed over."""
    ordered = sorted(creds, key=lambda c: parse_time(c.get("startDateTime")) or now)
    cutoff = now - _dt.timedelta(days=grace_days)
    return [c for c in ordered[:-1] if (parse_time(c.get("startDateTime")) or now) <= cutoff]


def remove_password(client: GraphClient, object_id: str, key_id: str) -> None:
    """removePassword; an already removed secret (404) or an unknown key id (400) is fine."""
    client.post(f"/applications/{quote(object_id, safe='')}/removePassword", json={"keyId": key_id},
                idempotent=True, allow=(400, 404))


def remove_keys(client: GraphClient, app: dict[str, Any], object_id: str, key_ids: set[str]) -> None:
    """Remove certificates by key id: keyCredentials is replaced whole, the others sent back."""
    keys = current_keys(client, app, object_id)
    keep = [{f: v for f, v in k.items() if f in KEY_FIELDS} for k in keys if str(k.get("keyId")) not in key_ids]
    client.patch(f"/applications/{quote(object_id, safe='')}", json={"keyCredentials": keep}, lag=True)
    app["keyCredentials"] = keep
