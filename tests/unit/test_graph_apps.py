"""Helpers of the application operations: names, times, thumbprints, certificate files."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives import serialization

from runner.errors import InputError
from runner.graph.certs import generate_self_signed, load_certificate
from runner.graph.credentials import key_thumbprint
from runner.graph.odata import app_path, check_unique_name, odata_key, parse_time
from runner.secrets import Secret


def test_unique_names_are_checked_and_quoted():
    assert check_unique_name("m365-backup-access") == "m365-backup-access"
    for bad in ["", "-x", "has space", "a/b", "x" * 121]:
        with pytest.raises(InputError) as ei:
            check_unique_name(bad)
        assert ei.value.input == "unique_name"
    assert odata_key("o'brien") == "o%27%27brien"
    assert app_path("a.b_c") == "/applications(uniqueName='a.b_c')"


def test_graph_timestamps_parse_with_seven_fraction_digits():
    assert parse_time("2027-05-01T12:00:00Z").isoformat() == "2027-05-01T12:00:00+00:00"
    assert parse_time("2027-05-01T12:00:00.1234567Z").microsecond == 123456
    assert parse_time("nonsense") is None and parse_time(None) is None


def test_key_thumbprint_from_key_or_custom_key_identifier():
    m = generate_self_signed("t", days=2, key_size=2048)
    der = base64.b64decode(m.der_b64)
    thumb = hashlib.sha1(der).hexdigest().upper()
    assert m.thumbprint == thumb and len(thumb) == 40
    assert key_thumbprint({"key": m.der_b64}) == thumb
    assert key_thumbprint({"key": None, "customKeyIdentifier": base64.b64encode(bytes.fromhex(thumb)).decode()}) == thumb
    assert key_thumbprint({"customKeyIdentifier": thumb.lower()}) == thumb
    assert key_thumbprint({"customKeyIdentifier": "bm90IGEgdGh1bWI="}) is None


def test_certificate_files_round_trip(tmp_path):
    m = generate_self_signed("psrunner test", days=30)
    pfx = tmp_path / "c.pfx"
    pfx.write_bytes(m.to_pfx("pw-123"))
    loaded = load_certificate(pfx, Secret("pw-123"))
    assert loaded.thumbprint == m.thumbprint and loaded.key is not None
    with pytest.raises(InputError) as ei:
        load_certificate(pfx, Secret("wrong-pw"))
    assert "wrong password" in str(ei.value) and "wrong-pw" not in str(ei.value)
    pem = tmp_path / "c.pem"
    pem.write_text(m.key_pem() + m.cert_pem())
    assert load_certificate(pem).thumbprint == m.thumbprint
    cert_only = tmp_path / "c.cer"
    cert_only.write_text(m.cert_pem())
    with pytest.raises(InputError) as ei:
        load_certificate(cert_only)
    assert "no private key" in str(ei.value)
    assert load_certificate(cert_only, need_key=False).key is None
    assert isinstance(m.key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()), bytes)
    assert (m.not_after - m.not_before).days == 30
