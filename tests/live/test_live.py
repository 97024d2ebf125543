"""Against a real tenant and Windows host: opt-in, for an admin with a lab.

    export PSRUNNER_LIVE_TENANT=contoso.onmicrosoft.com
    export PSRUNNER_LIVE_HOST=mgmt01.contoso.local
    export PSRUNNER_LIVE_GRAPH_CLIENT_ID=<operator app id>          # unattended sign-in
    export PSRUNNER_LIVE_GRAPH_CERTIFICATE=/path/operator.pem        # key + certificate
    export PSRUNNER_LIVE_HOST_USER='CONTOSO\\svc-psrunner'
    export PSRUNNER_LIVE_HOST_PASSWORD=...                           # or use Kerberos (leave empty)
    export PSRUNNER_LIVE_HOST_AUTH=kerberos                          # after kinit, no user or password;
    export PSRUNNER_LIVE_HOST_KERBEROS_NAME=mgmt01.contoso.local     # when HOST is an address or alias
    export PSRUNNER_LIVE_SPO_USER=admin@contoso.onmicrosoft.com      # optional
    export PSRUNNER_LIVE_SPO_PASSWORD=...
    export PSRUNNER_LIVE_SPO_CLIENT_ID=<app id>                      # optional, instead of SPO_USER:
    export PSRUNNER_LIVE_SPO_THUMBPRINT=<thumbprint>                 # its certificate in a store of HOST
    export PSRUNNER_LIVE_APP_UNIQUE_NAME=psrunner-live-test          # default
    pytest -m live tests/live

The tests make a real app registration named by PSRUNNER_LIVE_APP_UNIQUE_NAME and grant it
the m365-backup profile. They assert the invariants the simulated suite asserts: plan changes
nothing, the first run converges, the second run changes nothing and writes nothing, there is
one app with that unique name. Remove it afterwards with
`psrunner run m365-backup-access-remove -p tenant=... -p app_unique_name=...`."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from runner import api
from runner.powershell.modules import version_tuple
from runner.results import RunStatus, Status
from runner.secrets import Secret

pytestmark = pytest.mark.live

REQUIRED = ("PSRUNNER_LIVE_TENANT", "PSRUNNER_LIVE_HOST", "PSRUNNER_LIVE_GRAPH_CLIENT_ID",
            "PSRUNNER_LIVE_GRAPH_CERTIFICATE")


def _env(name: str, default: str = "") -> str:
    return os.environ.get(f"PSRUNNER_LIVE_{name}", default)


@pytest.fixture(scope="module")
def live_params():
    missing = [v for v in REQUIRED if not os.environ.get(v)]
    if missing:
        pytest.skip("live tests need " + ", ".join(missing))
    rb = api.load_runbook("m365-backup-access")
    given = {
        "tenant": _env("TENANT"), "host": _env("HOST"), "graph_auth": "certificate",
        "graph_client_id": _env("GRAPH_CLIENT_ID"), "graph_certificate": _env("GRAPH_CERTIFICATE"),
        "app_unique_name": _env("APP_UNIQUE_NAME", "psrunner-live-test"),
        "app_name": "psrunner live test", "credential": "both",
        "host_auth": _env("HOST_AUTH", "negotiate"), "host_user": _env("HOST_USER"),
        "host_kerberos_name": _env("HOST_KERBEROS_NAME"),
        "spo_user": _env("SPO_USER"),
        "spo_client_id": _env("SPO_CLIENT_ID"), "spo_thumbprint": _env("SPO_THUMBPRINT"),
    }
    values, _ = api.resolve_params(rb, {k: v for k, v in given.items() if v}, environ={})
    for name in ("HOST_PASSWORD", "SPO_PASSWORD", "GRAPH_CERTIFICATE_PASSWORD"):
        if _env(name):
            values[name.lower()] = Secret(_env(name), name.lower())
    return rb, values


def test_plan_run_rerun_converge(live_params, tmp_path):
    rb, values = live_params
    plan = api.plan(rb, values, state_dir=tmp_path)
    assert plan.status != RunStatus.FAILED, [s.error for s in plan.stages if s.error]
    assert plan.metrics.get("graph_writes", 0) == 0

    first = api.run(rb, values, state_dir=tmp_path)
    assert first.status in (RunStatus.SUCCEEDED, RunStatus.ACTION_REQUIRED), \
        [(s.id, s.error) for s in first.stages if s.error]
    app_id = first.stage("application").outputs["app_id"]
    powershell7 = first.stage("host-facts").outputs.get("powershell7")
    assert powershell7 is None or powershell7["version"].startswith("7.")     # pwsh answered, or is not there
    if values.get("spo_client_id"):          # certificate sign-in: its module release, the store named
        module = first.stage("spo-module").outputs
        assert module["sign_in"] == "certificate" and version_tuple(module["minimum_version"]) >= (16, 0, 26712, 12000)
        assert first.stage("spo-settings").outputs["certificate_store"] in ("CurrentUser", "LocalMachine")
    assert first.stage("consent").outputs.get("missing") in ([], None)

    second = api.run(rb, values, state_dir=tmp_path)
    assert second.stage("application").outputs["app_id"] == app_id      # the same app, not a second
    graph_stages = [s for s in second.stages if s.kind.startswith("graph.")]
    assert all(s.status in (Status.OK, Status.SKIPPED) for s in graph_stages)
    assert second.metrics.get("graph_writes", 0) == 0
    assert second.metrics.get("psrp_pool_opens", 0) <= 1
    # SharePoint Online: the appinv.aspx grant is obsolete, nothing is left for a person, and a
    # run with the defaults settles (issue 10 items 4, 5)
    grant = second.stage("appinv-grant")
    assert grant.status == Status.SKIPPED and grant.action is None, grant.messages
    assert (Path(second.run_dir) / "scripts" / "appinv-grant.xml").is_file()
    assert second.status == RunStatus.SUCCEEDED, [(s.id, s.status, s.messages[:1]) for s in second.stages]
    # m365-access-verify on the same host reads what the run left, and sets nothing (issue 8)
    verify_rb = api.load_runbook("m365-access-verify")
    verify_values, _ = api.resolve_params(verify_rb, {k: v for k, v in values.items() if k in verify_rb.params},
                                          environ={})
    verify = api.run(verify_rb, verify_values, state_dir=tmp_path)
    read = verify.stage("sharepoint-settings")
    assert read.status == Status.OK, (read.messages, read.error)
    assert read.outputs["settings"] == second.stage("spo-settings").diff["after"]
    assert verify.metrics.get("graph_writes", 0) == 0
