"""Tokens of the simulated Entra ID: access tokens and ID tokens signed with a key made at
start, verification of the client assertions certificate-based clients send, and the
short-lived stores behind the device-code and refresh-token grants.

Access tokens for Microsoft Graph are v1.0-format JWTs as Entra issues them for that
resource: iss https://sts.windows.net/{tid}/, aud the resource as requested, appid, oid,
tid, roles (app-only) or scp (delegated) and wids. Graph endpoints in the simulator check
the signature, audience and expiry before anything else."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets as _secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

CLOCK_SKEW = 300  # seconds Entra tolerates on assertion times
RESERVED_SCOPES = {"openid", "profile", "offline_access", "email"}  # OpenID Connect's, need no consent


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenError(Exception):
    """A token that does not validate; `reason` is the message Graph or Entra would give."""

    def __init__(self, reason: str, code: int | None = None) -> None:
        super().__init__(reason)
        self.reason, self.code = reason, code


class Signer:
    """RSA key of the simulated token service; signs RS256 JWTs and publishes its JWKS."""

    def __init__(self) -> None:
        from cryptography.hazmat.primitives.asymmetric import rsa

        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.public_key = self._key.public_key()
        nums = self.public_key.public_numbers()
        n = nums.n.to_bytes((nums.n.bit_length() + 7) // 8, "big")
        self.kid = b64url(hashlib.sha256(n).digest()[:20])
        self._jwk = {"kty": "RSA", "use": "sig", "kid": self.kid,
                     "n": b64url(n), "e": b64url(nums.e.to_bytes(3, "big"))}

    def jwks(self) -> dict[str, Any]:
        return {"keys": [dict(self._jwk)]}

    def sign(self, claims: dict[str, Any]) -> str:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        header = {"typ": "JWT", "alg": "RS256", "x5t": self.kid, "kid": self.kid}
        signing_input = (b64url(json.dumps(header, separators=(",", ":")).encode()) + "."
                         + b64url(json.dumps(claims, separators=(",", ":")).encode()))
        sig = self._key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return signing_input + "." + b64url(sig)

    def verify(self, token: str) -> dict[str, Any]:
        """Claims of a token this signer issued; TokenError when malformed or forged."""
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        header, claims, signing_input, sig = split_jwt(token)
        if header.get("alg") != "RS256" or header.get("kid") != self.kid:
            raise TokenError("Access token validation failure. Invalid signature.")
        try:
            self.public_key.verify(sig, signing_input, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            raise TokenError("Access token validation failure. Invalid signature.") from None
        return claims


def split_jwt(token: str) -> tuple[dict[str, Any], dict[str, Any], bytes, bytes]:
    parts = token.split(".")
    if len(parts) != 3:
        raise TokenError("IDX14100: JWT is not well formed, there are no dots (.).")
    try:
        header = json.loads(b64url_decode(parts[0]))
        claims = json.loads(b64url_decode(parts[1]))
        sig = b64url_decode(parts[2])
    except (ValueError, TypeError):  # bad base64, UTF-8 or JSON
        raise TokenError("IDX14102: Unable to decode the header or payload as Base64Url encoded string.") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise TokenError("IDX14102: Unable to decode the header or payload as Base64Url encoded string.")
    return header, claims, f"{parts[0]}.{parts[1]}".encode(), sig


def verify_assertion_signature(public_key: Any, alg: str, signing_input: bytes, sig: bytes) -> bool:
    """RS256 (PKCS#1 v1.5) or PS256 (PSS) over SHA-256, the two algorithms msal uses."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    if not isinstance(public_key, rsa.RSAPublicKey):
        return False
    if alg == "RS256":
        pad: Any = padding.PKCS1v15()
    elif alg == "PS256":
        pad = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.AUTO)
    else:
        return False
    try:
        public_key.verify(sig, signing_input, pad, hashes.SHA256())
        return True
    except InvalidSignature:
        return False


