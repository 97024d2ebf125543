"""A tenant without Exchange Online has no service principal for it: full_access_as_app cannot
be consented. The run says so (message, warning, hand-off), grants the other 45, and a
re-run stays converged."""

from __future__ import annotations

from runner import api
from runner.sim.demo import sim_params, simulators
from runner.results import Status

EXCHANGE = "00000002-0000-0ff1-ce00-000000000000"


def test_permissions_of_a_missing_api_are_reported_not_hidden(tmp_path):
    with simulators() as (world, tenant, host):
        sp = tenant.state.sp_by_app_id(EXCHANGE)
        del tenant.state.service_principals[sp["id"]]
        rb = api.load_runbook("m365-backup-access")
        values, _ = api.resolve_params(rb, sim_params(tenant, host, world), environ={})
        first = api.run(rb, values, state_dir=tmp_path)
        consent = first.stage("consent")
        assert consent.outputs["granted"] == 45
        assert consent.outputs["missing"] == ["Office 365 Exchange Online: full_access_as_app"]
        assert any("cannot be consented" in w and "full_access_as_app" in w for w in consent.warnings)
        handoff = first.stage("handoff").outputs["handoff"]
        assert handoff["permissions_summary"] == {"added": 45, "unavailable": 1}

        second = api.run(rb, values, state_dir=tmp_path)
        consent = second.stage("consent")
        assert consent.status == Status.OK
        assert consent.messages[0] == ("admin consent is in place for 45 of 46 application permissions; "
                                       "1 cannot be granted in this tenant (see the warning)")
