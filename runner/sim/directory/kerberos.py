"""Kerberos from a `SambaDC`'s KDC: a service principal for a host, its keytab, a krb5.conf,
and sign-in with the MIT tools (krb5-user), so a host can accept real Kerberos (SPNEGO).

The steps for a service `HTTP/<host>` a client can get a ticket for and the host can accept:

1. `add_service_account(dc, host)`: a computer account `<HOST>$` with servicePrincipalName
   HTTP/<host> (and HOST/<host>), userAccountControl 4096 (WORKSTATION_TRUST_ACCOUNT), a
   password, and msDS-SupportedEncryptionTypes 24 (AES128 + AES256). Without a password the
   exported keytab is empty; without the encryption types it holds RC4 keys only, which
   current MIT Kerberos refuses.
2. `export_keytab(dc, "HTTP/<host>", path)`: `samba-tool domain exportkeytab --principal`.
3. `write_krb5_conf(dc, path)`: the realm with `kdc = <the DC's address>`, no DNS lookups,
   so no hosts file or DNS is needed.
4. A client: `kinit(dc_conf, "jdoe@CONTOSO.TEST", password, ccache)`, then `kvno` for the
   service, or GSSAPI/SPNEGO (pyspnego) with `kerberos_env(...)` in the environment.
   The acceptor: pyspnego's `spnego.server(protocol="kerberos")` (or "negotiate") with
   KRB5_KTNAME pointing at the keytab, as `kerberos_env(keytab=...)` sets it.

Sources: Microsoft Learn "msDS-SupportedEncryptionTypes" (0x8 AES128, 0x10 AES256) and
"User-Account-Control attribute" (0x1000); samba-tool(8) `domain exportkeytab`; krb5.conf(5)
(`kdc`, `dns_lookup_kdc`, `dns_lookup_realm`, `rdns`)."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
from pathlib import Path
from typing import Any

from .accounts import WORKSTATION_TRUST_ACCOUNT
from .ldap_directory import quoted_utf16
from .samba_dc import SambaDC

AES_ONLY = 0x8 | 0x10


class KerberosError(RuntimeError):
    """kinit, kvno or a keytab export failed; the message holds the tool's error."""


def kerberos_env(krb5_conf: str | os.PathLike[str], *, ccache: str | os.PathLike[str] | None = None,
                 keytab: str | os.PathLike[str] | None = None) -> dict[str, str]:
    """Environment for MIT Kerberos (the tools and GSSAPI) to use this realm, a credential
    cache and, for an acceptor, a keytab."""
    env = {"KRB5_CONFIG": str(krb5_conf)}
    if ccache is not None:
        env["KRB5CCNAME"] = f"FILE:{ccache}"
    if keytab is not None:
        env["KRB5_KTNAME"] = f"FILE:{keytab}"
    return env


def krb5_conf_text(realm: str, kdc: str) -> str:
    domain = realm.lower()
    return (
        "[libdefaults]\n"
        f"    default_realm = {realm}\n"
        "    dns_lookup_kdc = false\n"
        "    dns_lookup_realm = false\n"
        "    rdns = false\n"
        "    dns_canonicalize_hostname = false\n"
        "[realms]\n"
        f"    {realm} = {{\n"
        f"        kdc = {kdc}\n"
        f"        admin_server = {kdc}\n"
        "    }\n"
        "[domain_realm]\n"
        f"    .{domain} = {realm}\n"
        f"    {domain} = {realm}\n"
    )


def write_krb5_conf(dc: SambaDC, path: str | os.PathLike[str]) -> Path:
    """A krb5.conf for `dc`'s realm that reaches its KDC by address."""
    target = Path(path)
    target.write_text(krb5_conf_text(dc.realm, dc.address))
    return target


def add_service_account(dc: SambaDC, host: str, *, services: tuple[str, ...] = ("HTTP", "HOST"),
                        password: str | None = None) -> str:
    """A computer account for `host` (an FQDN in the DC's domain) holding `<service>/<host>`
    principals, ready for a keytab export; its DN."""
    short = host.split(".")[0].upper()[:15]
    attributes: dict[str, Any] = {
        "sAMAccountName": f"{short}$",
        "dNSHostName": host,
        "servicePrincipalName": [f"{svc}/{name}" for svc in services for name in (host, short.lower())],
        "userAccountControl": str(WORKSTATION_TRUST_ACCOUNT),
        "msDS-SupportedEncryptionTypes": str(AES_ONLY),
        "unicodePwd": quoted_utf16(password or secrets.token_urlsafe(32)),
    }
    directory = dc.connect()
    try:
        return directory.add_entry(f"CN={short},CN=Computers,{dc.domain_dn}",
                                   ["top", "person", "organizationalPerson", "user", "computer"],
                                   attributes, target=host)
    finally:
        directory.close()


def export_keytab(dc: SambaDC, principal: str, path: str | os.PathLike[str]) -> Path:
    """The keys of `principal` (e.g. "HTTP/web01.contoso.test") in a 0600 keytab at `path`."""
    target = Path(path)
    target.unlink(missing_ok=True)
    done = dc.samba_tool("domain", "exportkeytab", str(target), f"--principal={principal}")
    if done.returncode != 0 or not target.exists() or target.stat().st_size == 0:
        raise KerberosError(f"exportkeytab {principal} failed: {(done.stderr or done.stdout).strip()}")
    target.chmod(0o600)
    return target


def _run(cmd: list[str], env: dict[str, str], *, stdin: str | None = None, timeout: float) -> str:
    try:
        done = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, **env}, check=False)
    except subprocess.TimeoutExpired:
        raise KerberosError(f"{cmd[0]} did not finish within {timeout:.0f} s") from None
    if done.returncode != 0:
        raise KerberosError(f"{cmd[0]} failed: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


def kinit(krb5_conf: str | os.PathLike[str], principal: str, password: str,
          ccache: str | os.PathLike[str], *, timeout: float = 30.0) -> None:
    """Get a TGT for `principal` into `ccache`; the password goes on stdin, never in argv."""
    _run(["kinit", principal], kerberos_env(krb5_conf, ccache=ccache), stdin=password + "\n", timeout=timeout)


def kvno(krb5_conf: str | os.PathLike[str], service: str, ccache: str | os.PathLike[str], *,
         timeout: float = 30.0) -> int:
    """Get a service ticket for `service` with the TGT in `ccache`; its key version number."""
    out = _run(["kvno", service], kerberos_env(krb5_conf, ccache=ccache), timeout=timeout)
    found = re.search(r"kvno = (\d+)", out)
    if not found:
        raise KerberosError(f"kvno printed no key version: {out.strip()}")
    return int(found.group(1))
