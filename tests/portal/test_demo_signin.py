"""The portal on the simulators (`psrunner serve --demo`) over real HTTP: sign-in with Entra ID
through msal against the simulated tenant, the ID token checked by the portal itself, a
helpdesk unlock against the host simulator, and the secret canary: a password typed into a
form appears in no page, log, audit line or run file."""

from __future__ import annotations

import html
import logging
import re
import time

import pytest
import requests

pytest.importorskip("starlette")

from runner import api  # noqa: E402
from runner.errors import AuthError  # noqa: E402
from runner.portal.demo import DOMAIN, STAFF, demo_portal  # noqa: E402
from runner.sim.twins_ad import directory_of  # noqa: E402

CANARY = "Canary-Pa55word-7731x"


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    with demo_portal(tmp_path_factory.mktemp("portal-demo")) as running:
        yield running


def entra_sign_in(demo, who: str) -> requests.Session:
    """A browser's part, by hand: follow the portal to the simulated sign-in page, pick the
    account, come back with the code."""
    server, tenant, _, people = demo
    s = requests.Session()
    start = s.get(server.url + "/auth/entra", allow_redirects=False, timeout=10)
    assert start.status_code == 303 and "code_challenge_method=S256" in start.headers["location"]
    page = s.get(start.headers["location"], verify=tenant.ca_bundle, timeout=10)
    action = html.unescape(re.search(r"<form method='post' action='([^']*)'", page.text).group(1))
    fields = {html.unescape(k): html.unescape(v)
              for k, v in re.findall(r"<input type='hidden' name='([^']*)' value='([^']*)'>", page.text)}
    back = s.post(action, data={**fields, "pick": people.upns[who]}, verify=tenant.ca_bundle,
                  allow_redirects=False, timeout=10)
    assert back.status_code == 302 and back.headers["location"].startswith(server.url + "/auth/callback?code=")
    s.last_callback = back.headers["location"]
    landed = s.get(back.headers["location"], allow_redirects=False, timeout=10)
    assert landed.status_code == 200 and 'http-equiv="refresh"' in landed.text, landed.text
    return s


def csrf(s, url: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', s.get(url, timeout=10).text).group(1)


def test_people_sign_in_with_entra_id_and_get_the_roles_of_their_id_token(demo):
    server = demo[0]
    helen = entra_sign_in(demo, "helen")
    page = helen.get(server.url + "/", timeout=10).text
    assert "Helen Desk" in page and "helpdesk" in page and "Unlock a locked-out" in page
    assert "m365-backup-access" not in page
    ada = entra_sign_in(demo, "ada")
    assert "m365-backup-access" in ada.get(server.url + "/", timeout=10).text
    rec = [r for r in server.portal.audit.records() if r["event"] == "sign-in"][-1]
    assert rec["who"].startswith("entra:") and rec["roles"] == ["admin"] and rec["detail"] == "via entra"


def test_a_sign_in_answer_is_refused_in_another_browser_or_twice(demo):
    server, tenant, _, people = demo
    s = requests.Session()
    start = s.get(server.url + "/auth/entra", allow_redirects=False, timeout=10)
    page = s.get(start.headers["location"], verify=tenant.ca_bundle, timeout=10)
    action = html.unescape(re.search(r"<form method='post' action='([^']*)'", page.text).group(1))
    fields = {html.unescape(k): html.unescape(v)
              for k, v in re.findall(r"<input type='hidden' name='([^']*)' value='([^']*)'>", page.text)}
    back = s.post(action, data={**fields, "pick": people.upns["ada"]}, verify=tenant.ca_bundle,
                  allow_redirects=False, timeout=10)
    elsewhere = requests.get(back.headers["location"], allow_redirects=False, timeout=10)   # no binding cookie
    assert elsewhere.status_code == 401 and "started in another browser" in html.unescape(elsewhere.text)
    again = s.get(back.headers["location"], allow_redirects=False, timeout=10)               # the flow is spent
    assert again.status_code == 401 and "unknown or took too long" in again.text
    assert server.portal.audit.records()[-1]["event"] == "sign-in-refused"


def test_the_portal_checks_the_id_token_itself(demo):
    server, tenant, _, _ = demo
    entra = server.portal.entra
    now = int(time.time())
    meta_iss = entra._metadata()[0]["issuer"]
    good = {"aud": entra.setup.client_id, "iss": meta_iss, "iat": now, "nbf": now, "exp": now + 600,
            "oid": "o-1", "tid": tenant.tenant_id, "nonce": "n-1", "name": "Somebody"}
    assert entra.validate(tenant.signer.sign(good), "n-1")["name"] == "Somebody"
    for change, says in [({"aud": "another-app"}, "Audience"), ({"iss": "https://evil.example/v2.0"}, "issuer"),
                         ({"exp": now - 900, "iat": now - 1800}, "expired"), ({"nonce": "n-2"}, "nonce"),
                         ({"tid": "00000000-0000-0000-0000-000000000000"}, "another tenant")]:
        with pytest.raises(AuthError, match=says):
            entra.validate(tenant.signer.sign({**good, **change}), "n-1")
    forged = tenant.signer.sign(good)
    head, body, sig = forged.split(".")
    with pytest.raises(AuthError, match="Signature verification failed"):
        entra.validate(f"{head}.{body}.{sig[:-6]}AAAAAA", "n-1")
    import base64
    import json
    none_alg = base64.urlsafe_b64encode(json.dumps({"alg": "none", "kid": head}).encode()).decode().rstrip("=")
    with pytest.raises(AuthError):
        entra.validate(f"{none_alg}.{body}.", "n-1")


def test_helpdesk_resets_a_password_it_typed_and_the_password_is_nowhere_after(demo, caplog):
    caplog.set_level(logging.DEBUG)
    server, _, host, _ = demo
    helen = entra_sign_in(demo, "helen")
    pages = []
    form = helen.get(server.url + "/runbooks/ad-reset-password", timeout=10)
    pages.append(form.text)
    token = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)
    posted = helen.post(server.url + "/runbooks/ad-reset-password/plan", allow_redirects=False, timeout=10,
                        data={"csrf": token, "p.identity": "asmith", "p.new_password": CANARY, "p.must_change": "true"})
    assert posted.status_code == 303, posted.text
    rid = posted.headers["location"].rsplit("/", 1)[1]
    req = server.portal.desk.get(rid)
    deadline = time.monotonic() + 20
    while req.state == "planning" and time.monotonic() < deadline:
        time.sleep(0.05)
    pages.append(helen.get(server.url + f"/requests/{rid}", timeout=10).text)
    assert req.state == "planned", (req.state, req.plan_result and req.plan_result.stages[0].error)
    token = re.search(r'name="csrf" value="([^"]+)"', pages[-1]).group(1)
    helen.post(server.url + f"/requests/{rid}/confirm", data={"csrf": token}, timeout=10)
    while req.state != "done" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert req.run_result.status.value == "succeeded", req.run_result.to_dict()
    assert host.state.directory.authenticate("asmith", CANARY).reason == "must-change"
    with helen.get(server.url + f"/runs/{req.run_run}/events", stream=True, timeout=10) as stream:
        pages.append(stream.text)
    for path in (f"/requests/{rid}", f"/runs/{req.run_run}", f"/runs/{req.plan_run}", "/runs", "/"):
        pages.append(helen.get(server.url + path, timeout=10).text)
    ada = entra_sign_in(demo, "ada")
    for path in ("/audit", "/audit/export?format=jsonl", "/audit/export?format=csv", "/runs"):
        pages.append(ada.get(server.url + path, timeout=10).text)
    assert "asmith" in pages[-3] and "new_password" in pages[-3]        # the audit has the request...
    for text in pages:
        assert CANARY not in text                                          # ...never the password
    assert CANARY not in caplog.text
    state = server.portal.state_dir
    for f in state.rglob("*"):
        if f.is_file():
            assert CANARY.encode() not in f.read_bytes(), f


