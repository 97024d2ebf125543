"""Kerberos from the Samba DC's KDC: a user signs in with kinit, gets a ticket for HTTP/<host>,
and a host holding the exported keytab accepts it (SPNEGO through pyspnego/GSSAPI)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from runner.sim.directory.kerberos import KerberosError, kerberos_env, kinit, kvno

from .fixtures import KERBEROS_PASSWORD

pytestmark = [pytest.mark.directory, pytest.mark.kerberos]

PASSWORD = KERBEROS_PASSWORD       # kuser's, in the kerberos_service fixture (tests/directory/fixtures.py)


def test_keytab_holds_aes_keys_only(kerberos_service: dict) -> None:
    listing = subprocess.run(["klist", "-ke", str(kerberos_service["keytab"])], capture_output=True, text=True,
                             check=True, timeout=30).stdout
    enctypes = {line.rsplit("(", 1)[1].rstrip(") ")
                for line in listing.splitlines() if f"HTTP/{kerberos_service['host']}" in line}
    assert enctypes == {"aes256-cts-hmac-sha1-96", "aes128-cts-hmac-sha1-96"}
    assert kerberos_service["keytab"].stat().st_mode & 0o777 == 0o600


def test_kinit_and_a_service_ticket(kerberos_service: dict, kerberos_realm: Path, tmp_path: Path) -> None:
    ccache = tmp_path / "cc"
    kinit(kerberos_realm, kerberos_service["principal"], PASSWORD, ccache)
    assert kvno(kerberos_realm, f"HTTP/{kerberos_service['host']}", ccache) >= 1


def test_a_wrong_password_fails_and_counts(kerberos_service: dict, kerberos_realm: Path, tmp_path: Path,
                                           samba_directory) -> None:
    with pytest.raises(KerberosError, match="kinit failed"):
        kinit(kerberos_realm, kerberos_service["principal"], "Not-the-Pa55", tmp_path / "cc")
    assert samba_directory.get_user("kuser", ["BadLogonCount"])["BadLogonCount"] == 1
    samba_directory.unlock_account("kuser")


def test_the_host_accepts_the_ticket_with_its_keytab(kerberos_service: dict, kerberos_realm: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("gssapi", reason="pyspnego's kerberos extra (make venv with libkrb5-dev installed)")
    import spnego

    ccache = tmp_path / "cc"
    kinit(kerberos_realm, kerberos_service["principal"], PASSWORD, ccache)
    for name, value in kerberos_env(kerberos_realm, ccache=ccache, keytab=kerberos_service["keytab"]).items():
        monkeypatch.setenv(name, value)
    client = spnego.client(hostname=kerberos_service["host"], service="HTTP", protocol="negotiate")
    server = spnego.server(protocol="negotiate")
    token = client.step()
    for _ in range(3):                     # Kerberos in SPNEGO: one or two round trips
        reply = server.step(token)
        if reply:
            token = client.step(reply)     # the acceptor's answer (mutual authentication)
        if server.complete and client.complete:
            break
    assert server.complete and client.complete and server.client_principal == kerberos_service["principal"]
    sealed = client.wrap(b"Get-ADUser jdoe")
    assert server.unwrap(sealed.data).data == b"Get-ADUser jdoe"
