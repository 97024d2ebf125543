"""Where tokens go and how a failing tenant is reported, through the `psrunner` command (in
process) against the tenant simulator with the offboarding runbook, which needs Graph
alone: tokens only to the cloud's own hosts over HTTPS unless a test opts in (and then a
warning on every run), a certificate that does not verify is named and never retried, an
outage is exit 1 whichever service is down, and a tenant named by its id shares the lock of
the same tenant named by its domain."""

from __future__ import annotations

import re
import socket
import threading
from pathlib import Path

import pytest

from runner.graph.connector import tenant_lock_key
from runner.locks import TargetLock
from runner.secrets import write_private
from runner.sim.tenant import TenantSimulator
from runner.sim.tls import make_tls

from ..cli_invoke import psrunner

REMOVE = "m365-backup-access-remove"
TOKEN = r"/oauth2/v2\.0/token$"


def offboarding_args(sim: TenantSimulator, tmp_path: Path, **over: str) -> list[str]:
    secret = write_private(tmp_path / "operator.secret", sim.operator.client_secret)
    params = {"tenant": sim.tenant_domain, "graph_auth": "secret", "graph_client_id": sim.operator.client_id,
              "graph_ca_bundle": sim.ca_bundle, "authority_host": sim.base_url,
              "graph_endpoint": sim.graph_endpoint, **over}
    args = [a for k, v in params.items() for a in ("-p", f"{k}={v}")]
    return [*args, "--secret-file", f"graph_client_secret={secret}"]


# --------------------------------------------------------------------------- where tokens go

