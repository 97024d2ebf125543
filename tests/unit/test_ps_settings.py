"""Host settings and the psrp target block: bad combinations fail early with InputError
naming the setting; opening a target does not touch the network."""

from __future__ import annotations

import logging
import socket

import pytest

from runner.sim.tls import make_tls

from runner.errors import InputError
from runner.powershell.connector import open_target
from runner.powershell.session import HostSession
from runner.powershell.settings import HostSettings, settings_from_target
from runner.secrets import Secret


def settings(**kw) -> HostSettings:
    base = dict(host="win01.contoso.com", auth="basic", username="admin", password=Secret("Host-Pass-123"))
    base.update(kw)
    return HostSettings(**base)


def test_defaults_are_https_5986_with_validation():
    s = HostSettings(host="win01")
    assert s.ssl and s.effective_port == 5986 and s.cert_validation is True and s.auth == "negotiate"
    assert s.endpoint == "https://win01:5986/wsman"
    assert HostSettings(host="win01", ssl=False).effective_port == 5985


@pytest.mark.parametrize("kw,setting", [
    (dict(ssl=False), "auth"),                                       # Basic over plain HTTP
    (dict(ssl=False, auth="ntlm", encryption="never"), "encryption"),  # HTTP without message encryption
    (dict(auth="certificate", ssl=False), "auth"),
    (dict(encryption="always"), "encryption"),                       # basic cannot seal messages
    (dict(encryption="sometimes"), "encryption"),
    (dict(auth="digest"), "auth"),
    (dict(port=70000), "port"),
    (dict(port=True), "port"),
    (dict(host="https://win01/wsman"), "host"),
    (dict(host=""), "host"),
    (dict(password=None), "password"),
    (dict(username=None), "username"),
    (dict(auth="certificate"), "certificate_pem"),
    (dict(cert_validation="/nonexistent/ca.pem"), "ca_bundle"),
    (dict(cert_validation="yes please"), "ca_bundle"),
    (dict(read_timeout=10, operation_timeout=20), "read_timeout"),
    (dict(connection_timeout=0), "connection_timeout"),
    (dict(configuration_name="bad name"), "configuration_name"),
])
def test_bad_combinations_name_the_setting(kw, setting):
    with pytest.raises(InputError) as e:
        settings(**kw)
    assert e.value.input == f"host.{setting}"
    assert e.value.exit_code == 2


def test_good_combinations():
    settings(ssl=False, auth="ntlm")                                 # HTTP + NTLM sealing
    settings(ssl=False, auth="negotiate", encryption="always")
    settings(auth="kerberos", username=None, password=None)          # ticket cache
    settings(auth="ntlm", encryption="always")                       # HTTPS + sealing too


def test_password_given_as_text_becomes_a_secret():
    s = settings(password="Plain-Text-9")
    assert isinstance(s.password, Secret) and "Plain-Text-9" not in repr(s)


def test_validation_off_warns_every_session():
    records: list[logging.LogRecord] = []
    log = logging.getLogger("test.ps_settings.validation")
    handler = logging.Handler()
    handler.emit = records.append
    log.addHandler(handler)
    try:
        HostSession(settings(cert_validation=False), log=log)
        HostSession(settings(cert_validation=False), log=log)
        HostSession(settings(), log=log)
    finally:
        log.removeHandler(handler)
    assert [r.levelno for r in records] == [logging.WARNING] * 2
    assert all("validation is OFF" in r.getMessage() and "ca_bundle" in r.getMessage() for r in records)


# --------------------------------------------------------------------------- target block

def test_target_block_is_read_with_aliases_and_empty_values_dropped(tmp_path):
    ca = make_tls(tmp_path / "tls").ca_bundle
    s = settings_from_target({"host": "win01", "port": "5986", "ssl": True, "auth": "ntlm", "username": "C\\admin",
                              "password": Secret("Host-Pass-123"), "ca_bundle": str(ca), "configuration_name": "",
                              "timeouts": {"connect": 5, "read": 40, "operation": 30}}, "host")
    assert s.port == 5986 and s.cert_validation == str(ca) and s.auth == "ntlm"
    assert s.configuration_name == "Microsoft.PowerShell"
    assert (s.connection_timeout, s.read_timeout, s.operation_timeout) == (5, 40, 30)


@pytest.mark.parametrize("block,where", [
    ({"host": "win01", "hostname": "x"}, "targets.web.hostname"),
    ({"host": "win01", "scheme": "ftp"}, "targets.web.scheme"),
    ({"host": "win01", "scheme": "https", "ssl": False}, "targets.web.ssl"),
    ({"host": "win01", "ca_bundle": "/tmp/x.pem", "cert_validation": False}, "targets.web.cert_validation"),
    ({"host": "win01", "port": "five"}, "targets.web.port"),
    ({"host": "win01", "timeouts": {"slow": 3}}, "targets.web.timeouts.slow"),
    ({"port": 5986}, "targets.web.host"),
    ({"host": "win01", "scheme": "http", "auth": "basic", "username": "a", "password": Secret("Host-Pass-123")},
     "targets.web.auth"),
])
def test_target_block_errors_name_the_key(block, where):
    with pytest.raises(InputError) as e:
        settings_from_target(block, "web")
    assert e.value.input == where


def test_open_target_does_not_touch_the_network(monkeypatch):
    def no_network(*a, **k):
        raise AssertionError("open_target must be lazy")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    conn = open_target({"host": "win01.invalid", "auth": "basic", "username": "a",
                        "password": Secret("Host-Pass-123")})
    assert conn.metrics() == {"psrp_pool_opens": 0, "psrp_invocations": 0, "psrp_wsman_requests": 0}
    conn.interrupt()     # nothing running: a no-op
    conn.close()
