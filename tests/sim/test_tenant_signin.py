"""Entra sign-in for a web app against the simulated tenant: the authorization code flow with
PKCE driven by the real msal (initiate_auth_code_flow, acquire_token_by_auth_code_flow), the
sign-in page posted as a browser would post it, and the refusals Entra answers."""

from __future__ import annotations

import base64
import hashlib
import html
import re
from urllib.parse import parse_qs, urlencode, urlsplit

import msal
import pytest

from runner.sim.tenant_authorize import _verifier_matches
from runner.sim.tenant_tokens import AuthCode

from .tenant_helpers import CASession, claims_of

# msal suggests form_post for query-mode flows; both modes are tested here on purpose.
pytestmark = pytest.mark.filterwarnings("ignore:response_mode='form_post' is recommended:UserWarning")

CALLBACK = "https://portal.example/auth/callback"
ALICE = "alice@contoso.onmicrosoft.com"


@pytest.fixture
def web(sim):
    return sim.add_web_app("Helpdesk portal", [CALLBACK], app_roles=["Helpdesk", "Admin"])


@pytest.fixture
def alice(sim, web):
    user = sim.add_user(ALICE, "Alice", password="Correct-Horse-1")
    sim.assign_app_role(user, web, "Helpdesk")
    return user


def portal(sim, web, **kw):
    return msal.ConfidentialClientApplication(web.client_id, client_credential=web.client_secret,
                                              authority=sim.authority, instance_discovery=False,
                                              http_client=CASession(sim.ca_bundle), **kw)


def form_of(page_html: str) -> tuple[str, dict[str, str]]:
    """The sign-in form's action and hidden fields, as a browser would submit them."""
    action = re.search(r"<form method='post' action='([^']*)'", page_html).group(1)
    hidden = re.findall(r"<input type='hidden' name='([^']*)' value='([^']*)'>", page_html)
    return html.unescape(action), {html.unescape(k): html.unescape(v) for k, v in hidden}


def sign_in(sim, auth_uri: str, login: str, password: str = "", *, pick: bool = False):
    http = CASession(sim.ca_bundle)
    page = http.get(auth_uri, allow_redirects=False)
    assert page.status_code == 200 and "<script" not in page.text, page.text
    action, fields = form_of(page.text)
    fields.update({"pick": login} if pick else {"login": login})
    return http.post(action, data={**fields, "passwd": password}, allow_redirects=False)


def answer_of(resp) -> dict[str, str]:
    """What comes back to the redirect URI: the query of a 302, or the fields of a form_post."""
    if resp.status_code == 302:
        return {k: v[0] for k, v in parse_qs(urlsplit(resp.headers["Location"]).query).items()}
    return form_of(resp.text)[1]


def test_msal_signs_a_user_in_with_pkce_and_the_id_token_carries_roles_and_nonce(sim, web, alice):
    app = portal(sim, web)
    flow = app.initiate_auth_code_flow([], redirect_uri=CALLBACK)
    assert "code_challenge_method=S256" in flow["auth_uri"]
    resp = sign_in(sim, flow["auth_uri"], ALICE, "Correct-Horse-1")
    assert resp.status_code == 302 and resp.headers["Location"].startswith(CALLBACK + "?code=")
    result = app.acquire_token_by_auth_code_flow(flow, answer_of(resp))   # msal checks state and nonce
    claims = result["id_token_claims"]
    assert claims["aud"] == web.client_id and claims["iss"] == f"{sim.base_url}/{sim.tenant_id}/v2.0"
    assert claims["roles"] == ["Helpdesk"] and claims["preferred_username"] == ALICE
    assert claims["oid"] == alice["id"] and claims["tid"] == sim.tenant_id
    assert claims_of(result["id_token"]) == claims
    assert app.get_accounts()[0]["username"] == ALICE


def test_form_post_response_mode_and_picking_an_account_without_password(sim, web):
    bob = sim.add_user("bob@contoso.onmicrosoft.com", "Bob")
    sim.assign_app_role(bob, web, "Admin")
    app = portal(sim, web)
    flow = app.initiate_auth_code_flow([], redirect_uri=CALLBACK, response_mode="form_post")
    resp = sign_in(sim, flow["auth_uri"], bob["userPrincipalName"], pick=True)
    assert resp.status_code == 200 and f"action='{CALLBACK}'" in resp.text and "<script" not in resp.text
    result = app.acquire_token_by_auth_code_flow(flow, answer_of(resp))
    assert result["id_token_claims"]["roles"] == ["Admin"]


