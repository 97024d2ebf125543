"""The portal's work over HTTP, for each role: the catalog, forms checked with the CLI's rules
and messages, plan then run, four eyes, concurrency limits, live progress, past runs, and every
refusal (each one audited)."""

from __future__ import annotations

import html
import json
import threading

import pytest

from runner import api
from runner.errors import ParamError

from .conftest import csrf_of, plan, step, wait_for


def text(resp) -> str:
    return html.unescape(resp.text)


def refused(portal):
    return [r for r in portal.audit.records() if r["event"] == "refused"]


# ---------------------------------------------------------------------------- catalog and forms

def test_each_role_sees_the_runbooks_it_may_run(client_for):
    helen = client_for("helen").get("/").text
    assert "Write a note" in helen and "Waits at a gate" in helen
    assert "admin-only" not in helen and "remove-thing" not in helen
    ada = client_for("ada").get("/").text
    for name in ("note-write", "gated", "admin-only", "remove-thing"):
        assert name in ada
    assert "needs approval by admin" in ada


def test_a_helpdesk_user_can_neither_see_nor_post_to_an_admin_runbook(client_for, portal, notes):
    c = client_for("helen")
    assert c.get("/runbooks/admin-only").status_code == 404
    token = csrf_of(c)
    resp = c.post("/runbooks/admin-only/plan", data={"csrf": token})
    assert resp.status_code == 403 and "no runbook 'admin-only' that you may run" in text(resp)
    assert not list(notes.iterdir()) and api.runs(portal.state_dir) == []
    assert [r["runbook"] for r in refused(portal)] == ["admin-only", "admin-only"]
    assert refused(portal)[-1]["who"] == "local:helen" and refused(portal)[-1]["status"] == 403


def test_the_form_offers_what_the_role_may_give_and_names_what_the_server_holds(client_for):
    page = client_for("helen").get("/runbooks/note-write").text
    for field in ("p.name", "p.ou", "p.colour", "p.pin"):
        assert f'name="{field}"' in page
    assert 'name="p.folder"' not in page and "set on the server" in page
    assert '<option value="red" selected>red</option>' in page and '<option value="green">' in page
    assert '<option value="blue"' not in page                        # outside helen's bounds
    assert 'type="password"' in page and "Your role: under OU=Staff,DC=contoso,DC=test" in page
    admin = client_for("ada").get("/runbooks/note-write").text
    assert '<option value="blue">' in admin and "Your role" not in admin


def cli_message(portal, **given):
    rb = portal.catalog.load("note-write")
    with pytest.raises(ParamError) as e:
        api.resolve_params(rb, {"folder": "/x", **given}, environ={})
    return e.value.message


def test_a_bad_value_gets_the_cli_s_own_message_beside_its_field(client_for, portal):
    c = client_for("helen")
    token = csrf_of(c, "/runbooks/note-write")
    resp = c.post("/runbooks/note-write/plan", data={"csrf": token, "p.name": "Not Valid", "p.ou": "OU=Staff,DC=contoso,DC=test"})
    assert resp.status_code == 400
    expected = cli_message(portal, name="Not Valid", ou="OU=Staff,DC=contoso,DC=test")
    assert expected == "parameter 'name': 'Not Valid' does not match the expected form"
    assert f'<p class="error" role="alert">{expected}</p>' in text(resp)
    assert 'value="Not Valid"' in resp.text                 # what was typed stays, to be mended
    assert refused(portal) == []                            # a mistake is not a refusal


def test_everything_missing_is_named_at_once_as_the_cli_names_it(client_for, portal):
    c = client_for("helen")
    token = csrf_of(c, "/runbooks/note-write")
    resp = c.post("/runbooks/note-write/plan", data={"csrf": token})
    expected = cli_message(portal)
    assert expected == "2 required parameters are missing: name, ou"
    assert resp.status_code == 400 and expected in text(resp) and resp.text.count(">required</p>") == 2


