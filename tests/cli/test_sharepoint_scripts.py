"""sharepoint-scripts writes, in each script's comment help, the exact command lines that run it
(issue 12 item 10): values given to the runbook quoted, a password read at the prompt, and
the script still a valid PowerShell file."""

from __future__ import annotations

import json

import pytest

from tests.cli.test_keyboard import invoke

tree_sitter = pytest.importorskip("tree_sitter")
tree_sitter_powershell = pytest.importorskip("tree_sitter_powershell")
PARSER = tree_sitter.Parser(tree_sitter.Language(tree_sitter_powershell.language()))


def has_error(text: str) -> bool:
    def walk(n) -> bool:
        return n.type == "ERROR" or n.is_missing or any(walk(c) for c in n.children)
    return walk(PARSER.parse(text.encode("utf-8")).root_node)


def examples(text: str) -> list[str]:
    lines = text.splitlines()
    return [lines[i + 1].strip() for i, ln in enumerate(lines) if ln == ".EXAMPLE"]


def test_each_script_says_how_to_run_it(tmp_path):
    dest = tmp_path / "scripts"
    r = invoke("run", "sharepoint-scripts", "-p", f"dest={dest}", "-p", "admin_url=https://contoso-admin.sharepoint.com",
               "-p", "spo_user=o'brien@contoso.onmicrosoft.com", "--yes", "-o", "json", "-q",
               env={"PSRUNNER_STATE_DIR": str(tmp_path / "state")})
    assert r.exit_code == 0, r.output
    settings = ".\\spo_tenant_settings.ps1 -AdminUrl 'https://contoso-admin.sharepoint.com' " \
               "-UserName 'o''brien@contoso.onmicrosoft.com' -Password (Read-Host -AsSecureString 'Password') " \
               "-LegacyAuthProtocolsEnabled $true -DisableCustomAppAuthentication $false"
    assert {p.name: examples(p.read_text()) for p in dest.iterdir()} == {
        "spo_module.ps1": [".\\spo_module.ps1 -Apply $false", ".\\spo_module.ps1 -Apply $true"],
        "spo_tenant_settings.ps1": [settings + " -Apply $false", settings + " -Apply $true"],
        "host_facts.ps1": [".\\host_facts.ps1"],
    }
    for script in dest.iterdir():
        text = script.read_text()
        assert not has_error(text), script.name                      # still one valid script
        assert all(not has_error(line) for line in examples(text))    # and so is each command line
        assert text.startswith("# psrunner-template: ")
    stages = {s["id"]: s for s in json.loads(r.output)["stages"]}
    assert stages["settings-script"]["outputs"]["command"] == settings + " -Apply $true"
    assert stages["settings-script"]["messages"][-1] == f"on the host, from its folder: {settings} -Apply $true"


def test_without_the_values_the_command_line_says_what_to_put_in(tmp_path):
    dest = tmp_path / "scripts"
    r = invoke("run", "sharepoint-scripts", "-p", f"dest={dest}", "--yes", "-q",
               env={"PSRUNNER_STATE_DIR": str(tmp_path / "state")})
    assert r.exit_code == 0, r.output
    assert examples((dest / "spo_tenant_settings.ps1").read_text())[1] == (
        ".\\spo_tenant_settings.ps1 -AdminUrl <AdminUrl> -LegacyAuthProtocolsEnabled $true "
        "-DisableCustomAppAuthentication $false -Apply $true")


def test_an_argument_the_script_does_not_take_is_refused_before_anything_is_written(tmp_path):
    book = tmp_path / "scripts.toml"
    book.write_text('name = "scripts"\ntitle = "S"\n[[stages]]\nid = "s"\nkind = "local.script_file"\n'
                    'template = "sharepoint/spo_module"\n'
                    f'inputs = {{ path = "{tmp_path}/m.ps1", arguments = {{ MinimumVerson = "16.0" }} }}\n')
    r = invoke("run", str(book), "--yes", env={"PSRUNNER_STATE_DIR": str(tmp_path / "state")})
    assert r.exit_code == 2
    assert r.output == ("error: stages.s.inputs.arguments: template sharepoint/spo_module has no parameter "
                        "'MinimumVerson'\n  fix: did you mean MinimumVersion? its parameters: MinimumVersion, SignIn, Scope, OfflineSourcePath\n")
    assert not (tmp_path / "m.ps1").exists() and not (tmp_path / "state" / "runs").exists()