def test_the_sign_in_page_refuses_a_wrong_password_or_an_unknown_account(sim, web, alice):
    flow = portal(sim, web).initiate_auth_code_flow([], redirect_uri=CALLBACK)
    wrong = sign_in(sim, flow["auth_uri"], ALICE, "Tr0ub4dor&3")
    assert wrong.status_code == 200 and "AADSTS50126: Your account or password is incorrect." in wrong.text
    assert "Tr0ub4dor" not in wrong.text and "Location" not in wrong.headers
    unknown = sign_in(sim, flow["auth_uri"], "mallory@contoso.onmicrosoft.com")
    assert "AADSTS50034" in unknown.text and "Location" not in unknown.headers


@pytest.mark.parametrize("tamper,code", [
    (lambda flow: flow.update(code_verifier="x" * 43), 501481),                      # wrong verifier
    (lambda flow: flow.update(code_verifier=flow_challenge(flow)), 501481),          # the challenge sent as verifier
    (lambda flow: flow.update(redirect_uri=CALLBACK + "/other"), 500112),            # another redirect URI
])
def test_code_redemption_checks_the_verifier_and_the_redirect_uri(sim, web, alice, tamper, code):
    app = portal(sim, web)
    flow = app.initiate_auth_code_flow([], redirect_uri=CALLBACK)
    answer = answer_of(sign_in(sim, flow["auth_uri"], ALICE, "Correct-Horse-1"))
    tamper(flow)
    result = app.acquire_token_by_auth_code_flow(flow, answer)
    assert result["error"] in ("invalid_grant",) and result["error_codes"] == [code]


def flow_challenge(flow) -> str:
    return parse_qs(urlsplit(flow["auth_uri"]).query)["code_challenge"][0]


def test_a_code_is_redeemed_once_and_only_by_its_confidential_client_with_its_secret(sim, web, alice):
    app = portal(sim, web)
    flow = app.initiate_auth_code_flow([], redirect_uri=CALLBACK)
    answer = answer_of(sign_in(sim, flow["auth_uri"], ALICE, "Correct-Horse-1"))
    http = CASession(sim.ca_bundle)
    token_url = f"{sim.authority}/oauth2/v2.0/token"
    form = {"grant_type": "authorization_code", "client_id": web.client_id, "code": answer["code"],
            "redirect_uri": CALLBACK, "code_verifier": flow["code_verifier"]}
    no_secret = http.post(token_url, data=form).json()
    assert no_secret["error"] == "invalid_client" and no_secret["error_codes"] == [7000218]
    assert "access_token" in app.acquire_token_by_auth_code_flow(flow, answer)
    again = http.post(token_url, data={**form, "client_secret": web.client_secret}).json()
    assert again["error"] == "invalid_grant" and again["error_codes"] == [54005]


def test_plain_pkce_is_refused_unless_allowed(sim, web, alice):
    verifier = "v" * 50
    params = {"client_id": web.client_id, "response_type": "code", "redirect_uri": CALLBACK,
              "scope": "openid profile", "state": "s1", "code_challenge": verifier}
    resp = CASession(sim.ca_bundle).get(f"{sim.authority}/oauth2/v2.0/authorize?{urlencode(params)}",
                                        allow_redirects=False)
    answer = answer_of(resp)   # no code_challenge_method: plain, as RFC 7636 says
    assert answer["error"] == "invalid_request" and answer["error_description"].startswith("AADSTS50149:")
    assert answer["state"] == "s1"
    sim.allow_plain_pkce = True
    got = answer_of(sign_in(sim, f"{sim.authority}/oauth2/v2.0/authorize?{urlencode(params)}", ALICE,
                            "Correct-Horse-1"))
    tokens = CASession(sim.ca_bundle).post(f"{sim.authority}/oauth2/v2.0/token", data={
        "grant_type": "authorization_code", "client_id": web.client_id, "client_secret": web.client_secret,
        "code": got["code"], "redirect_uri": CALLBACK, "code_verifier": verifier}).json()
    assert "id_token" in tokens


def test_requests_that_cannot_be_answered_safely_stay_on_the_sign_in_page(sim, web):
    http = CASession(sim.ca_bundle)
    base = {"client_id": web.client_id, "response_type": "code", "scope": "openid", "redirect_uri": CALLBACK}
    foreign = http.get(f"{sim.authority}/oauth2/v2.0/authorize?{urlencode({**base, 'redirect_uri': 'https://evil.example/'})}",
                       allow_redirects=False)
    assert foreign.status_code == 400 and "AADSTS50011" in foreign.text and "Location" not in foreign.headers
    unknown = http.get(f"{sim.authority}/oauth2/v2.0/authorize?"
                       f"{urlencode({**base, 'client_id': '0b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d'})}",
                       allow_redirects=False)
    assert unknown.status_code == 400 and "AADSTS700016" in unknown.text
    silent = answer_of(http.get(f"{sim.authority}/oauth2/v2.0/authorize?{urlencode({**base, 'prompt': 'none'})}",
                                allow_redirects=False))
    assert silent["error"] == "login_required" and silent["error_description"].startswith("AADSTS50058:")
    token = answer_of(http.get(f"{sim.authority}/oauth2/v2.0/authorize?"
                               f"{urlencode({**base, 'response_type': 'token'})}", allow_redirects=False))
    assert token["error"] == "unsupported_response_type"