@pytest.mark.parametrize("data, says", [
    ({"p.folder": "/etc"}, "parameter 'folder' is set by the server; it cannot be given here"),
    ({"p.colour": "blue"}, "parameter 'colour': 'blue' is not among the values your role may use"),
    ({"p.ou": "OU=Admins,DC=contoso,DC=test"}, "is not under OU=Staff,DC=contoso,DC=test"),
    ({"p.ou": "DC=contoso,DC=test"}, "which is as far as your role reaches"),
    ({"p.nonsense": "1"}, "runbook note-write has no parameter 'nonsense'"),
])
def test_a_helpdesk_user_cannot_widen_a_constrained_parameter(client_for, portal, notes, data, says):
    c = client_for("helen")
    token = csrf_of(c, "/runbooks/note-write")
    form = {"csrf": token, "p.name": "jdoe", "p.ou": "OU=Staff,DC=contoso,DC=test", "p.pin": "Pin-Canary-7781", **data}
    resp = c.post("/runbooks/note-write/plan", data=form)
    assert resp.status_code == 403 and says in text(resp)
    assert not list(notes.iterdir()) and api.runs(portal.state_dir) == []
    record = refused(portal)[-1]
    assert record["runbook"] == "note-write" and record["params"]["pin"] == "********"
    assert "Pin-Canary-7781" not in portal.audit.path.read_text()


def test_a_post_without_its_csrf_token_or_from_another_site_is_refused(client_for, portal):
    c = client_for("helen")
    form = {"p.name": "jdoe", "p.ou": "OU=Staff,DC=contoso,DC=test"}
    assert c.post("/runbooks/note-write/plan", data=form).status_code == 403
    assert c.post("/runbooks/note-write/plan", data={**form, "csrf": "guessed"}).status_code == 403
    token = csrf_of(c)
    other = c.post("/runbooks/note-write/plan", data={**form, "csrf": token}, headers={"origin": "https://evil.example"})
    assert other.status_code == 403 and api.runs(portal.state_dir) == []
    opaque = c.post("/runbooks/note-write/plan", data={**form, "csrf": token}, headers={"origin": "null"})
    assert opaque.status_code == 403
    assert len(refused(portal)) == 4 and all("CSRF" in r["detail"] for r in refused(portal))
    ours = c.post("/runbooks/note-write/plan", data={**form, "csrf": token}, headers={"origin": "http://127.0.0.1:8765"})
    assert ours.status_code == 303


# ---------------------------------------------------------------------------- plan, then run

def test_plan_then_confirm_runs_exactly_what_was_planned(client_for, portal, notes):
    c = client_for("helen")
    rid = plan(c, "note-write", name="jdoe", ou="OU=Staff,DC=contoso,DC=test", colour="green")
    req = wait_for(portal, rid, "planned")
    page = c.get(f"/requests/{rid}").text
    assert "would change" in page and "Apply these changes" in page and not list(notes.iterdir())
    assert step(c, rid, "confirm").status_code == 303
    req = wait_for(portal, rid, "done")
    assert (notes / "jdoe.txt").read_text() == "green note for OU=Staff,DC=contoso,DC=test"
    page = c.get(f"/requests/{rid}").text
    assert "run succeeded" in page and "changed" in page
    runs = {r["run_id"]: r for r in api.runs(portal.state_dir)}      # what `psrunner runs` lists
    assert set(runs) == {req.plan_run, req.run_run}
    assert runs[req.run_run]["mode"] == "run" and runs[req.run_run]["status"] == "succeeded"
    events = [(r["event"], r.get("outcome")) for r in portal.audit.records() if r.get("request") == rid]
    assert events == [("plan", "started"), ("plan", "succeeded"), ("run", "started"), ("run", "succeeded")]
    assert portal.audit.records()[-1]["params"] == {"name": "jdoe", "ou": "OU=Staff,DC=contoso,DC=test", "colour": "green"}
    assert step(c, rid, "confirm").status_code == 403                # done: nothing to confirm again


