"""Parameter values: types, patterns, choices, derived defaults, and where secrets come from."""

from __future__ import annotations

import pytest

from runner.errors import ParamError
from runner.params import parse_assignments, resolve_params
from runner.runbook_loader import parse
from runner.secrets import Secret

RB = parse('''
name = "p"
title = "P"
[params.tenant]
type = "str"
required = true
pattern = '[a-z0-9-]+\\.onmicrosoft\\.com'
help = "tenant domain"
example = "contoso.onmicrosoft.com"
[params.admin_url]
type = "str"
default = "${params.tenant|spo_admin_url}"
[params.days]
type = "int"
default = 30
min = 1
max = 730
[params.flag]
type = "bool"
default = false
[params.kind]
type = "choice"
choices = ["secret", "certificate", "both"]
default = "secret"
[params.names]
type = "list"
default = []
[params.password]
type = "secret"
env = "TEST_PASSWORD"
required_if = "params.flag"
[[stages]]
id = "s"
kind = "local.file"
inputs = { path = "/tmp/x" }
''', "p.toml")


def test_values_are_typed_and_defaults_derived():
    values, sources = resolve_params(RB, {"tenant": "contoso.onmicrosoft.com", "days": "90", "flag": "no",
                                   "names": "a, b"}, environ={})
    assert values["days"] == 90 and values["flag"] is False and values["names"] == ["a", "b"]
    assert values["admin_url"] == "https://contoso-admin.sharepoint.com"
    assert "password" not in values and sources == {}


@pytest.mark.parametrize("given, message", [
    ({}, "parameter 'tenant' is required"),
    ({"tenant": "contoso"}, "parameter 'tenant': 'contoso' does not match the expected form"),
    ({"tenant": "c.onmicrosoft.com", "days": "0"}, "parameter 'days': 0 is below the minimum 1"),
    ({"tenant": "c.onmicrosoft.com", "days": "ten"}, "parameter 'days': 'ten' is not a whole number"),
    ({"tenant": "c.onmicrosoft.com", "kind": "cert"}, "parameter 'kind': 'cert' is not one of the choices"),
    ({"tenant": "c.onmicrosoft.com", "colour": "red"}, "unknown parameter 'colour' for runbook 'p'"),
    ({"tenant": "c.onmicrosoft.com", "password": "hunter2"}, "secret 'password' cannot be given with -p"),
])
def test_bad_values_name_the_parameter(given, message):
    with pytest.raises(ParamError) as e:
        resolve_params(RB, given, environ={})
    assert e.value.message.startswith(message)
    assert e.value.exit_code == 2


@pytest.mark.parametrize("days", ["0", "ten"])
def test_a_number_out_of_range_is_answered_with_the_range(days):
    with pytest.raises(ParamError) as e:
        resolve_params(RB, {"tenant": "c.onmicrosoft.com", "days": days}, environ={})
    assert e.value.hint == "give -p days=N, a whole number from 1 to 730"


def test_pattern_error_offers_the_example():
    with pytest.raises(ParamError) as e:
        resolve_params(RB, {"tenant": "contoso"}, environ={})
    assert "contoso.onmicrosoft.com" in e.value.hint


def test_admin_url_cannot_be_derived_from_a_tenant_id():
    rb = parse('''
name = "d"
title = "D"
[params.tenant]
type = "str"
required = true
[params.admin_url]
type = "str"
default = "${params.tenant|spo_admin_url}"
[[stages]]
id = "s"
kind = "local.file"
inputs = { path = "/tmp/x" }
''', "d.toml")
    with pytest.raises(ParamError) as e:
        resolve_params(rb, {"tenant": "8f7c1b2a-3d4e-4f50-9a6b-7c8d9e0f1a2b"}, environ={})
    assert e.value.message == ("parameter 'admin_url' is needed: the SharePoint tenant name cannot be derived "
                               "from a tenant id (8f7c1b2a-3d4e-4f50-9a6b-7c8d9e0f1a2b)")
    assert e.value.param == "admin_url"
    assert e.value.hint == "give -p admin_url=VALUE, or give the tenant as its NAME.onmicrosoft.com domain"
    values, _ = resolve_params(rb, {"tenant": "8f7c1b2a-3d4e-4f50-9a6b-7c8d9e0f1a2b",
                             "admin_url": "https://fabrikam-admin.sharepoint.com"}, environ={})
    assert values["admin_url"] == "https://fabrikam-admin.sharepoint.com"


