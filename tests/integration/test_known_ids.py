"""The ids an earlier run left in the state directory (runner/graph/known_ids.py) let a
converged run read its application, service principal and assignments in one $batch; they
are hints, checked against the application read in the same batch, never trusted blindly."""

from __future__ import annotations

import json

from runner.graph.known_ids import KnownIds

from .graph_harness import UNIQUE, assert_converged, connect, onboard, tenant_view

OTHER = "someone-elses-app"


def ids_file(state_dir, sim, name=UNIQUE):
    return state_dir / "graph" / sim.tenant_domain.lower() / "apps" / f"{name}.json"


def test_a_converged_run_reads_everything_in_one_request_and_keeps_the_ids(sim, tmp_path):
    with connect(sim, tmp_path) as conn:
        onboard(conn, tmp_path)
    view = assert_converged(sim)
    kept = json.loads(ids_file(tmp_path, sim).read_text())
    assert kept == {"unique_name": UNIQUE, "app_id": view["app"]["appId"], "object_id": view["app"]["id"],
                    "sp_id": view["sp"]["id"]}
    sim.requests.reset()
    with connect(sim, tmp_path) as conn:
        again = onboard(conn, tmp_path)
    snap = sim.requests.snapshot()
    assert not any(o.changed for o in again.values())
    assert (snap["total"], snap["batch"], snap["batch_items"], snap["writes"]) == (2, 1, 4, 0), snap["by_route"]


def test_an_app_deleted_and_made_again_by_someone_else_is_read_afresh(sim, tmp_path):
    with connect(sim, tmp_path) as conn:
        onboard(conn, tmp_path)
    old = tenant_view(sim)
    # someone else deletes the app and makes a new one under the same unique name, with a
    # service principal holding one of the assignments
    with sim.state.lock:
        sim.state.delete_application(old["app"])
        new_app = sim.state.create_application({"displayName": "Microsoft 365 backup access", "uniqueName": UNIQUE})
        new_sp = sim.state.create_service_principal(new_app)
        graph = sim.state.graph_sp
        role = next(r for r in graph["appRoles"] if r["value"] == "Mail.ReadWrite")   # one the profile wants
        sim.state.create_assignment(new_sp, graph, role["id"])
    with connect(sim, tmp_path) as conn:
        out = onboard(conn, tmp_path)
    view = assert_converged(sim)
    assert view["app"]["id"] == new_app["id"] and view["sp"]["id"] == new_sp["id"]
    assert out["application"].outputs["app_id"] == new_app["appId"]
    assert out["service_principal"].outputs["sp_id"] == new_sp["id"]
    assert out["consent"].outputs["added"] == 45
    assert json.loads(ids_file(tmp_path, sim).read_text())["sp_id"] == new_sp["id"]


def test_ids_that_name_another_app_do_not_stand_in_for_ours(sim, tmp_path):
    # our app and its service principal exist without consent; another app has all of it
    with connect(sim, tmp_path) as conn:
        onboard(conn, tmp_path, stages=("preflight", "application", "service_principal"))
    with connect(sim, tmp_path) as conn:
        onboard(conn, tmp_path, application={"unique_name": OTHER})
    other = json.loads(ids_file(tmp_path, sim, OTHER).read_text())
    ids_file(tmp_path, sim).write_text(json.dumps({**other, "unique_name": UNIQUE}))
    with connect(sim, tmp_path) as conn:
        out = onboard(conn, tmp_path)
    assert out["consent"].outputs["added"] == 46           # not "already granted" by the other app's
    assert_converged(sim)
    assert len(sim.state.assignments_of(other["sp_id"])) == 46


def test_ids_that_are_not_ids_are_ignored(tmp_path):
    known = KnownIds(tmp_path)
    (tmp_path / "app.json").write_text(json.dumps({"unique_name": "app", "app_id": "x') or true or ('",
                                                   "sp_id": "00000000-0000-0000-0000-000000000001"}))
    assert known.get("app") == {"sp_id": "00000000-0000-0000-0000-000000000001"}
    (tmp_path / "app.json").write_text("{not json")
    assert known.get("app") == {}
    (tmp_path / "app.json").write_text(json.dumps({"unique_name": "another", "app_id": "00000000-0000-0000-0000-000000000002"}))
    assert known.get("app") == {}