def test_assignment_required_blocks_users_without_a_role(sim):
    web = sim.add_web_app("Admin portal", [CALLBACK], app_roles=["Admin"], assignment_required=True)
    sim.add_user("carol@contoso.onmicrosoft.com")
    flow = portal(sim, web).initiate_auth_code_flow([], redirect_uri=CALLBACK)
    resp = sign_in(sim, flow["auth_uri"], "carol@contoso.onmicrosoft.com")
    assert resp.status_code == 400 and "AADSTS50105" in resp.text and "Location" not in resp.headers


def test_graph_scopes_need_consent_but_sign_in_scopes_do_not(sim, web):
    sim.add_user("dave@contoso.onmicrosoft.com")
    app = portal(sim, web)
    flow = app.initiate_auth_code_flow(["User.Read"], redirect_uri=CALLBACK)
    answer = answer_of(sign_in(sim, flow["auth_uri"], "dave@contoso.onmicrosoft.com"))
    assert answer["error"] == "consent_required" and answer["error_description"].startswith("AADSTS65001:")
    sim.add_user("erin@contoso.onmicrosoft.com", scopes=["User.Read"])
    flow = app.initiate_auth_code_flow(["User.Read"], redirect_uri=CALLBACK)
    result = app.acquire_token_by_auth_code_flow(
        flow, answer_of(sign_in(sim, flow["auth_uri"], "erin@contoso.onmicrosoft.com")))
    assert claims_of(result["access_token"])["scp"] == "User.Read" and "roles" not in result["id_token_claims"]


def test_a_public_spa_signs_in_with_pkce_alone_and_may_not_send_a_secret(sim):
    spa = sim.add_web_app("Helpdesk SPA", [CALLBACK], public=True)
    sim.add_user("frank@contoso.onmicrosoft.com")
    assert spa.client_secret is None
    app = msal.PublicClientApplication(spa.client_id, authority=sim.authority, instance_discovery=False,
                                       http_client=CASession(sim.ca_bundle))
    flow = app.initiate_auth_code_flow([], redirect_uri=CALLBACK)
    answer = answer_of(sign_in(sim, flow["auth_uri"], "frank@contoso.onmicrosoft.com"))
    assert "id_token" in app.acquire_token_by_auth_code_flow(dict(flow), dict(answer))
    flow = app.initiate_auth_code_flow([], redirect_uri=CALLBACK)
    answer = answer_of(sign_in(sim, flow["auth_uri"], "frank@contoso.onmicrosoft.com"))
    r = CASession(sim.ca_bundle).post(f"{sim.authority}/oauth2/v2.0/token", data={
        "grant_type": "authorization_code", "client_id": spa.client_id, "client_secret": "guess",
        "code": answer["code"], "redirect_uri": CALLBACK, "code_verifier": flow["code_verifier"]}).json()
    assert r["error_codes"] == [700025]


def test_discovery_advertises_the_endpoints_and_logout_returns_to_the_app(sim, web):
    http = CASession(sim.ca_bundle)
    conf = http.get(f"{sim.authority}/v2.0/.well-known/openid-configuration").json()
    assert conf["authorization_endpoint"] == f"{sim.authority}/oauth2/v2.0/authorize"
    assert conf["end_session_endpoint"] == f"{sim.authority}/oauth2/v2.0/logout"
    assert http.get(conf["authorization_endpoint"], allow_redirects=False).status_code == 400  # no client_id
    out = http.get(f"{conf['end_session_endpoint']}?{urlencode({'post_logout_redirect_uri': CALLBACK, 'state': 'x'})}",
                   allow_redirects=False)
    assert out.status_code == 302 and out.headers["Location"] == CALLBACK + "?state=x"
    elsewhere = http.get(f"{conf['end_session_endpoint']}?post_logout_redirect_uri=https://evil.example/",
                         allow_redirects=False)
    assert elsewhere.status_code == 200 and "signed out" in elsewhere.text


def test_s256_challenge_matches_the_rfc_7636_example():
    # RFC 7636 appendix B: verifier dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk.
    grant = AuthCode("c", "u", CALLBACK, [], None, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", "S256", False, 0)
    assert _verifier_matches("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk", grant)
    digest = base64.urlsafe_b64encode(hashlib.sha256(b"x" * 43).digest()).decode().rstrip("=")
    assert not _verifier_matches(digest, grant)