@pytest.mark.parametrize("widened, says", [
    ({"p.allowed_ous": DOMAIN}, "parameter 'allowed_ous' is set by your role; it cannot be given here"),
    ({"p.allowed_ous": f"{STAFF};CN=Users,{DOMAIN}"}, "parameter 'allowed_ous' is set by your role"),
    ({"p.host": "dc01.contoso.test"}, "parameter 'host' is set by the server; it cannot be given here"),
])
def test_helpdesk_cannot_widen_what_the_demo_policy_fixes_with_a_crafted_post(demo, widened, says):
    """ad-unlock-account as `psrunner serve --demo` serves it: the form shows allowed_ous as
    fixed by the role (no field), and a POST that carries a wider one is refused before any
    run and audited; jdoe stays as she was and the host hears nothing."""
    server, _, host, _ = demo
    helen = entra_sign_in(demo, "helen")
    form = helen.get(server.url + "/runbooks/ad-unlock-account", timeout=10).text
    assert 'name="p.allowed_ous"' not in form and "set by your role" in form
    runs_before = len(api.runs(server.portal.state_dir))
    directory = directory_of(host.state)
    locked, calls = directory.get_user("jdoe", ["LockedOut"])["LockedOut"], len(host.state.invocations)
    posted = helen.post(server.url + "/runbooks/ad-unlock-account/plan", allow_redirects=False, timeout=10,
                        data={"csrf": csrf(helen, server.url + "/runbooks/ad-unlock-account"), "p.identity": "jdoe",
                              **widened})
    assert posted.status_code == 403 and says in html.unescape(posted.text)
    record = server.portal.audit.records()[-1]
    assert (record["event"], record["runbook"], record["status"]) == ("refused", "ad-unlock-account", 403)
    assert len(api.runs(server.portal.state_dir)) == runs_before
    assert directory.get_user("jdoe", ["LockedOut"])["LockedOut"] == locked and len(host.state.invocations) == calls


def test_the_fixed_ous_reach_the_host_and_hold_an_account_outside_them(demo):
    """What the form can ask for: an account outside OU=Staff (the built-in Administrator, in
    CN=Users). The plan runs with the role's allowed_ous, and the runbook's guardrail on the
    host refuses it before any change."""
    server, _, host, _ = demo
    helen = entra_sign_in(demo, "helen")
    posted = helen.post(server.url + "/runbooks/ad-unlock-account/plan", allow_redirects=False, timeout=10,
                        data={"csrf": csrf(helen, server.url + "/runbooks/ad-unlock-account"),
                              "p.identity": "Administrator"})
    assert posted.status_code == 303, posted.text
    req = server.portal.desk.get(posted.headers["location"].rsplit("/", 1)[1])
    deadline = time.monotonic() + 20
    while req.state == "planning" and time.monotonic() < deadline:
        time.sleep(0.05)
    (name, sent), = [c for c in host.state.invocations if c[1].get("Identity") == "Administrator"]
    assert name == "activedirectory/ad_unlock_account" and sent["AllowedOUs"] == [STAFF]
    page = html.unescape(helen.get(server.url + posted.headers["location"], timeout=10).text)
    assert f"Administrator is in CN=Users,{DOMAIN}, outside the OUs this runbook may touch ({STAFF})" in page
