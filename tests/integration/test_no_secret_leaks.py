"""No secret leaves by a side door: the main runbook planned, run and run again against both
simulators with every logger in the process at DEBUG (psrunner's and msal's, urllib3's,
pypsrp's, psrpcore's, as a library user who calls logging.basicConfig(level=DEBUG) gets
them), and then every secret value the run saw (the operator's client secret, the host and
SharePoint passwords, each access token, the new client secret) is looked for in that log,
in every file of the state directory outside private/, and in the results."""

from __future__ import annotations

import io
import json
import logging

from runner import api, secrets
from runner.sim.demo import admin_follows_actions, sim_params, simulators
from runner.secrets import Secret


def test_no_secret_in_debug_logs_run_directory_or_results(tmp_path):
    with secrets._known_lock:
        known_before = set(secrets._known)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    saved = (root.level, logging.getLogger("psrunner").propagate)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    logging.getLogger("psrunner").propagate = True
    try:
        with simulators() as (world, tenant, host):
            rb = api.load_runbook("m365-backup-access")
            given = sim_params(tenant, host, world)
            values, _ = api.resolve_params(
                rb, {k: v for k, v in given.items() if not isinstance(v, Secret)},
                environ={rb.params[k].env_var: v.reveal() for k, v in given.items() if isinstance(v, Secret)})
            state = tmp_path / "state"
            results = [api.plan(rb, values, state_dir=state)]
            results.append(api.run(rb, values, state_dir=state))
            admin_follows_actions(results[-1], world, values)
            results.append(api.run(rb, values, state_dir=state))
            seen = {tenant.operator.client_secret, host.password, host.state.spo_admin_password}
    finally:
        root.removeHandler(handler)
        root.setLevel(saved[0])
        logging.getLogger("psrunner").propagate = saved[1]

    with secrets._known_lock:
        seen |= set(secrets._known) - known_before          # tokens and the new secret, as registered
    (secret_file,) = (state / "private").rglob("client-secret-*.txt")
    seen.add(secret_file.read_text().strip())
    seen = {s for s in seen if s and len(s) >= 8}
    assert any(s.startswith("eyJ") for s in seen), "no access token was registered: the check would be blind"

    log = stream.getvalue()
    assert "msal" in log and "pypsrp" in log and "urllib3" in log     # the third-party loggers did speak
    places = {"debug log": log, "results": json.dumps([r.to_dict() for r in results], default=str)}
    for f in state.rglob("*"):
        if f.is_file() and "private" not in f.relative_to(state).parts:
            places[str(f.relative_to(state))] = f.read_bytes().decode("utf-8", "replace")
    leaks = [(where, value[:6] + "...") for where, text in places.items() for value in seen if value in text]
    assert leaks == []
