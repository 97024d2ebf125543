"""The Graph fault matrix: every Graph call site of onboarding (m365-backup-access's Graph
stages) and offboarding (m365-backup-access-remove) meets each fault the tenant simulator
can inject there: 429 with Retry-After, 503, the connection reset before the request is
served, the answer dropped after the write was applied, an answer later than the client's
read timeout (the write landing afterwards), and replication lag after a create (with the 403
"must be in the local tenant" an app-only caller gets for a lagging app's service principal).

A case passes when the run with the fault converges (it may not fail: each fault here passes,
so retrying, reconciling a lost answer or waiting out the lag is enough), and the next run
converges too, having removed what arrived after its answer was lost (a secret nobody has);
then the tenant holds one app, one service principal, 46 distinct app role assignments, one
client secret and one certificate whose secret halves this machine holds, and a plan finds
nothing to change. Lasting faults, which must fail clearly, are in test_graph_stages.py.
The stage kinds are driven in this process (graph_harness), through the real msal and
requests, so the whole matrix costs seconds. RELIABILITY.md quotes its size."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pytest

from runner.graph.certs import load_certificate
from runner.graph.credentials import key_thumbprint
from runner.secrets import Secret
from runner.sim.tenant import TenantSimulator
from runner.stages import entra as g

from .graph_harness import ONBOARDING_SITES, UNIQUE, StageCtx, connect, onboard, tenant_view

ONBOARDING = ("preflight", "application", "service_principal", "consent", "client_secret", "certificate")

# call site (the route the simulator records) -> (method, path pattern to arm a fault on)
RERUN_SITES: dict[str, tuple[str, str]] = {
    "GET /v1.0/servicePrincipals(appId={key})": ("GET", r"/v1\.0/servicePrincipals\(appId="),
    "GET /v1.0/servicePrincipals/{id}/appRoleAssignments": ("GET", r"/appRoleAssignments$"),
}
OFFBOARDING_SITES: dict[str, tuple[str, str]] = {
    "GET /v1.0/applications(uniqueName={key}) (offboarding)": ("GET", r"/v1\.0/applications\(uniqueName="),
    "GET /v1.0/servicePrincipals(appId={key}) (offboarding)": ("GET", r"/v1\.0/servicePrincipals\(appId="),
    "DELETE /v1.0/applications/{id}": ("DELETE", r"/v1\.0/applications/[0-9a-f-]+$"),
}
BATCH_ITEM = "POST /v1.0/servicePrincipals/{id}/appRoleAssignedTo"
# the first reads of a fresh onboarding are items of one $batch too (facts.read_state)
BATCH_ITEMS = (BATCH_ITEM, "GET /v1.0/applications(uniqueName={key})", "GET /v1.0/servicePrincipals",
               "GET /v1.0/policies/defaultAppManagementPolicy")
# a call site only a later stage reaches: (method, path, the stage before which the fault is armed);
# the first $batch of a run reads, the grants' $batch comes with the consent stage
LATER_SITES: dict[str, tuple[str, str, str]] = {
    "POST /v1.0/$batch (the grants)": ("POST", r"/v1\.0/\$batch$", "consent"),
}

READ_TIMEOUT = 0.6                 # the client's read timeout in this matrix (seconds)
# fault -> FaultPlan.add arguments (count: how often it fires)
FAULTS: dict[str, dict[str, Any]] = {
    "429": {"kind": "throttle", "retry_after": 1, "count": 2},
    "503": {"kind": "unavailable", "retry_after": 0, "count": 2},
    "reset-before": {"kind": "drop", "count": 1},
    "drop-after": {"kind": "drop-after", "count": 1},
    "read-timeout": {"kind": "read-timeout", "seconds": READ_TIMEOUT + 0.3, "count": 1},
}
ITEM_FAULTS = ("429", "503", "reset-before")          # what a single $batch item can meet
LAG_FAULTS: dict[str, dict[str, Any]] = {             # armed on the request that creates an object
    "lag": {"kind": "lag", "requests": 3},
    "lag-403": {"kind": "lag-local-tenant", "requests": 3},
}
CREATE_SITES = {"PATCH /v1.0/applications(uniqueName={key})": ("lag", "lag-403"),
                "PATCH /v1.0/servicePrincipals(appId={key})": ("lag",)}

CASES = (
    [("onboarding", site, fault) for site in ONBOARDING_SITES
     for fault in (ITEM_FAULTS if site in BATCH_ITEMS else FAULTS)]
    + [("onboarding", site, fault) for site in LATER_SITES for fault in FAULTS]
    + [("onboarding", site, fault) for site, faults in CREATE_SITES.items() for fault in faults]
    + [("re-run", site, fault) for site in RERUN_SITES for fault in FAULTS]
    + [("offboarding", site, fault) for site in OFFBOARDING_SITES for fault in FAULTS]
)
SITES = {**ONBOARDING_SITES, **LATER_SITES, **RERUN_SITES, **OFFBOARDING_SITES}
# the retry settings of this matrix: short waits, a read timeout the read-timeout fault outlasts
QUICK = {"timeout": [5, READ_TIMEOUT], "retry_after_cap": 0.05, "backoff_base": 0.01, "lag_base": 0.02,
         "lag_budget": 5, "max_attempts": 4}


def arm(sim: TenantSimulator, site: tuple[str, ...], fault: str) -> None:
    method, path = site[:2]
    spec = {**(FAULTS.get(fault) or LAG_FAULTS[fault])}
    sim.faults.add(method=method, path=path, **spec)


def onboard_once(sim: TenantSimulator, state: Path, apply: bool = True, **before: Any) -> dict[str, Any]:
    return onboard(connect(sim, state, **QUICK), state, apply=apply, stages=ONBOARDING, before=before)


def offboard_once(sim: TenantSimulator, state: Path, apply: bool = True) -> Any:
    ctx = StageCtx(connect(sim, state, **QUICK), state, apply)
    g.preflight(ctx, {"consent": False, "permissions": []})
    return g.remove_application(ctx, {"unique_name": UNIQUE})


def assert_onboarded(sim: TenantSimulator, state: Path) -> None:
    """One app, one SP, 46 distinct assignments; every credential's secret half is here."""
    v = tenant_view(sim)
    assert (v["apps"], v["sps"], v["assignments"], v["distinct"]) == (1, 1, 46, 46), v
    private = state / "private"
    secrets = v["app"]["passwordCredentials"]
    assert len(secrets) == 1, secrets                                    # no duplicate, no orphan
    (value,) = private.rglob(f"client-secret-*-{secrets[0]['keyId']}.txt")
    assert sim.state.check_secret(v["app"], value.read_text())
    (key,) = v["app"]["keyCredentials"]
    (pfx,) = private.rglob("*.pfx")
    password = Secret(pfx.with_name(pfx.name + "-password.txt").read_text())
    assert load_certificate(pfx, password).thumbprint == key_thumbprint(key)


