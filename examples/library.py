"""psrunner as a library: plan and run the main runbook against the embedded simulators and
read the structured results. Run with: python examples/library.py (needs the `sim` extra)."""

from __future__ import annotations

import tempfile

from runner import api
from runner.sim.demo import sim_params, simulators


def main() -> int:
    with simulators() as (world, tenant, host), tempfile.TemporaryDirectory() as state:
        rb = api.load_runbook("m365-backup-access")
        # Secrets may be handed over as runner.secrets.Secret values (sim_params does).
        values, _ = api.resolve_params(rb, sim_params(tenant, host, world), environ={})
        plan = api.plan(rb, values, state_dir=state)
        print("would change:", [s.id for s in plan.stages if s.changed])
        result = api.run(rb, values, state_dir=state)
        for stage in result.stages:
            print(f"{stage.status.value:<16} {stage.id}")
        app_id = result.stage("application").outputs["app_id"]
        print("application (client) id:", app_id)
        print("graph requests this run:", result.metrics.get("graph_requests"))
        return 0 if result.status.value in ("succeeded", "action-required") else 1


if __name__ == "__main__":
    raise SystemExit(main())
