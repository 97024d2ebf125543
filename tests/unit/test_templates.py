"""Templates: every one renders and parses as PowerShell, no value is printed unquoted, the
quoting filters survive hostile input, param() blocks read right, the permission XML is
valid, and render errors name the template and line."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from importlib import resources

import pytest

from runner.errors import TemplateError
from runner.powershell import quoting as Q
from runner.powershell import templates as T
from runner.powershell.param_block import ParamDecl, parse_param_block
from runner.powershell.quoting import ps_array, ps_bool, ps_int, ps_str
from runner.powershell.templates import list_templates, render_permission_xml, render_template, template_params
from runner.secrets import Secret
from runner.values import Unknown
from tests.ps_dialect import PARSER

EXPECTED = {"windows/host_facts", "sharepoint/spo_module", "sharepoint/spo_tenant_settings",
            "sharepoint/appinv_verify", "sharepoint/appinv_server_grant",
            "activedirectory/ad_user_status", "activedirectory/ad_unlock_account",
            "activedirectory/ad_reset_password", "windows/service_status", "windows/service_restart"}


def parse(text: str):
    return PARSER.parse(text.encode("utf-8"))


def error_nodes(tree) -> list:
    found = []

    def walk(n):
        if n.type == "ERROR" or n.is_missing:
            found.append(n)
        for c in n.children:
            walk(c)

    walk(tree.root_node)
    return found


def nodes_of(tree, type_: str) -> list:
    out = []

    def walk(n):
        if n.type == type_:
            out.append(n)
        for c in n.children:
            walk(c)

    walk(tree.root_node)
    return out


def powershell_single_quoted(text: str) -> str:
    """Decode a single-quoted literal the way PowerShell's tokenizer does: any of the five
    single-quote characters ends it unless the next one is also a quote (then one is kept)."""
    quotes = Q.SINGLE_QUOTES
    assert text[0] in quotes, text[:10]
    out, i = [], 1
    while True:
        if i >= len(text):
            raise ValueError("unterminated string")
        c = text[i]
        if c in quotes:
            if i + 1 < len(text) and text[i + 1] in quotes:
                out.append(text[i + 1])
                i += 2
                continue
            if i != len(text) - 1:
                raise ValueError(f"string ends at {i} but text goes on: {text[i:i + 20]!r}")
            return "".join(out)
        out.append(c)
        i += 1


# --------------------------------------------------------------------------- templates

def test_all_templates_are_listed():
    assert set(list_templates()) == EXPECTED


@pytest.mark.parametrize("template_id", sorted(EXPECTED))
def test_template_renders_and_parses_without_error_node(template_id):
    text = render_template(template_id).text
    tree = parse(text)
    bad = error_nodes(tree)
    assert not bad, [(n.start_point, text.encode()[n.start_byte:n.end_byte][:80]) for n in bad]
    assert text.startswith(f"# psrunner-template: {template_id}\n")
    # one script-level param() block, and it declares [bool]$Apply (plan passes $false)
    assert len([n for n in nodes_of(tree, "param_block") if n.parent.type == "program"]) == 1
    assert ParamDecl("Apply", "bool", False, False) in template_params(template_id)


@pytest.mark.parametrize("template_id", sorted(EXPECTED))
def test_param_reader_agrees_with_tree_sitter(template_id):
    text = render_template(template_id).text
    tree = parse(text)
    block = [n for n in nodes_of(tree, "param_block") if n.parent.type == "program"][0]
    names = []
    for p in nodes_of(tree, "script_parameter"):
        if p.parent.parent.id == block.id:
            var = [c for c in p.children if c.type == "variable"][0]
            names.append(text.encode()[var.start_byte:var.end_byte].decode()[1:])
    assert [d.name for d in template_params(template_id)] == names


@pytest.mark.parametrize("template_id", sorted(EXPECTED))
def test_template_ends_with_one_result_hashtable(template_id):
    """The last statement emits the result; every other cmdlet output is captured or discarded."""
    text = render_template(template_id).text
    last = text.rstrip().splitlines()[-1].strip()
    assert last in ("}", "$result"), last
    assert "changed" in text and "messages" in text


def test_secure_parameters_are_securestrings():
    decls = {d.name: d for d in template_params("sharepoint/spo_tenant_settings")}
    assert decls["Password"].secure and decls["Password"].type == "securestring"
    assert decls["AdminUrl"].mandatory and not decls["UserName"].mandatory
    assert decls["LegacyAuthProtocolsEnabled"].type == "nullable[bool]"
    assert {d.name for d in template_params("sharepoint/spo_module")} == {
        "Apply", "MinimumVersion", "SignIn", "Scope", "OfflineSourcePath"}


def test_param_reader_handles_attributes_defaults_and_comments():
    src = """
    <# param($NotThis) #>
    # param($NorThis)
    [CmdletBinding()]
    param(
        [Parameter(Mandatory = $true, HelpMessage = 'a, b (c)')]
        [ValidateSet('x', 'y')]
        [string]$First,
        [Parameter(Mandatory = $false)][System.Security.SecureString]$Second = $null,
        [Parameter(Mandatory)][string[]]$Third = @('a,b', 'c'),
        $Fourth = 'it''s, fine'
    )
    $x = 'param($Nope)'
    """
    assert parse_param_block(src) == [
        ParamDecl("First", "string", True, False),
        ParamDecl("Second", "system.security.securestring", False, True),
        ParamDecl("Third", "string[]", True, False),
        ParamDecl("Fourth", "object", False, False),
    ]


def test_unknown_template_names_the_choices():
    with pytest.raises(TemplateError) as e:
        render_template("sharepoint/nope")
    assert "sharepoint/spo_module" in str(e.value)
    with pytest.raises(TemplateError):
        render_template("../etc/passwd")


def test_templates_found_through_importlib_resources():
    """The loader reads package data, so an installed wheel finds the same files."""
    root = resources.files("ps_templates")
    for tid in EXPECTED:
        assert root.joinpath(*f"{tid}.ps1.j2".split("/")).is_file()
    assert root.joinpath("sharepoint", "app_permission_request.xml.j2").is_file()


# --------------------------------------------------------------------------- lint

QUOTING = {".ps1.j2": set(Q.QUOTING_FILTERS), ".xml.j2": {"xml_attr"}}
EXPR = re.compile(r"\{\{-?(.*?)-?\}\}", re.S)


def _lint(source: str, allowed: set[str]) -> list[str]:
    bad = []
    for m in EXPR.finditer(source):
        expr = m.group(1).strip()
        filters = [f.strip().split("(")[0].strip() for f in expr.split("|")[1:]]
        if not filters or filters[-1] not in allowed:
            bad.append(m.group(0))
    return bad


def test_lint_every_printed_value_goes_through_a_quoting_filter():
    root = resources.files("ps_templates")
    checked = 0
    for family in root.iterdir():
        if not family.is_dir() or family.name.startswith(("_", ".")):
            continue
        for f in family.iterdir():
            suffix = next((s for s in QUOTING if f.name.endswith(s)), None)
            if suffix is None:
                continue
            source = f.read_text(encoding="utf-8")
            assert _lint(source, QUOTING[suffix]) == [], f"{family.name}/{f.name}"
            checked += 1
            if suffix == ".ps1.j2":
                # param() blocks are static PowerShell: the runbook loader reads them unrendered
                block = source[source.lower().index("param("):]
                block = block[:block.index("\n)\n")]
                assert "{{" not in block and "{%" not in block, f.name
    assert checked == len(EXPECTED) + 1


def test_lint_catches_unquoted_and_wrongly_quoted_values():
    allowed = set(Q.QUOTING_FILTERS)
    assert _lint("$a = {{ name }}", allowed) == ["{{ name }}"]
    assert _lint("$a = {{ name | upper }}", allowed) == ["{{ name | upper }}"]
    assert _lint("$a = {{ name | ps_str | upper }}", allowed) == ["{{ name | ps_str | upper }}"]
    assert _lint("$a = {{- name | ps_str -}}; $b = {{ n|ps_int }}", allowed) == []


# --------------------------------------------------------------------------- quoting filters

HOSTILE = [
    "plain",
    "",
    "it's",
    "''",
    "'; Remove-Item C:\\ -Recurse; '",
    "\u2018smart\u2019 \u201alow\u201b",
    "'\u2019\u2018'\u201a",
    "$(Stop-Computer)",
    "${env:USERNAME} $env:PATH",
    "`n`t`$ backtick `' `\"",
    "a;b|c&d>e<f",
    "line1\nline2\r\nline3",
    "\"double\" quotes \"\"",
    "@' here-string '@",
    "#> <# comment tokens #",
    "unicode: ü ß 中文 🎉 \u200b \ufeff",
    "x" * 10240,
    ("'\u2019$(a)`\n" * 700),
]


@pytest.mark.parametrize("value", HOSTILE, ids=lambda v: repr(v[:20]))
def test_ps_str_is_one_string_literal_that_round_trips(value):
    literal = ps_str(value)
    script = f"$x = {literal}\n$y = 1\n"
    tree = parse(script)
    assert not error_nodes(tree)
    strings = nodes_of(tree, "string_literal")
    assert len(strings) == 1
    node = strings[0]
    assert script.encode()[node.start_byte:node.end_byte].decode() == literal
    assert powershell_single_quoted(literal) == value
    # nothing PowerShell would expand: no sub-expression or variable nodes inside
    assert not nodes_of(tree, "sub_expression")
    assert [n for n in nodes_of(tree, "variable")
            if script.encode()[n.start_byte:n.end_byte] not in (b"$x", b"$y")] == []


def test_round_trip_check_can_fail_on_naive_quoting():
    """Doubling only ASCII quotes is what this suite exists to catch."""
    naive = "'" + "a\u2019b".replace("'", "''") + "'"
    with pytest.raises(ValueError):
        powershell_single_quoted(naive)


def test_ps_str_doubles_every_powershell_quote():
    for q in Q.SINGLE_QUOTES:
        assert ps_str(f"a{q}b") == f"'a{q}{q}b'"


@pytest.mark.parametrize("bad", [1, 1.5, None, True, b"x", ["a"], Secret("hush-hush"), Unknown("stages.x")])
def test_ps_str_rejects_non_strings(bad):
    with pytest.raises(Q.QuotingError):
        ps_str(bad)


def test_ps_str_rejects_nul():
    with pytest.raises(Q.QuotingError):
        ps_str("a\x00b")


def test_ps_bool_and_ps_int():
    assert ps_bool(True) == "$true" and ps_bool(False) == "$false"
    for bad in (1, 0, "true", None, "False"):
        with pytest.raises(Q.QuotingError):
            ps_bool(bad)
    assert ps_int(42) == "42" and ps_int(-7) == "-7" and ps_int(2**40) == str(2**40)
    for bad in (True, 1.0, "1", None, "1; rm"):
        with pytest.raises(Q.QuotingError):
            ps_int(bad)


def test_ps_array_quotes_each_item():
    rendered = ps_array(["it's", 3, False, "$(x)"])
    assert rendered == "@('it''s', 3, $false, '$(x)')"
    tree = parse(f"$a = {rendered}\n")
    assert not error_nodes(tree)
    assert len(nodes_of(tree, "string_literal")) == 2
    assert ps_array([]) == "@()"
    for bad in ("abc", {"a": 1}, [None], [1.5], [["nested"]], [Secret("hush-hush")]):
        with pytest.raises(Q.QuotingError):
            ps_array(bad)


# --------------------------------------------------------------------------- render errors

def _temp_template(tmp_path, monkeypatch, name: str, body: str) -> str:
    """A throwaway template package so render errors can be provoked without touching ps_templates."""
    package = f"tmp_ps_templates_{name}"   # a fresh name: importlib caches packages by name
    pkg = tmp_path / package
    (pkg / "fam").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "fam" / f"{name}.ps1.j2").write_text(body)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(T, "PACKAGE", package)
    T._environment.cache_clear()
    return f"fam/{name}"


@pytest.fixture
def fresh_env():
    T._environment.cache_clear()
    yield
    T._environment.cache_clear()


def test_undefined_variable_names_template_and_line(tmp_path, monkeypatch, fresh_env):
    tid = _temp_template(tmp_path, monkeypatch, "undef", "param([bool]$Apply)\n\n$a = 1\n$b = {{ missing | ps_str }}\n")
    with pytest.raises(TemplateError) as e:
        render_template(tid)
    assert e.value.fields["template"] == tid and e.value.fields["line"] == 4
    assert "line 4" in str(e.value) and "missing" in str(e.value)


def test_filter_refusal_names_line(tmp_path, monkeypatch, fresh_env):
    tid = _temp_template(tmp_path, monkeypatch, "quote", "param([bool]$Apply)\n$b = {{ n | ps_int }}\n")
    with pytest.raises(TemplateError) as e:
        render_template(tid, {"n": "1; Remove-Item"})
    assert e.value.fields["line"] == 2 and "ps_int" in str(e.value)


def test_syntax_error_names_line(tmp_path, monkeypatch, fresh_env):
    tid = _temp_template(tmp_path, monkeypatch, "syntax", "param([bool]$Apply)\n{% if %}\n")
    with pytest.raises(TemplateError) as e:
        render_template(tid)
    assert e.value.fields["line"] == 2


def test_secret_template_variable_is_refused(tmp_path, monkeypatch, fresh_env):
    tid = _temp_template(tmp_path, monkeypatch, "sec", "param([bool]$Apply)\n$b = {{ p | ps_str }}\n")
    with pytest.raises(TemplateError) as e:
        render_template(tid, {"p": Secret("Very-Secret-1")})
    assert "Very-Secret-1" not in str(e.value) and "secret" in str(e.value)


# --------------------------------------------------------------------------- permission XML

@pytest.mark.parametrize("scope", T.ALLOWED_SCOPES)
@pytest.mark.parametrize("right", T.ALLOWED_RIGHTS)
@pytest.mark.parametrize("app_only", [True, False])
def test_permission_xml_parses_and_says_what_was_asked(scope, right, app_only):
    xml = render_permission_xml(scope, right, app_only)
    root = ET.fromstring(xml)
    assert root.tag == "AppPermissionRequests"
    assert root.get("AllowAppOnlyPolicy") == ("true" if app_only else "false")
    (req,) = list(root)
    assert req.tag == "AppPermissionRequest" and req.get("Scope") == scope and req.get("Right") == right


def test_permission_xml_matches_the_vendor_procedure():
    xml = render_permission_xml("http://sharepoint/content/tenant", "FullControl", True)
    assert xml == ('<AppPermissionRequests AllowAppOnlyPolicy="true">\n'
                   '  <AppPermissionRequest Scope="http://sharepoint/content/tenant" Right="FullControl" />\n'
                   '</AppPermissionRequests>\n')


@pytest.mark.parametrize("scope,right,app_only,bad", [
    ("http://sharepoint/content/tenant\" Right=\"FullControl", "Read", True, "scope"),
    ("http://sharepoint/social/tenant", "Read", True, "scope"),
    ("http://sharepoint/content/tenant", "FullControl\"/><x a=\"", True, "right"),
    ("http://sharepoint/content/tenant", "fullcontrol", True, "right"),
    ("http://sharepoint/content/tenant", "Read", "true", "app_only"),
])
def test_permission_xml_rejects_values_outside_the_allowed_sets(scope, right, app_only, bad):
    with pytest.raises(TemplateError) as e:
        render_permission_xml(scope, right, app_only)
    assert e.value.input == bad


def test_xml_attr_escapes():
    assert Q.xml_attr('a"<b>&\'') == "\"a&quot;&lt;b&gt;&amp;'\""
    ET.fromstring(f"<x a={Q.xml_attr(chr(34) + '<&>')} />")


def test_spo_module_offline_branch_reaches_nothing_on_the_internet():
    """With OfflineSourcePath the install branch calls nothing that bootstraps the NuGet
    provider or asks a repository: a truly offline host fails at the first such call."""
    text = render_template("sharepoint/spo_module").text
    start = text.index("elseif ($OfflineSourcePath) {")
    branch = text[start:text.index("\n}\n", start)]
    assert "ZipFile]::ExtractToDirectory" in branch
    for cmdlet in ("Install-PackageProvider", "Get-PackageProvider", "Install-Module", "Register-PSRepository",
                   "Find-Module", "Invoke-WebRequest", "Save-Module"):
        assert cmdlet not in branch, cmdlet
