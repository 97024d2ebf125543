"""The portal's parts on their own: the policy file, the configuration, local accounts."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from runner.errors import InputError
from runner.portal.accounts import SCRYPT_N, authenticate, hash_password, load_accounts, set_account, verify_password
from runner.portal.config import PortalConfig, parse_config
from runner.portal.policy import Refused, dn_under, load_policy, parse_policy
from runner.secrets import Secret

HERE = Path(__file__).parent


@pytest.mark.parametrize("dn, base, under", [
    ("CN=Jane Doe,OU=Staff,DC=contoso,DC=test", "OU=Staff,DC=contoso,DC=test", True),
    ("ou = staff , dc=Contoso,DC=test", "OU=Staff,DC=contoso,DC=test", True),
    ("OU=Staff,DC=contoso,DC=test", "OU=Staff,DC=contoso,DC=test", True),
    ("OU=Admins,DC=contoso,DC=test", "OU=Staff,DC=contoso,DC=test", False),
    ("DC=contoso,DC=test", "OU=Staff,DC=contoso,DC=test", False),
    ("OU=NotStaff,DC=contoso,DC=test", "OU=Staff,DC=contoso,DC=test", False),
    (r"CN=Doe\, Jane,OU=Staff,DC=contoso,DC=test", "OU=Staff,DC=contoso,DC=test", True),
])
def test_a_dn_is_under_a_base_rdn_by_rdn(dn, base, under):
    assert dn_under(dn, base) is under


def test_the_widest_grant_wins_and_fixed_values_are_checked_as_the_runbook_reads_them():
    from runner.runbook_loader import parse
    policy = parse_policy({"roles": {
        "desk": {"runbooks": ["book"], "params": {"book": {"ous": {"value": "OU=A,DC=x;OU=B,DC=x"}}}},
        "boss": {"runbooks": ["*"]}}}, "p.toml")
    assert policy.grant(["desk"], "book").limits is not None
    assert policy.grant(["desk", "boss"], "book").limits is None
    assert policy.grant(["desk"], "other") is None and policy.grant(["nobody"], "book") is None
    rb = parse('name = "book"\ntitle = "t"\n[params.ous]\ntype = "list"\nseparator = ";"\n'
               '[[stages]]\nid = "a"\nkind = "local.file"\ninputs = { path = "/x", content = "y" }\n', "book.toml")
    grant = policy.grant(["desk"], "book")
    grant.check(rb, {"ous": ["OU=A,DC=x", "OU=B,DC=x"]})
    with pytest.raises(Refused, match="set by your role"):
        grant.check(rb, {"ous": ["DC=x"]})


@pytest.mark.parametrize("data, message", [
    ({"roles": {}}, "p.toml: roles: no roles"),
    ({"roles": {"desk": {"runbook": ["a"]}}}, "p.toml: roles.desk.runbook: unknown key"),
    ({"roles": {"desk": {"runbooks": "a"}}}, "p.toml: roles.desk.runbooks: must be a list"),
    ({"roles": {"desk": {"runbooks": ["a"], "can": ["everything"]}}}, "p.toml: roles.desk.can: ['everything'] is not allowed"),
    ({"roles": {"desk": {"runbooks": ["a"], "params": {"a": {"x": {"regex": "."}}}}}}, "p.toml: roles.desk.params.a.x.regex: unknown key"),
    ({"roles": {"desk": {"runbooks": ["a"], "params": {"a": {"x": {"pattern": "("}}}}}}, "p.toml: roles.desk.params.a.x.pattern: not a valid regular expression"),
    ({"roles": {"desk": {"runbooks": ["a"], "params": {"a": {"x": {"value": 1, "pattern": "."}}}}}}, "p.toml: roles.desk.params.a.x: a fixed value takes no other bound"),
    ({"roles": {"two words": {"runbooks": []}}}, "p.toml: roles.two words: 'two words' is not a role name"),
])
def test_policy_mistakes_name_the_file_and_key(data, message):
    with pytest.raises(InputError) as e:
        parse_policy(data, "p.toml")
    assert str(e.value).startswith(message)


def test_a_policy_must_name_runbooks_and_parameters_that_exist(tmp_path):
    from runner import api
    cat = api.catalog([HERE / "runbooks"])
    names = [e.name for e in cat.entries()]
    from tests.unit import gate_kind
    gate_kind.install()
    try:
        load_policy(HERE / "policy.toml").check_runbooks(cat.load, names)
        bad = parse_policy({"roles": {"d": {"runbooks": ["note-wrte"]}}}, "p.toml")
        with pytest.raises(InputError, match=r"roles.d.runbooks\[0\]: no runbook named 'note-wrte'"):
            bad.check_runbooks(cat.load, names)
        bad = parse_policy({"roles": {"d": {"runbooks": ["note-write"], "params": {"note-write": {"nmae": {}}}}}}, "p.toml")
        with pytest.raises(InputError, match="runbook note-write has no parameter 'nmae'"):
            bad.check_runbooks(cat.load, names)
        bad = parse_policy({"roles": {"d": {"runbooks": ["note-write"], "params": {"note-write": {"colour": {"value": "pink"}}}}}}, "p.toml")
        with pytest.raises(InputError, match="'pink' is not one of the choices"):
            bad.check_runbooks(cat.load, names)
    finally:
        gate_kind.uninstall()


def test_plain_http_is_refused_off_loopback_unless_a_tls_proxy_is_declared(tmp_path):
    PortalConfig(host="127.0.0.1").check_listen()
    PortalConfig(host="::1").check_listen()
    with pytest.raises(InputError, match="plain HTTP on 0.0.0.0"):
        PortalConfig(host="0.0.0.0").check_listen()
    behind = parse_config({"server": {"listen": "0.0.0.0:8080", "public_url": "https://portal.contoso.test"}},
                          tmp_path / "portal.toml")
    behind.check_listen()
    assert behind.secure and behind.base_url() == "https://portal.contoso.test"


def test_configuration_mistakes_name_the_file_and_key(tmp_path):
    f = tmp_path / "portal.toml"
    for data, message in [
        ({"sever": {}}, "sever: unknown key"),
        ({"server": {"listen": "localhost"}}, "server.listen 'localhost' is not HOST:PORT"),
        ({"server": {"tls_cert": "c.pem", "tls_key": "k.pem"}}, "server.tls_cert: no such file"),
        ({"entra": {"tenant": "t"}}, "entra.client_id: is required"),
        ({"entra": {"tenant": "t", "client_id": "c", "client_secret_env": "NOT_SET_HERE"}},
         "entra.client_secret_env: the environment variable NOT_SET_HERE is not set"),
        ({"runbooks": {"x": {"max_concurrent": 0}}}, "runbooks.x.max_concurrent: 0 is not a positive whole number"),
        ({"runbooks": {"x": {"param": {}}}}, "runbooks.x.param: unknown key"),
        ({"server": {"broker": "localhost:6379"}}, "server.broker: 'localhost:6379' is not a broker URL"),
    ]:
        with pytest.raises(InputError) as e:
            parse_config(data, f)
        assert message in str(e.value), str(e.value)


def test_a_broker_sends_the_portal_s_runs_to_celery_workers(tmp_path):
    cfg = parse_config({"server": {"broker": "redis://celery-broker:6379/0"}}, tmp_path / "portal.toml")
    assert cfg.broker == "redis://celery-broker:6379/0"
    assert parse_config({}, tmp_path / "portal.toml").broker is None       # the portal's own threads


def test_the_portal_signs_in_at_microsoft_unless_told_this_is_a_simulator(tmp_path, monkeypatch):
    monkeypatch.delenv("PSRUNNER_ALLOW_TEST_ENDPOINTS", raising=False)      # the suite sets it
    (tmp_path / "secret").write_text("s3cret-value\n")
    entra = {"tenant": "t", "client_id": "c", "client_secret_file": "secret"}
    assert parse_config({"entra": entra}, tmp_path / "p.toml").entra.authority == "https://login.microsoftonline.com/t"
    for host, says in [("https://login.evil.example", "login.evil.example is not a Microsoft sign-in service"),
                       ("http://login.microsoftonline.com", "is not an https:// address")]:
        with pytest.raises(InputError, match=says):
            parse_config({"entra": {**entra, "authority_host": host}}, tmp_path / "p.toml")
    monkeypatch.setenv("PSRUNNER_ALLOW_TEST_ENDPOINTS", "1")
    sim = parse_config({"entra": {**entra, "authority_host": "https://localhost:8443"}}, tmp_path / "p.toml")
    assert sim.entra.authority == "https://localhost:8443/t"


def test_relative_paths_are_taken_from_the_configuration_s_folder(tmp_path):
    (tmp_path / "secret").write_text("s3cret-value\n")
    (tmp_path / "ad.toml").write_text('host = "dc01.contoso.test"\n')
    cfg = parse_config({"entra": {"tenant": "t", "client_id": "c", "client_secret_file": "secret"},
                        "accounts": "accounts.toml",
                        "runbooks": {"x": {"params_file": "ad.toml", "params": {"host_port": 5986},
                                           "secret_files": {"host_password": "pw"}}}}, tmp_path / "portal.toml")
    assert cfg.entra.client_secret.reveal() == "s3cret-value" and cfg.accounts == tmp_path / "accounts.toml"
    assert cfg.runbooks["x"].params == {"host": "dc01.contoso.test", "host_port": 5986}
    assert cfg.runbooks["x"].secret_files == {"host_password": str(tmp_path / "pw")}
    assert cfg.link_roles is None                 # people sign in as themselves


def test_passwords_are_kept_as_scrypt_hashes_at_owasp_s_cost_in_a_private_file(tmp_path):
    stored = hash_password(Secret("correct horse battery"), n=2 ** 10)
    assert stored.startswith("scrypt$1024$8$1$") and "correct" not in stored
    assert verify_password(stored, "correct horse battery")
    assert not verify_password(stored, "correct horse batterY")
    assert not verify_password("md5$abc", "x") and not verify_password("scrypt$x", "x")
    assert SCRYPT_N == 2 ** 17                      # OWASP Password Storage Cheat Sheet
    f = tmp_path / "accounts.toml"
    set_account(f, "hdesk1", Secret("Helen-desk-pass-1"), ("helpdesk",), "Helen Desk", cost=2 ** 10)
    set_account(f, "admin1", Secret("Ada-admin-pass-22"), ("admin", "helpdesk"), cost=2 ** 10)
    assert stat.S_IMODE(os.stat(f).st_mode) == 0o600 and "Helen-desk-pass-1" not in f.read_text()
    accounts = load_accounts(f)
    assert accounts["hdesk1"].display == "Helen Desk" and accounts["admin1"].roles == ("admin", "helpdesk")
    assert authenticate(f, "hdesk1", "Helen-desk-pass-1").name == "hdesk1"
    assert authenticate(f, "hdesk1", "wrong") is None and authenticate(f, "nobody", "x") is None
    with pytest.raises(InputError, match="shorter than 12 characters"):
        set_account(f, "x", Secret("short"), ("helpdesk",))


def test_accounts_set_from_the_command_line(tmp_path):
    import subprocess
    import sys
    f = tmp_path / "accounts.toml"
    r = subprocess.run([sys.executable, "-m", "runner.cli", "accounts", "set", str(f), "hdesk1", "--role", "helpdesk",
                        "--password-stdin"], input="Helen-desk-pass-1\n", capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"{f}: account hdesk1 (helpdesk)\n"
    assert authenticate(f, "hdesk1", "Helen-desk-pass-1") is not None
    r = subprocess.run([sys.executable, "-m", "runner.cli", "accounts", "set", str(f), "x", "--role", "helpdesk"],
                       input="", capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "error: no terminal to ask for the password" in r.stderr


@pytest.mark.parametrize("make, said", [
    (lambda p: p.mkdir(), "is a directory, not a file"),
    (lambda p: p.write_bytes("[server]".encode("utf-16")), "UTF-16"),
])
def test_a_portal_file_that_is_no_text_file_is_named_not_a_traceback(tmp_path, make, said):
    from runner.portal.tomlfile import read_toml
    make(tmp_path / "portal.toml")
    with pytest.raises(InputError) as caught:
        read_toml(tmp_path / "portal.toml", what="portal configuration", input="--config")
    assert said in str(caught.value) and caught.value.input == "--config"
