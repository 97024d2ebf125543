"""Offboarding through the engine against the tenant simulator: plan shows what would go
and writes nothing; run removes the one app; a re-run has nothing to do."""

from __future__ import annotations

from runner import api
from runner.sim.demo import sim_params, simulators
from runner.results import RunStatus, Status


def _values(rb, tenant, host, world, **extra):
    given = {k: v for k, v in sim_params(tenant, host, world).items() if k in rb.params}
    values, _ = api.resolve_params(rb, given | extra, environ={})
    return values


def test_remove_plans_then_removes_then_is_ok(tmp_path):
    with simulators() as (world, tenant, host):
        onboard = api.load_runbook("m365-backup-access")
        first = api.run(onboard, _values(onboard, tenant, host, world), state_dir=tmp_path)
        app_id = first.stage("application").outputs["app_id"]
        assert tenant.state.app_by_app_id(app_id) is not None

        rb = api.load_runbook("m365-backup-access-remove")
        values = _values(rb, tenant, host, world)
        writes = tenant.requests.snapshot()["writes"]
        plan = api.plan(rb, values, state_dir=tmp_path)
        assert plan.stage("remove-application").status == Status.CHANGED
        assert tenant.requests.snapshot()["writes"] == writes
        assert tenant.state.app_by_app_id(app_id) is not None

        run = api.run(rb, values, state_dir=tmp_path)
        assert run.status == RunStatus.SUCCEEDED
        assert run.stage("remove-application").outputs["removed"] is True
        assert tenant.state.app_by_app_id(app_id) is None
        assert tenant.state.sp_by_app_id(app_id) is None

        again = api.run(rb, values, state_dir=tmp_path)
        assert again.stage("remove-application").status == Status.OK