def test_an_admin_url_only_the_host_would_use_is_not_needed_without_a_host():
    from runner.catalog import Catalog
    rb = Catalog().load("m365-access-verify")
    tenant = {"tenant": "8f7c1b2a-3d4e-4f50-9a6b-7c8d9e0f1a2b"}
    values, _ = resolve_params(rb, tenant, environ={})         # the application is checked alone
    assert "admin_url" not in values
    with pytest.raises(ParamError) as e:
        resolve_params(rb, {**tenant, "host": "mgmt01.contoso.com"}, environ={})
    assert e.value.param == "admin_url"


def test_secret_from_environment_file_and_prompt(tmp_path):
    values, sources = resolve_params(RB, {"tenant": "c.onmicrosoft.com"}, environ={"TEST_PASSWORD": "from-env"})
    assert isinstance(values["password"], Secret) and values["password"].reveal() == "from-env"
    assert sources == {"password": "env:TEST_PASSWORD"}
    f = tmp_path / "pw"
    f.write_text("from-file\n")
    f.chmod(0o600)
    values, sources = resolve_params(RB, {"tenant": "c.onmicrosoft.com"}, secret_files={"password": str(f)}, environ={})
    assert values["password"].reveal() == "from-file" and sources["password"] == f"file:{f}"
    values, sources = resolve_params(RB, {"tenant": "c.onmicrosoft.com", "flag": "yes"}, prompt=lambda p: "typed",
                              environ={})
    assert values["password"].reveal() == "typed" and sources["password"] == "prompt"


def test_assignments_need_an_equals_sign():
    assert parse_assignments(["a=b=c"]) == {"a": "b=c"}
    with pytest.raises(ParamError) as e:
        parse_assignments(["tenant"])
    assert e.value.message == "-p 'tenant' is not of the form key=value"


def test_a_secret_can_be_required_by_another_value():
    rb = parse('''
name = "r"
title = "R"
[params.user]
type = "str"
default = ""
[params.password]
type = "secret"
required_if = "params.user != ''"
[[stages]]
id = "s"
kind = "local.file"
inputs = { path = "/tmp/x" }
''', "r.toml")
    asked = []
    values, _ = resolve_params(rb, {}, environ={}, prompt=lambda p: asked.append(p.name) or "")
    assert "password" not in values and asked == []          # not needed: never prompted
    with pytest.raises(ParamError) as e:
        resolve_params(rb, {"user": "admin"}, environ={}, prompt=lambda p: asked.append(p.name) or "")
    assert asked == ["password"]                             # needed: prompted, then an error
    assert e.value.message == "secret 'password' is required when params.user != ''"
    values, _ = resolve_params(rb, {"user": "admin"}, environ={"PSRUNNER_PASSWORD": "pw-1234"})
    assert values["password"].reveal() == "pw-1234"


def test_required_if_must_name_known_parameters():
    with pytest.raises(Exception) as e:
        parse('name = "r"\ntitle = "R"\n[params.pw]\ntype = "secret"\nrequired_if = "params.nope == 1"\n'
              '[[stages]]\nid = "s"\nkind = "local.file"\n', "r.toml")
    assert "params.pw.required_if" in str(e.value)


def test_a_malformed_assignment_is_not_echoed_unless_it_looks_like_a_name():
    with pytest.raises(ParamError) as e:
        parse_assignments(["tenant=x", "Hunter2!pass"])
    assert e.value.message == "-p number 2 is not of the form key=value"
    assert "Hunter2" not in str(e.value)
