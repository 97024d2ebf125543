"""Bad input to the main runbook: exit 2, a message naming the runbook parameter (not an
internal target setting) and how to fix it, before any stage runs and before any network
traffic."""

from __future__ import annotations

import socket

import pytest

from ..cli_invoke import psrunner


@pytest.fixture
def no_network(monkeypatch):
    """Any outgoing connection fails the test."""
    def refuse(self, address, *a, **k):
        raise AssertionError(f"network call to {address} while validating input")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: refuse(None, a[:2]))


@pytest.fixture
def clean_env(monkeypatch):
    for name in ("PSRUNNER_GRAPH_CLIENT_SECRET", "PSRUNNER_GRAPH_CERTIFICATE_PASSWORD",
                 "PSRUNNER_HOST_PASSWORD", "PSRUNNER_SPO_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


BASE = ["-p", "tenant=contoso.onmicrosoft.com", "-p", "host=mgmt01.contoso.local"]
CLIENT = "-p", "graph_client_id=11111111-1111-1111-1111-111111111111"


def plan(tmp_path, *args):
    return psrunner("plan", "m365-backup-access", "--state-dir", str(tmp_path / "state"), *BASE, *args)


CASES = {
    "secret sign-in without the secret": (
        ["-p", "graph_auth=secret", *CLIENT], {},
        "graph_client_secret", ["PSRUNNER_GRAPH_CLIENT_SECRET", "--secret-file graph_client_secret="]),
    "secret sign-in without a client id": (
        ["-p", "graph_auth=secret"], {"PSRUNNER_GRAPH_CLIENT_SECRET": "s3cret-value"},
        "graph_client_id", ["-p graph_client_id="]),
    "certificate sign-in without a certificate": (
        ["-p", "graph_auth=certificate", *CLIENT], {},
        "graph_certificate", ["-p graph_certificate="]),
    "certificate file that does not exist": (
        ["-p", "graph_auth=certificate", *CLIENT, "-p", "graph_certificate=/nonexistent/operator.pem"], {},
        "graph_certificate", ["no such file", "/nonexistent/operator.pem"]),
    "Graph CA bundle that does not exist": (
        ["-p", "graph_auth=secret", *CLIENT, "-p", "graph_ca_bundle=/nonexistent/ca.pem"],
        {"PSRUNNER_GRAPH_CLIENT_SECRET": "s3cret-value"},
        "graph_ca_bundle", ["/nonexistent/ca.pem", "PEM"]),
    "host CA bundle that does not exist": (
        ["-p", "host_ca_bundle=/nonexistent/host-ca.pem"], {},
        "host_ca_bundle", ["/nonexistent/host-ca.pem", "PEM"]),
    "basic auth without a user": (
        ["-p", "host_auth=basic"], {},
        "host_user", ["-p host_user="]),
    "basic auth without the password": (
        ["-p", "host_auth=basic", "-p", "host_user=admin"], {},
        "host_password", ["PSRUNNER_HOST_PASSWORD"]),
    "certificate to upload that does not exist": (
        ["-p", "credential=certificate", "-p", "certificate_path=/nonexistent/app.pfx"], {},
        "certificate_path", ["no such file", "/nonexistent/app.pfx"]),
    "bad tenant": (["-p", "tenant=not a tenant"], {}, "tenant", ["contoso.onmicrosoft.com"]),
    "bad host": (["-p", "host=bad host;rm"], {}, "host", ["mgmt01.contoso.local"]),
    "port 0": (["-p", "host_port=0"], {}, "host_port", ["5986"]),
    "unknown cloud": (["-p", "cloud=mars"], {}, "cloud", ["usgov"]),
    # how parameters relate, checked by the stage kinds before any sign-in (issue 12 item 8)
    "secret renewed before it could ever be used": (
        ["-p", "secret_renew_days=200"], {},
        "secret_lifetime_days", ["-p secret_lifetime_days=201 or more, or a smaller -p secret_renew_days="]),
    "SharePoint Server without a site": (
        ["-p", "sharepoint_backend=server"], {}, "server_site_url", ["-p server_site_url=https://"]),
    "a tenant id, from which no SharePoint admin URL follows": (
        ["-p", "tenant=8f7c1b2a-3d4e-4f50-9a6b-7c8d9e0f1a2b"], {}, "admin_url", ["-p admin_url=https://"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_exits_2_naming_the_parameter_before_any_network_call(tmp_path, clean_env, no_network, case):
    args, env, param, fix_words = CASES[case]
    for k, v in env.items():
        clean_env.setenv(k, v)
    r = plan(tmp_path, *args)
    assert r.exit_code == 2, r.output
    first = r.output.strip().splitlines()[0]
    assert first.startswith("error: ") and f"{param!r}" in first, r.output
    assert "\n  fix: " in r.output, r.output
    for word in fix_words:
        assert word in r.output, (word, r.output)
    # refused before any run started: no run directory, so no stage (and no sign-in) ran
    assert not (tmp_path / "state" / "runs").exists() or not any((tmp_path / "state" / "runs").iterdir())
    assert "s3cret-value" not in r.output