def test_another_person_cannot_see_or_confirm_someone_s_request(client_for, portal):
    helen = client_for("helen")
    rid = plan(helen, "note-write", name="jdoe", ou="OU=Staff,DC=contoso,DC=test")
    wait_for(portal, rid, "planned")
    ada = client_for("ada")
    assert ada.get(f"/requests/{rid}").status_code == 200       # all-runs: an admin may look
    assert step(ada, rid, "confirm").status_code == 403
    other = client_for()
    from .conftest import sign_in
    portal.config.policy.roles["helpdesk"]   # helen's colleague: same role, another account
    from runner.portal.accounts import set_account
    from runner.secrets import Secret
    set_account(portal.config.accounts, "hugo", Secret("Hugo-desk-pass-4"), ("helpdesk",), "Hugo", cost=2 ** 10)
    sign_in(other, "hugo", "Hugo-desk-pass-4")
    assert other.get(f"/requests/{rid}").status_code == 404


# ---------------------------------------------------------------------------- four eyes

def test_an_approval_runbook_waits_for_another_member_of_its_role(client_for, portal, notes):
    ada, alan, helen = client_for("ada"), client_for("alan"), client_for("helen")
    rid = plan(ada, "remove-thing")
    wait_for(portal, rid, "planned")
    assert "Ask admin to approve this run" in ada.get(f"/requests/{rid}").text
    step(ada, rid, "confirm")
    assert portal.desk.get(rid).state == "waiting for approval" and not list(notes.iterdir())
    own = step(ada, rid, "approve")
    assert own.status_code == 403 and "another member of admin must approve it (four eyes)" in text(own)
    assert helen.get(f"/requests/{rid}").status_code == 404
    assert "Approvals" in alan.get("/").text and rid in alan.get("/approvals").text
    assert step(alan, rid, "approve").status_code == 303
    req = wait_for(portal, rid, "done")
    assert (notes / "removed-widget.txt").read_text() == "gone" and req.approver.id == "local:alan"
    kinds = [(r["event"], r.get("who")) for r in portal.audit.records() if r.get("request") == rid]
    assert ("request", "local:ada") in kinds and ("approve", "local:alan") in kinds
    assert ("run", "local:ada") in kinds        # the run is the requester's, approved by alan


def test_a_rejected_request_does_not_run(client_for, portal, notes):
    ada, alan = client_for("ada"), client_for("alan")
    rid = plan(ada, "remove-thing", thing="gadget")
    wait_for(portal, rid, "planned")
    step(ada, rid, "confirm")
    assert step(alan, rid, "reject", note="not today").status_code == 303
    assert portal.desk.get(rid).state == "rejected" and not list(notes.iterdir())
    assert step(alan, rid, "approve").status_code == 403
    assert portal.audit.records()[-2]["event"] == "reject" and portal.audit.records()[-2]["detail"] == "not today"


# ---------------------------------------------------------------------------- limits and progress

def test_more_plans_of_a_runbook_than_its_limit_are_refused(client_for, portal, gates):
    gates["g1"] = threading.Event()
    c = client_for("helen")
    first = plan(c, "gated", gate="g1")
    token = csrf_of(c, "/runbooks/gated")
    resp = c.post("/runbooks/gated/plan", data={"csrf": token, "p.gate": "g1"})
    assert resp.status_code == 429 and "the most allowed at once" in resp.text and resp.headers["retry-after"]
    assert refused(portal)[-1]["runbook"] == "gated"
    gates["g1"].set()
    wait_for(portal, first, "planned")
    assert len(api.runs(portal.state_dir)) == 1            # the refused one left no run behind


