"""Driving the Graph stage kinds one by one against the tenant simulator, as the engine would
(outputs feeding inputs), and reading back what the tenant holds: shared by the Graph stage
tests, the fault matrix and the credential tests."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable

from runner.graph.connector import open_target
from runner.registry import TargetEnv
from runner.results import Outcome
from runner.secrets import Secret
from runner.sim.tenant import TenantSimulator
from runner.stages import entra as g
from runner.stages import entra_credentials as creds
from runner.values import Unknown

from ..stage_context import FakeStageContext, runbook_notices

# The Graph call sites of a fresh onboarding: the route the simulator records -> (method, path
# pattern to arm a fault on). A re-run adds reads (test_fault_matrix.RERUN_SITES).
ONBOARDING_SITES: dict[str, tuple[str, str]] = {
    "GET /{tenant}/v2.0/.well-known/openid-configuration": ("GET", r"/openid-configuration$"),
    "POST /{tenant}/oauth2/v2.0/token": ("POST", r"/oauth2/v2\.0/token$"),
    "GET /v1.0/applications(uniqueName={key})": ("GET", r"/v1\.0/applications\(uniqueName="),
    "PATCH /v1.0/applications(uniqueName={key})": ("PATCH", r"/v1\.0/applications\(uniqueName="),
    "GET /v1.0/servicePrincipals": ("GET", r"/v1\.0/servicePrincipals$"),
    "PATCH /v1.0/servicePrincipals(appId={key})": ("PATCH", r"/v1\.0/servicePrincipals\(appId="),
    "POST /v1.0/$batch": ("POST", r"/v1\.0/\$batch$"),
    "POST /v1.0/servicePrincipals/{id}/appRoleAssignedTo": ("POST", r"/appRoleAssignedTo$"),   # $batch items
    "GET /v1.0/policies/defaultAppManagementPolicy": ("GET", r"/v1\.0/policies/defaultAppManagementPolicy$"),
    "POST /v1.0/applications/{id}/addPassword": ("POST", r"/addPassword$"),
    "PATCH /v1.0/applications/{id}": ("PATCH", r"/v1\.0/applications/[0-9a-f-]+$"),
}

UNIQUE = "m365-backup"
FAST = {"backoff_base": 0.01, "retry_after_cap": 2, "lag_budget": 5, "lag_base": 0.05, "max_attempts": 6,
        "timeout": [5, 10]}


def TargetCtx(state_dir: Path, interactive: bool = False) -> TargetEnv:
    return TargetEnv(name="tenant", state_dir=state_dir, log=logging.getLogger("test.graph.target"),
                     interactive=interactive)


class StageCtx(FakeStageContext):
    """A StageContext for the graph kinds: their target is the runbook's "tenant"."""

    def __init__(self, conn: Any, state_dir: Path, apply: bool, deadline: float | None = None) -> None:
        super().__init__(conn, apply, deadline, state_dir=state_dir, target="tenant", kind="graph.test",
                         notices=runbook_notices())

    def target(self, name: str | None = None) -> Any:
        assert name == "tenant"
        return self.connector


def settings(sim: TenantSimulator, **over: Any) -> dict[str, Any]:
    base = {"tenant": sim.tenant_domain, "auth": "secret", "client_id": sim.operator.client_id,
            "client_secret": Secret(sim.operator.client_secret, "client_secret"),
            "authority_host": sim.base_url, "graph_endpoint": sim.graph_endpoint, "ca_bundle": sim.ca_bundle,
            **FAST}
    base.update(over)
    return {k: v for k, v in base.items() if v is not None}


def connect(sim, state_dir: Path, interactive: bool = False, **over):
    return open_target(settings(sim, **over), TargetCtx(state_dir, interactive))


def onboard(conn, state_dir: Path, apply: bool = True, *, stages=("preflight", "application", "service_principal",
                                                                   "consent", "client_secret"),
            before: dict[str, Callable[[], None]] | None = None, **extra: Any) -> dict[str, Outcome]:
    """The runbook's Graph stages in order, outputs feeding inputs as the engine does (an
    output a planned stage does not have yet arrives as an Unknown). `before[stage]` is called
    just before that stage (to arm a fault for its requests alone, say)."""
    out: dict[str, Outcome] = {}

    def ref(stage: str, key: str) -> Any:
        o = out.get(stage)
        v = o.outputs.get(key) if o else None
        if v is None and not apply:
            return Unknown(f"{stage}.{key}")
        return v

    ctx = StageCtx(conn, state_dir, apply)
    for name in stages:
        (before or {}).get(name, lambda: None)()
        if name == "preflight":
            out[name] = g.preflight(ctx, {"profile": "m365-backup"})
        elif name == "application":
            out[name] = g.application(ctx, {"display_name": "Microsoft 365 backup access", "unique_name": UNIQUE,
                                            "profile": "m365-backup", **extra.get("application", {})})
        elif name == "service_principal":
            out[name] = g.service_principal(ctx, {"app_id": ref("application", "app_id")})
        elif name == "consent":
            out[name] = g.consent(ctx, {"sp_id": ref("service_principal", "sp_id"), "profile": "m365-backup"})
        elif name == "client_secret":
            out[name] = creds.client_secret(ctx, {"object_id": ref("application", "object_id"), "unique_name": UNIQUE,
                                              **extra.get("client_secret", {})})
        elif name == "certificate":
            out[name] = creds.certificate(ctx, {"object_id": ref("application", "object_id"), "unique_name": UNIQUE,
                                            **extra.get("certificate", {})})
    return out


def tenant_view(sim: TenantSimulator) -> dict[str, Any]:
    """What the tenant holds for our app, read from the simulator's own state."""
    st = sim.state
    with st.lock:
        apps = [a for a in st.applications.values() if (a.get("uniqueName") or "").lower() == UNIQUE]
        app = apps[0] if len(apps) == 1 else None
        sps = [s for s in st.service_principals.values() if app and s["appId"] == app["appId"]]
        assignments = [a for a in st.app_role_assignments.values() if sps and a["principalId"] == sps[0]["id"]]
        pairs = {(a["resourceId"], a["appRoleId"]) for a in assignments}
        return {"apps": len(apps), "sps": len(sps), "assignments": len(assignments), "distinct": len(pairs),
                "secrets": len(app.get("passwordCredentials") or []) if app else 0,
                "keys": len(app.get("keyCredentials") or []) if app else 0, "app": app,
                "sp": sps[0] if sps else None}


def assert_converged(sim, secrets: int = 1) -> dict[str, Any]:
    v = tenant_view(sim)
    assert (v["apps"], v["sps"], v["assignments"], v["distinct"], v["secrets"]) == (1, 1, 46, 46, secrets), v
    return v
