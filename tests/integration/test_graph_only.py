"""The main runbook without a Windows host: an admin who does the SharePoint part elsewhere
leaves `host` out, and the Graph stages plan and run on their own while the host stages are
skipped with the reason. A parameter meant for the host, given without one, is refused
before sign-in (exit 2, naming it)."""

from __future__ import annotations

import json

import pytest

from runner.graph.endpoints import ALLOW_ENV
from runner.sim.demo import simulators, write_sim_params
from tests.terminal import psrunner

RUNBOOK = "m365-backup-access"
HOST_STAGES = ("host-facts", "spo-module", "spo-settings", "appinv-grant")
HOST_PARAMS = ("host", "host_port", "host_https", "host_auth", "host_user", "host_ca_bundle", "spo_user",
               "pnp_client_id")


@pytest.fixture
def graph_only(tmp_path):
    """(tenant, host, the command line's params arguments without any of the host's, env)."""
    with simulators() as (world, tenant, host):
        pf, files = write_sim_params(tmp_path / "sim", tenant, host, world)
        lines = [line for line in pf.read_text().splitlines() if line.split(" = ")[0] not in HOST_PARAMS]
        pf.write_text("\n".join(lines) + "\n")
        secrets = [a for k, v in files.items() if k.startswith("graph")
                   for a in ("--secret-file", f"{k}={v}")]
        env = {"PSRUNNER_STATE_DIR": str(tmp_path / "state"), ALLOW_ENV: "1"}
        yield tenant, host, ["--params-file", str(pf), *secrets], env


def test_the_graph_stages_run_alone_and_the_host_stages_say_why_not(graph_only):
    tenant, host, args, env = graph_only
    runs = []
    for command in ("plan", "run", "run"):
        r = psrunner(command, RUNBOOK, *args, *(["--yes"] if command == "run" else []), "-o", "json", "-q",
                     env=env)
        assert r.returncode == 0, r.stderr
        runs.append({s["id"]: s for s in json.loads(r.stdout)["stages"]})
    plan, first, again = runs
    for stages in runs:
        for sid in HOST_STAGES:
            assert stages[sid]["status"] == "skipped"
            assert stages[sid]["messages"] == [
                "not run: no Windows host is given (-p host=NAME), and the SharePoint steps run on one"]
    assert [plan[s]["status"] for s in ("application", "service-principal", "consent", "secret")] == ["changed"] * 4
    assert [first[s]["status"] for s in ("application", "service-principal", "consent", "secret")] == ["changed"] * 4
    assert first["consent"]["outputs"]["added"] == 46
    assert {again[s]["status"] for s in ("preflight", "application", "service-principal", "consent", "secret",
                                         "handoff")} == {"ok"}
    assert host.counter.snapshot()["requests"] == 0          # nobody knocked on the host's door


@pytest.mark.parametrize("given, named", [
    (["-p", "spo_user=admin@contoso.onmicrosoft.com"], "spo_user"),
    (["-p", "sharepoint_backend=server", "-p", "legacy_auth=true"], "legacy_auth, sharepoint_backend"),
])
def test_a_host_parameter_without_a_host_is_refused_before_sign_in(graph_only, given, named):
    tenant, host, args, env = graph_only
    before = tenant.requests.snapshot()["total"]
    r = psrunner("plan", RUNBOOK, *args, *given, env=env)
    assert r.returncode == 2
    verb = "is" if "," not in named else "are"
    assert r.stderr.splitlines()[0] == (f"error: {named} {verb} only used on what this run leaves out: no Windows "
                                        "host is given (-p host=NAME), and the SharePoint steps run on one")
    assert tenant.requests.snapshot()["total"] == before      # refused before sign-in


def test_a_credential_not_asked_for_reads_not_requested_and_the_plan_says_why(graph_only):
    """Issue 10 item 5: with -p credential=secret the certificate stage is skipped, and its
    hand-off values read "not requested" in the plan and the run alike, never "known after
    apply"; the plan says what the choice of credential costs."""
    tenant, host, args, env = graph_only
    cert_keys = {"thumbprint", "pfx_file", "pfx_password_file", "cert_expires"}
    for command in ("plan", "run"):
        r = psrunner(command, RUNBOOK, *args, "-p", "credential=secret", *(["--yes"] if command == "run" else []),
                     "-o", "json", "-q", env=env)
        assert r.returncode == 0, r.stderr
        stages = {s["id"]: s for s in json.loads(r.stdout)["stages"]}
        assert stages["certificate"]["status"] == "skipped"
        handoff = stages["handoff"]["outputs"]["handoff"]
        assert handoff["not_requested"] == {k: "not requested" for k in cert_keys}
        assert not cert_keys & set(handoff["pending"]) and not cert_keys & set(handoff["form"])
        if command == "plan":
            assert stages["handoff"]["messages"][0] == (
                "credential secret: no certificate, so the backup product cannot reach SharePoint Online app-only "
                "(it accepts only certificate sign-in); -p credential=both adds one")
            assert set(handoff["pending"]) == {"app_id", "secret_file", "secret_expires"}
    r = psrunner("plan", RUNBOOK, *args, "-p", "credential=secret", env=env)
    assert "  Certificate thumbprint       not requested" in r.stdout.splitlines()
    assert "known after apply: certificate" not in r.stdout

