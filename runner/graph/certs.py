"""Certificates for app-only sign-in: load a PEM or PFX, make a self-signed one, and compute
what Entra and Windows show (the SHA-1 thumbprint in upper-case hex, the expiry).

Entra accepts RSA keys for application certificates, so self-signed ones use RSA 2048."""

from __future__ import annotations

import base64
import datetime as _dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..secrets import Secret


@dataclass
class CertMaterial:
    cert: Any                       # cryptography x509.Certificate
    key: Any = None                 # private key, when known

    @property
    def thumbprint(self) -> str:
        """SHA-1 of the DER certificate, upper-case hex: what certmgr, Get-ChildItem Cert:\\
        and the Entra portal show, and what `customKeyIdentifier` holds."""
        from cryptography.hazmat.primitives import hashes
        return self.cert.fingerprint(hashes.SHA1()).hex().upper()

    @property
    def not_after(self) -> _dt.datetime:
        return self.cert.not_valid_after_utc

    @property
    def not_before(self) -> _dt.datetime:
        return self.cert.not_valid_before_utc

    @property
    def der_b64(self) -> str:
        from cryptography.hazmat.primitives import serialization
        return base64.b64encode(self.cert.public_bytes(serialization.Encoding.DER)).decode()

    def cert_pem(self) -> str:
        from cryptography.hazmat.primitives import serialization
        return self.cert.public_bytes(serialization.Encoding.PEM).decode()

    def key_pem(self, password: str | None = None) -> str:
        from cryptography.hazmat.primitives import serialization
        enc = (serialization.BestAvailableEncryption(password.encode()) if password
               else serialization.NoEncryption())
        return self.key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8, enc).decode()

    def to_pfx(self, password: str | None = None, name: str = "psrunner") -> bytes:
        from cryptography.hazmat.primitives.serialization import (
            BestAvailableEncryption,
            NoEncryption,
            pkcs12,
        )
        enc = BestAvailableEncryption(password.encode()) if password else NoEncryption()
        return pkcs12.serialize_key_and_certificates(name.encode(), self.key, self.cert, None, enc)


def thumbprint_of_der_b64(der_b64: str) -> str:
    import hashlib
    return hashlib.sha1(base64.b64decode(der_b64)).hexdigest().upper()


def load_certificate(path: str | Path, password: Secret | None = None, *,
                     input_name: str = "certificate", need_key: bool = True) -> CertMaterial:
    """A certificate (and its private key) from a .pfx/.p12 or a PEM file."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.serialization import pkcs12

    p = Path(path).expanduser()
    if not p.is_file():
        raise InputError(f"{input_name}: no such file: {p}", input=input_name,
                         hint="give the path of a .pfx or .pem file holding the certificate")
    data = p.read_bytes()
    pw = password.reveal().encode() if password else None
    if p.suffix.lower() in (".pfx", ".p12") or not data.lstrip().startswith(b"-----"):
        try:
            key, cert, _ = pkcs12.load_key_and_certificates(data, pw)
        except ValueError:
            raise InputError(f"{input_name}: cannot open {p.name}: wrong password or not a PFX file",
                             input=input_name,
                             hint="give a PFX or PEM file, with the password that protects it "
                                  "(none for an unprotected one)") from None
        if cert is None:
            raise InputError(f"{input_name}: {p.name} holds no certificate", input=input_name)
        if need_key and key is None:
            raise InputError(f"{input_name}: {p.name} holds no private key", input=input_name,
                             hint="export the certificate with its private key")
        return CertMaterial(cert, key)
    try:
        cert = x509.load_pem_x509_certificate(data)
    except ValueError:
        raise InputError(f"{input_name}: {p.name} holds no PEM certificate", input=input_name) from None
    key = None
    if b"PRIVATE KEY-----" in data:
        try:
            key = serialization.load_pem_private_key(data, pw)
        except (TypeError, ValueError):
            raise InputError(f"{input_name}: cannot read the private key in {p.name}: wrong or missing password",
                             input=input_name, hint="give the password that protects the key") from None
    if need_key and key is None:
        raise InputError(f"{input_name}: {p.name} holds no private key", input=input_name,
                         hint="put the private key and the certificate in the same PEM file, or use a PFX")
    return CertMaterial(cert, key)


def generate_self_signed(common_name: str, days: float = 365, key_size: int = 2048, *, key: Any = None) -> CertMaterial:
    """A self-signed certificate for app-only sign-in, on a new RSA key (or on `key`)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = key or rsa.generate_private_key(public_exponent=65537, key_size=key_size)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64] or "psrunner")])
    now = _dt.datetime.now(_dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _dt.timedelta(minutes=5))
        .not_valid_after(now + _dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=True,
                                     content_commitment=False, data_encipherment=False,
                                     key_agreement=False, key_cert_sign=False, crl_sign=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return CertMaterial(cert, key)
