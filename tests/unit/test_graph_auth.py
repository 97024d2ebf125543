"""Sign-in settings, clouds, the token claims check and msal error mapping (no network)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from runner.errors import AuthError, InputError
from runner.graph.auth import (
    CLOUDS,
    DEFAULT_PUBLIC_CLIENT_ID,
    SignInSettings,
    TokenSource,
    auth_error_from_result,
    cloud_named,
)
from runner.graph.http import HttpSession
from runner.graph.rights import (
    GLOBAL_ADMINISTRATOR,
    PRIVILEGED_ROLE_ADMINISTRATOR,
    decode_claims,
    describe,
    missing_rights,
    require_rights,
)
from runner.secrets import Secret


def jwt(claims: dict) -> str:
    def enc(d):
        return base64.urlsafe_b64encode(json.dumps(d).encode()).decode().rstrip("=")
    return f"{enc({'alg': 'RS256'})}.{enc(claims)}.c2ln"


DELEGATED_OK = {"tid": "t1", "upn": "admin@contoso.onmicrosoft.com",
                "scp": "Application.ReadWrite.All AppRoleAssignment.ReadWrite.All User.Read",
                "wids": [PRIVILEGED_ROLE_ADMINISTRATOR, "b79fbf4d-3ef9-4689-8143-76b194e85509"]}
APP_OK = {"tid": "t1", "appid": "a1", "app_displayname": "ops",
          "roles": ["Application.ReadWrite.All", "AppRoleAssignment.ReadWrite.All"]}


def test_cloud_table_names_the_sovereign_hosts():
    assert (CLOUDS["global"].authority_host, CLOUDS["global"].graph_endpoint) == \
        ("https://login.microsoftonline.com", "https://graph.microsoft.com")
    assert (CLOUDS["usgov"].authority_host, CLOUDS["usgov"].graph_endpoint) == \
        ("https://login.microsoftonline.us", "https://graph.microsoft.us")
    assert (CLOUDS["usgovdod"].authority_host, CLOUDS["usgovdod"].graph_endpoint) == \
        ("https://login.microsoftonline.us", "https://dod-graph.microsoft.us")
    assert (CLOUDS["china"].authority_host, CLOUDS["china"].graph_endpoint) == \
        ("https://login.chinacloudapi.cn", "https://microsoftgraph.chinacloudapi.cn")
    assert cloud_named(None).name == "global" and cloud_named("USGov").name == "usgov"
    with pytest.raises(InputError) as ei:
        cloud_named("germany")
    assert ei.value.input == "cloud" and "usgovdod" in ei.value.hint


def test_settings_defaults_and_overrides():
    s = SignInSettings(tenant="contoso.onmicrosoft.com")
    assert s.kind == "device-code" and s.client_id == DEFAULT_PUBLIC_CLIENT_ID
    assert s.authority == "https://login.microsoftonline.com/contoso.onmicrosoft.com"
    assert s.needs_instance_discovery
    sim = SignInSettings(tenant="t", authority_host="https://localhost:8443/", cloud=CLOUDS["china"])
    assert sim.authority == "https://localhost:8443/t" and not sim.needs_instance_discovery
    assert sim.graph_resource == "https://microsoftgraph.chinacloudapi.cn"


@pytest.mark.parametrize("kw,name", [
    ({"kind": "certificate", "client_id": "c"}, "certificate"),
    ({"kind": "secret", "client_id": "c"}, "client_secret"),
    ({"kind": "secret", "client_secret": Secret("s3cr3t-value")}, "client_id"),
    ({"kind": "password"}, "auth"),
    ({"tenant": " "}, "tenant"),
])
def test_settings_name_the_missing_input(kw, name):
    args = {"tenant": "contoso.onmicrosoft.com", **kw}
    with pytest.raises(InputError) as ei:
        SignInSettings(**args)
    assert ei.value.input == name


def test_scopes_keep_the_cloud_resource_even_with_an_endpoint_override():
    http = HttpSession()
    dc = TokenSource(SignInSettings(tenant="t", authority_host="https://localhost:1"), http)
    assert dc.scopes == ["https://graph.microsoft.com/Application.ReadWrite.All",
                         "https://graph.microsoft.com/AppRoleAssignment.ReadWrite.All"]
    cc = TokenSource(SignInSettings(tenant="t", kind="secret", client_id="c", client_secret=Secret("xyz1"),
                                    cloud=CLOUDS["usgovdod"]), http)
    assert cc.scopes == ["https://dod-graph.microsoft.us/.default"]


def test_opening_a_token_source_touches_no_network():
    http = HttpSession(on_request=lambda m, u: pytest.fail("network used"))
    TokenSource(SignInSettings(tenant="t", kind="secret", client_id="c", client_secret=Secret("abcd")), http)


def test_decode_and_describe():
    d = describe(decode_claims(jwt(DELEGATED_OK)))
    assert d["sign_in"] == "delegated" and d["identity"] == "admin@contoso.onmicrosoft.com"
    assert d["directory_roles"] == ["Privileged Role Administrator"] and d["tenant_id"] == "t1"
    a = describe(decode_claims(jwt(APP_OK)))
    assert a["sign_in"] == "app-only" and a["identity"] == "ops (a1)" and a["roles"] == sorted(APP_OK["roles"])
    with pytest.raises(AuthError):
        decode_claims("not-a-jwt")


def test_rights_present_means_nothing_missing():
    assert missing_rights(DELEGATED_OK) == []
    assert missing_rights({**DELEGATED_OK, "wids": [GLOBAL_ADMINISTRATOR]}) == []
    assert missing_rights(APP_OK) == []


def test_delegated_missing_scope_and_role_are_named():
    claims = {**DELEGATED_OK, "scp": "Application.ReadWrite.All User.Read", "wids": []}
    missing = missing_rights(claims)
    assert missing == ["delegated permission AppRoleAssignment.ReadWrite.All (scp)",
                       "directory role Privileged Role Administrator or Global Administrator (wids)"]
    # without granting Microsoft Graph roles, no directory role is needed
    assert missing_rights(claims, grant_graph_roles=False) == ["delegated permission AppRoleAssignment.ReadWrite.All (scp)"]
    assert missing_rights(claims, grant_roles=False) == []


def test_app_only_missing_roles_are_named():
    claims = {**APP_OK, "roles": ["Application.Read.All"]}
    assert missing_rights(claims) == ["application permission Application.ReadWrite.All (roles)",
                                      "application permission AppRoleAssignment.ReadWrite.All (roles)"]


def test_require_rights_raises_an_auth_error_with_exit_code_2():
    with pytest.raises(AuthError) as ei:
        require_rights({**DELEGATED_OK, "wids": []}, manage_apps=True, grant_roles=True, grant_graph_roles=True)
    e = ei.value
    assert e.exit_code == 2
    assert e.missing == ["directory role Privileged Role Administrator or Global Administrator (wids)"]
    assert "admin@contoso.onmicrosoft.com lacks" in str(e) and "nothing was changed" in str(e)
    assert "Privileged Role Administrator" in e.hint


def test_msal_errors_map_to_aadsts_code_and_hint_without_the_secret():
    secret = Secret("Very~Secret.Value_123", "client_secret")
    s = SignInSettings(tenant="contoso.onmicrosoft.com", kind="secret", client_id="c1", client_secret=secret)
    result = {"error": "invalid_client", "error_codes": [7000215],
              "error_description": "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent "
                                   "in the request is the client secret value.\r\nTrace ID: x"}
    e = auth_error_from_result(result, s)
    assert isinstance(e, AuthError) and e.exit_code == 2
    assert "AADSTS7000215" in str(e) and "Trace ID" not in e.message
    assert "client secret is wrong" in e.hint
    assert secret.reveal() not in str(e) and secret.reveal() not in json.dumps(e.to_dict())
    # a code only found in the description is still read
    e2 = auth_error_from_result({"error": "invalid_request", "error_description": "AADSTS90002: Tenant 'x' not found."}, s)
    assert e2.fields["aadsts"] == ["AADSTS90002"] and "tenant was not found" in e2.hint


def test_certificate_settings_validate_the_file(tmp_path: Path):
    s = SignInSettings(tenant="t", kind="certificate", client_id="c", certificate=tmp_path / "missing.pfx")
    src = TokenSource(s, HttpSession())
    with pytest.raises(InputError) as ei:
        src._client_credential()
    assert ei.value.input == "certificate"


def test_connector_maps_cloud_and_overrides_without_network(tmp_path):
    from runner.graph.connector import open_target
    from runner.registry import TargetEnv

    def no_event(type, **data):
        raise AssertionError("no event expected while opening")

    def T():
        return TargetEnv(name="tenant", state_dir=tmp_path, event=no_event)

    gov = open_target({"tenant": "contoso.onmicrosoft.us", "cloud": "usgovdod"}, T())
    assert gov.endpoint == "https://dod-graph.microsoft.us"
    assert gov.signin.authority == "https://login.microsoftonline.us/contoso.onmicrosoft.us"
    assert gov.signin.client_id == DEFAULT_PUBLIC_CLIENT_ID
    assert gov.signin.token_cache == tmp_path / "private" / "graph" / "contoso.onmicrosoft.us" / "msal-cache.json"
    seen = []
    sim = open_target({"tenant": "8f7c1b2a-3d4e-4f50-9a6b-7c8d9e0f1a2b", "auth": "secret", "client_id": "c",
                       "client_secret": "plain-text-becomes-secret", "graph_endpoint": "https://localhost:9/v1.0",
                       "authority_host": "https://localhost:9", "timeout": 5},
                      TargetEnv(name="tenant", state_dir=tmp_path, event=lambda type, **d: seen.append(type)))
    assert seen == ["graph.endpoint_override"] * 2       # the test opt-in warns, once for each override
    assert sim.endpoint == "https://localhost:9" and sim.client.root == "https://localhost:9/v1.0"
    assert isinstance(sim.signin.client_secret, Secret) and "plain-text" not in repr(sim.signin.client_secret)
    assert sim.tenant_id == "8f7c1b2a-3d4e-4f50-9a6b-7c8d9e0f1a2b"      # a GUID tenant needs no sign-in
    assert sim.client.timeout == (5.0, 5.0)
    for bad, key in [({"timeout": "soon"}, "timeout"), ({"ca_bundle": "/nope.pem"}, "ca_bundle"),
                     ({"cloud": "mars"}, "cloud"), ({"lag_budget": -1}, "lag_budget")]:
        with pytest.raises(InputError) as ei:
            open_target({"tenant": "t", **bad}, T())
        assert ei.value.input == key
