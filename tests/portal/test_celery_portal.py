"""The portal with Celery workers (`[server] broker = ...`): a plan and a run requested in the
portal are carried out by a `psrunner worker` process that shares the portal's state folder,
in the run directories the portal made for them, so the portal follows their progress and
`psrunner runs` lists them. A secret typed into a form cannot travel to a worker (a broker
message carries references only) and is refused with that reason.

Marked `celery`; skipped where redis-server is missing (`.ci/run` installs it)."""

from __future__ import annotations

import json

import pytest

from runner import api
from tests.redis_broker import REDIS, redis_server, workers

from .conftest import csrf_of, plan, step, wait_for

pytestmark = [pytest.mark.celery,
              pytest.mark.skipif(REDIS is None, reason="needs Debian's redis-server (`.ci/run` installs it)")]
pytest.importorskip("celery")


@pytest.fixture
def portal(portal_config, gates, tmp_path):
    """The conftest's portal, its runs sent to one worker through a Redis broker of its own."""
    from runner.portal.app import Portal
    with redis_server(tmp_path / "redis") as url:
        portal_config.broker = url
        with workers(url, 1, state_dir=portal_config.state_dir, env={}) as (worker,):
            p = Portal(portal_config, environ={})
            p.check()
            p.worker_pid = worker.pid
            yield p
            p.executor.shutdown(wait=False)


def test_a_portal_run_is_carried_out_by_a_worker_in_the_run_directory_the_portal_made(client_for, portal, notes):
    from runner.fleet.celery_app import CeleryExecutor
    assert isinstance(portal.executor, CeleryExecutor)
    helen = client_for("helen")
    rid = plan(helen, "note-write", name="jdoe", ou="OU=Staff,DC=contoso,DC=test", colour="green")
    req = wait_for(portal, rid, "planned", timeout=60)
    assert step(helen, rid, "confirm").status_code == 303
    req = wait_for(portal, rid, "done", timeout=60)
    assert req.run_result.status.value == "succeeded"
    assert (notes / "jdoe.txt").read_text() == "green note for OU=Staff,DC=contoso,DC=test"
    for run_id in (req.plan_run, req.run_run):          # the ids the portal made, run by the worker
        info = json.loads((portal.state_dir / "runs" / run_id / "run.json").read_text())
        assert info["pid"] == portal.worker_pid and info["status"] in ("succeeded", "planned")
    assert {r["run_id"] for r in api.runs(portal.state_dir)} == {req.plan_run, req.run_run}
    events = helen.get(f"/runs/{req.run_run}/events").text
    assert "stage.start" in events and "write" in events


def test_a_secret_typed_into_a_form_is_not_sent_to_a_worker(client_for, portal, notes):
    helen = client_for("helen")
    token = csrf_of(helen, "/runbooks/note-write")
    resp = helen.post("/runbooks/note-write/plan", data={"csrf": token, "p.name": "jdoe",
                                                         "p.ou": "OU=Staff,DC=contoso,DC=test", "p.pin": "Pin-4471"})
    assert "secret &#39;pin&#39; cannot be sent to a worker" in resp.text or \
        "secret 'pin' cannot be sent to a worker" in resp.text
    assert api.runs(portal.state_dir) == [] and not list(notes.iterdir())