def test_progress_streams_as_server_sent_events_while_the_run_goes_on(client_for, portal, gates):
    gates["g2"] = threading.Event()
    c = client_for("helen")
    rid = plan(c, "gated", gate="g2")
    run_id = None
    while run_id is None:
        run_id = portal.desk.get(rid).plan_run
    page = c.get(f"/requests/{rid}").text
    assert f'data-live="{run_id}"' in page and "Wait at the gate" in page
    seen = []
    with c.stream("GET", f"/runs/{run_id}/events", headers={"accept": "text/event-stream"}) as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        for line in resp.iter_lines():
            if line.startswith("event: "):
                seen.append(line[7:])
                if seen[-1] == "gate.waiting":
                    gates["g2"].set()                  # the run goes on only once we have seen it wait
    assert seen[:3] == ["run.start", "stage.start", "stage.end"] and seen[-1] == "run.end", seen
    assert "gate.waiting" in seen
    wait_for(portal, rid, "planned")
    # a browser that reconnects gets only what it missed
    with c.stream("GET", f"/runs/{run_id}/events", headers={"last-event-id": "4"}) as resp:
        ids = [int(line[4:]) for line in resp.iter_lines() if line.startswith("id: ")]
    assert ids and min(ids) == 5
    data = [json.loads(line[6:]) for line in c.get(f"/runs/{run_id}/events").text.splitlines() if line.startswith("data: ")]
    assert {"seq", "type", "stage"} <= set(data[0]) and data[-1]["status"] == "succeeded"
    assert next(d for d in data if d["type"] == "stage.end")["label"] == "would change"


# ---------------------------------------------------------------------------- past runs and audit

def test_runs_are_the_cli_s_runs_and_each_person_sees_theirs(client_for, portal):
    helen, ada = client_for("helen"), client_for("ada")
    rid = plan(helen, "note-write", name="jdoe", ou="OU=Staff,DC=contoso,DC=test")
    req = wait_for(portal, rid, "planned")
    rb = portal.catalog.load("admin-only")
    cli = api.plan(rb, {"folder": "/nowhere"}, state_dir=portal.state_dir)    # as `psrunner plan` would
    assert req.plan_run in helen.get("/runs").text and cli.run_id not in helen.get("/runs").text
    assert helen.get(f"/runs/{cli.run_id}").status_code == 404
    assert helen.get(f"/runs/{cli.run_id}/events").status_code == 404
    listing = ada.get("/runs").text
    assert req.plan_run in listing and cli.run_id in listing and "command line" in listing
    page = ada.get(f"/runs/{cli.run_id}")
    assert page.status_code == 200 and "would change" in page.text
    assert ada.get("/runs/.hidden").status_code == 404 and not portal.desk.may_see_run("..", portal.link_user())


def test_the_audit_log_is_for_admins_exportable_and_its_chain_shows_tampering(client_for, portal):
    helen, ada = client_for("helen"), client_for("ada")
    assert helen.get("/audit").status_code == 403 and helen.get("/audit/export").status_code == 403
    page = ada.get("/audit?event=sign-in")
    assert page.status_code == 200 and "local:helen" in page.text and "broken" not in page.text
    jsonl = ada.get("/audit/export?format=jsonl")
    assert jsonl.headers["content-disposition"] == 'attachment; filename="psrunner-audit.jsonl"'
    records = [json.loads(line) for line in jsonl.text.splitlines()]
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))
    csv = ada.get("/audit/export?format=csv").text
    assert csv.splitlines()[0] == "seq,time,event,who,name,roles,ip,runbook,request,run_id,outcome,detail,params"
    assert portal.audit.records()[-1]["event"] == "export" and portal.audit.verify() == []
    lines = portal.audit.path.read_text().splitlines()
    lines[0] = lines[0].replace("local:helen", "local:nobody")
    portal.audit.path.write_text("\n".join(lines) + "\n")
    assert portal.audit.verify() == [2]
    assert "chain is broken at line(s) 2" in ada.get("/audit").text


def test_a_corrupt_run_is_no_page_rather_than_a_server_error(client_for, portal):
    ada = client_for("ada")
    cli = api.plan(portal.catalog.load("admin-only"), {"folder": "/nowhere"}, state_dir=portal.state_dir)
    (portal.state_dir / "runs" / cli.run_id / "run.json").write_text("{not json", encoding="utf-8")
    assert ada.get(f"/runs/{cli.run_id}").status_code == 404