@pytest.fixture(autouse=True)
def _one_rsa_key(monkeypatch):
    """Each case's certificate is new (its own serial and thumbprint) but shares one RSA key:
    generating a 2048-bit key costs a tenth of a second or more, a hundred times over."""
    from runner.graph import certs

    key = _shared_key()
    real = certs.generate_self_signed

    def generate(common_name: str, days: int = 365, key_size: int = 2048):
        return real(common_name, days, key_size, key=key)
    monkeypatch.setattr(certs, "generate_self_signed", generate)


@functools.lru_cache(maxsize=1)
def _shared_key():
    from cryptography.hazmat.primitives.asymmetric import rsa
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.mark.parametrize("flow,site,fault", CASES, ids=[f"{f}:{s}:{k}" for f, s, k in CASES])
def test_a_fault_at_a_call_site_converges_now_or_on_the_next_run(sim, tmp_path, flow, site, fault):
    state = tmp_path / "state"
    if flow != "onboarding":
        onboard_once(sim, state)                          # an app to re-run over, or to remove
    later = {SITES[site][2]: functools.partial(arm, sim, SITES[site], fault)} if site in LATER_SITES else {}
    if not later:
        arm(sim, SITES[site], fault)
    if flow == "offboarding":                         # the run with the fault converges by itself
        assert offboard_once(sim, state).changed
    else:
        assert not [k for k, o in onboard_once(sim, state, **later).items() if o.status is not None]
    assert sim.requests.snapshot()["faults"] >= 1, "the fault never fired: the case tested nothing"
    sim.faults.clear()
    assert sim.requests.wait_idle(30)                 # a write held past its answer has landed
    if flow != "offboarding":
        onboard_once(sim, state)
        assert_onboarded(sim, state)
        plan = onboard_once(sim, state, apply=False)
        assert not any(o.changed for o in plan.values()), {k: o.messages for k, o in plan.items()}
    else:
        offboard_once(sim, state)
        v = tenant_view(sim)
        assert (v["apps"], v["sps"]) == (0, 0), v
        assert not offboard_once(sim, state, apply=False).changed


def test_the_matrix_covers_every_call_site(sim, tmp_path):
    """A fresh onboarding, its re-run and an offboarding make exactly the requests the matrix
    names: a new call site fails here until it is in the matrix."""
    state = tmp_path / "state"
    onboard_once(sim, state)
    fresh = set(sim.requests.by_route(include_batch_items=True))
    sim.requests.reset()
    onboard_once(sim, state)
    rerun = set(sim.requests.by_route(include_batch_items=True))
    sim.requests.reset()
    offboard_once(sim, state)
    offboarding = set(sim.requests.by_route())
    assert fresh == set(ONBOARDING_SITES)
    assert rerun - fresh == set(RERUN_SITES)
    assert {site.removesuffix(" (offboarding)") for site in OFFBOARDING_SITES} == offboarding - {
        "GET /{tenant}/v2.0/.well-known/openid-configuration", "POST /{tenant}/oauth2/v2.0/token"}