class Listener:
    """A loopback TCP listener that counts the connections made to it."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            conn.close()


@pytest.mark.parametrize("setting", ["graph_endpoint", "authority_host"])
def test_an_http_endpoint_gets_no_request_and_names_the_parameter(sim, tmp_path, setting):
    harvest = Listener()
    r = psrunner("plan", REMOVE, *offboarding_args(sim, tmp_path, **{setting: f"http://127.0.0.1:{harvest.port}"}))
    assert r.exit_code == 2, r.output
    assert r.output.startswith(f"error: parameter '{setting}': 'http://127.0.0.1:{harvest.port}' is not an "
                               "https:// address of a host; psrunner sends the admin's access token there")
    assert harvest.connections == 0 and sim.requests.snapshot()["total"] == 0
    harvest.sock.close()


def test_another_host_needs_the_test_opt_in_which_warns_on_every_run(sim, tmp_path, monkeypatch):
    monkeypatch.delenv("PSRUNNER_ALLOW_TEST_ENDPOINTS")
    args = offboarding_args(sim, tmp_path)
    r = psrunner("plan", REMOVE, *args)
    assert r.exit_code == 2 and sim.requests.snapshot()["total"] == 0
    assert r.output.startswith("error: parameter 'authority_host': localhost is not the global cloud's sign-in "
                               "service (login.microsoftonline.com)")
    assert "set PSRUNNER_ALLOW_TEST_ENDPOINTS=1" in r.output
    for _ in range(2):
        r = psrunner("plan", REMOVE, *args, env={"PSRUNNER_ALLOW_TEST_ENDPOINTS": "1"})
        assert r.exit_code == 0, r.output
        warned = [line for line in r.output.splitlines() if line.startswith("WARNING ")]
        assert len(warned) == 2 and all("because PSRUNNER_ALLOW_TEST_ENDPOINTS is set" in w for w in warned)


def test_the_clouds_own_hosts_need_no_opt_in(monkeypatch):
    from runner.graph.auth import CLOUDS
    from runner.graph.endpoints import check_endpoints

    monkeypatch.delenv("PSRUNNER_ALLOW_TEST_ENDPOINTS")
    assert check_endpoints(CLOUDS["usgov"], {"graph_endpoint": "https://graph.microsoft.us/v1.0",
                                             "authority_host": "https://login.microsoftonline.us"}) == []
    with pytest.raises(Exception, match="not the usgov cloud's Graph service"):
        check_endpoints(CLOUDS["usgov"], {"graph_endpoint": "https://graph.microsoft.com"})


# --------------------------------------------------------------------------- TLS

def test_a_certificate_that_does_not_verify_is_named_and_not_retried(sim, tmp_path):
    other_ca = make_tls(tmp_path / "other").ca_bundle       # a real PEM CA that did not sign the simulator
    r = psrunner("plan", REMOVE, *offboarding_args(sim, tmp_path, graph_ca_bundle=str(other_ca)), "-v")
    assert r.exit_code == 1, r.output
    assert "TLS: the certificate of localhost does not verify against the CA bundle" in r.output
    assert "(graph_ca_bundle)" in r.output and "give its CA as a PEM file with -p graph_ca_bundle=PATH" in r.output
    assert "waiting" not in r.output and "cannot reach" not in r.output       # not retried, not "unreachable"
    assert sim.requests.snapshot()["total"] == 0


@pytest.mark.parametrize("content", [b"\x30\x82\x01\x0a" + b"\x00" * 40, b"just some text\n",
                                     b"-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n"])
def test_a_ca_bundle_that_is_not_pem_is_refused_before_the_run(sim, tmp_path, content):
    bad = tmp_path / "ca.der"
    bad.write_bytes(content)
    r = psrunner("plan", REMOVE, *offboarding_args(sim, tmp_path, graph_ca_bundle=str(bad)))
    assert r.exit_code == 2, r.output
    assert r.output.startswith("error: parameter 'graph_ca_bundle': CA bundle ")
    assert sim.requests.snapshot()["total"] == 0 and not (tmp_path / "state" / "runs").exists()


# --------------------------------------------------------------------------- outages

@pytest.mark.parametrize("where", ["sign-in", "graph"])
def test_an_outage_is_exit_1_whichever_service_is_down(sim, tmp_path, where):
    method, path = ("POST", TOKEN) if where == "sign-in" else ("GET", r"/v1\.0/")
    sim.faults.add("unavailable", method=method, path=path, count=None, retry_after=0)
    r = psrunner("plan", REMOVE, *offboarding_args(sim, tmp_path))
    assert r.exit_code == 1, r.output
    assert "503" in r.output and sim.requests.snapshot()["fault_kinds"]["unavailable"] >= 2


def test_an_unreachable_sign_in_service_is_said_tried_three_times_and_named(sim, tmp_path):
    with socket.create_server(("127.0.0.1", 0)) as s:
        port = s.getsockname()[1]               # closed again: connecting is refused
    host = f"127.0.0.1:{port}"
    r = psrunner("plan", REMOVE, *offboarding_args(sim, tmp_path, authority_host=f"https://{host}"),
                 env={"COLUMNS": "200"})
    assert r.exit_code == 1, r.output
    said = [line for line in r.output.splitlines() if "trying again" in line]
    assert [re.sub(r"in [0-9.]+ s", "in N s", line) for line in said] == [
        f"  cannot reach the sign-in service {host} (the connection was refused): trying again in N s (try 2 of 3)",
        f"  cannot reach the sign-in service {host} (the connection was refused): trying again in N s (try 3 of 3)"]
    assert re.search(rf"\nFailed: cannot reach the sign-in service {host}: the connection was refused "
                     rf"\(3 tries in \d+ s\)\n", r.output)
    assert (f"fix: check that this machine reaches https://{host} (DNS, proxy settings such as HTTPS_PROXY, "
            "firewall), and that -p authority_host=... names the sign-in service; then re-run (re-running is "
            "safe)") in " ".join(r.output.split())          # as wrapped under the stage
    assert sim.requests.snapshot()["total"] == 0


# --------------------------------------------------------------------------- locks

def test_a_tenant_named_by_domain_and_by_id_shares_one_lock(sim, tmp_path):
    other = TargetLock(tmp_path / "state", tenant_lock_key(sim.tenant_id), "onboarding-run")
    other.acquire()
    try:
        r = psrunner("run", REMOVE, *offboarding_args(sim, tmp_path), "--yes")
        assert r.exit_code == 1, r.output
        assert "another run (onboarding-run, pid " in r.output and f"is working on graph-tenant:{sim.tenant_id}" \
            in r.output
        assert sim.requests.snapshot()["writes"] == 0
        r = psrunner("run", REMOVE, *offboarding_args(sim, tmp_path, tenant=sim.tenant_id.upper()), "--yes")
        assert r.exit_code == 1 and f"is working on graph-tenant:{sim.tenant_id}" in r.output
    finally:
        other.release()
    r = psrunner("run", REMOVE, *offboarding_args(sim, tmp_path), "--yes")
    assert r.exit_code == 0, r.output