@dataclass
class DeviceCode:
    device_code: str
    user_code: str
    client_id: str
    scope: list[str]
    expires_at: float
    interval: int
    polls: int = 0
    state: str = "pending"   # pending | approved | declined | redeemed
    user_id: str | None = None


@dataclass
class AuthCode:
    """An authorization code issued by /authorize, redeemable once at the token endpoint."""
    client_id: str
    user_id: str
    redirect_uri: str
    scope: list[str]
    nonce: str | None
    code_challenge: str | None
    challenge_method: str
    public: bool              # issued through a SPA or mobile/desktop redirect URI: no client secret
    expires_at: float
    redeemed: bool = False


@dataclass
class RefreshGrant:
    client_id: str
    user_id: str
    scope: list[str]
    issued: float = field(default_factory=time.time)


class GrantStore:
    """Outstanding device codes, authorization codes and refresh tokens, thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.device_codes: dict[str, DeviceCode] = {}
        self.auth_codes: dict[str, AuthCode] = {}
        self.refresh_tokens: dict[str, RefreshGrant] = {}

    def new_auth_code(self, grant: AuthCode) -> str:
        code = "1.SIMAC" + b64url(_secrets.token_bytes(48))
        with self._lock:
            self.auth_codes[code] = grant
        return code

    def auth_code(self, code: str) -> AuthCode | None:
        """The code's grant; it is kept after redemption so a second use can be told apart."""
        with self._lock:
            return self.auth_codes.get(code)

    def new_device_code(self, client_id: str, scope: list[str], expires_in: int, interval: int) -> DeviceCode:
        letters = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
        dc = DeviceCode(
            device_code=b64url(_secrets.token_bytes(48)),
            user_code="".join(_secrets.choice(letters) for _ in range(9)),
            client_id=client_id, scope=scope, expires_at=time.time() + expires_in, interval=interval)
        with self._lock:
            self.device_codes[dc.device_code] = dc
        return dc

    def device_code(self, code: str) -> DeviceCode | None:
        with self._lock:
            return self.device_codes.get(code)

    def by_user_code(self, user_code: str) -> DeviceCode | None:
        wanted = user_code.replace("-", "").strip().upper()
        with self._lock:
            return next((d for d in self.device_codes.values() if d.user_code == wanted), None)

    def new_refresh_token(self, grant: RefreshGrant) -> str:
        token = "1.SIM" + b64url(_secrets.token_bytes(64))
        with self._lock:
            self.refresh_tokens[token] = grant
        return token

    def redeem_refresh_token(self, token: str) -> RefreshGrant | None:
        """Refresh tokens rotate: the one presented is consumed."""
        with self._lock:
            return self.refresh_tokens.pop(token, None)


def client_info(user_id: str, tenant_id: str) -> str:
    """The client_info msal asks for (client_info=1): base64url JSON of uid and utid."""
    return b64url(json.dumps({"uid": user_id, "utid": tenant_id}).encode())


def pairwise_subject(user_id: str, client_id: str) -> str:
    """The ID token's `sub`: stable for one user and one app, different across apps, as
    Entra's pairwise identifiers are."""
    return b64url(hashlib.sha256(f"{user_id}:{client_id.lower()}".encode()).digest())


def new_uti() -> str:
    return b64url(uuid.uuid4().bytes)[:22]


def missing_consent(requested: list[str], consented: list[str]) -> list[str]:
    """Requested delegated permissions the user holds no consent for. OpenID Connect scopes
    need none; "<resource>/.default" asks for whatever was consented and is missing only
    when nothing was. Consent is modelled per user, for Microsoft Graph's scopes."""
    have = {c.lower() for c in consented}
    missing = []
    for scope in requested:
        if scope.lower() in RESERVED_SCOPES:
            continue
        short = scope.rpartition("/")[2] if "/" in scope else scope
        if short == ".default":
            if not have:
                missing.append(scope)
        elif short.lower() not in have:
            missing.append(scope)
    return missing
