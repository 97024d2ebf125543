"""Secret canaries (tests/canary.py) across the portal: people sign in with their passwords,
a request carries a secret parameter through plan, confirmation and run, an admin reads the
audit log; no page served, no record kept and no file the portal writes holds any of those
secrets, plain, base64 or URL-encoded."""

from __future__ import annotations

from ..canary import Canaries, tree_texts
from .conftest import PASSWORDS, plan, step, wait_for

PIN = "Pin-Canary-Portal-4402"


def test_no_secret_the_portal_handled_is_in_a_page_a_record_or_a_file(client_for, portal, notes):
    pages: dict[str, str] = {}
    helen = client_for("helen")
    rid = plan(helen, "note-write", name="jdoe", ou="OU=Staff,DC=contoso,DC=test", colour="green", pin=PIN)
    wait_for(portal, rid, "planned")
    pages["plan"] = helen.get(f"/requests/{rid}").text
    assert step(helen, rid, "confirm").status_code == 303
    wait_for(portal, rid, "done")
    for path in ("/", "/runbooks/note-write", f"/requests/{rid}"):
        pages[f"helen {path}"] = helen.get(path).text
    ada = client_for("ada")
    for path in ("/", "/audit", f"/requests/{rid}"):
        resp = ada.get(path)
        pages[f"ada {path}"] = resp.text + "".join(f"{k}: {v}\n" for k, v in resp.headers.items())
    assert "jdoe" in pages["ada /audit"]                     # the audit page did show the request
    canaries = Canaries([PIN, *PASSWORDS.values()])
    places = {**pages, "audit log": portal.audit.path.read_bytes(), **tree_texts(portal.state_dir),
              **{f"notes/{k}": v for k, v in tree_texts(notes).items()}}
    assert canaries.scan(places) == []
