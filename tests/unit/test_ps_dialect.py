"""Templates that run under Windows PowerShell 5.1 use only its dialect (issue 10 item 7)."""

from __future__ import annotations

import pytest

from runner.powershell.templates import list_templates, render_template
from tests.ps_dialect import lint_51, runs_under_51


@pytest.mark.parametrize("template_id", sorted(list_templates()))
def test_templates_that_run_under_51_use_only_its_dialect(template_id):
    text = render_template(template_id).text
    if runs_under_51(text):
        assert [str(f) for f in lint_51(text)] == []


@pytest.mark.parametrize("line, construct", [
    ("$a = $b ?? 'x'", "'??' null-coalescing operator (PowerShell 7.0)"),
    ("$a ??= 'x'", "'??' null-coalescing operator (PowerShell 7.0)"),
    ("$n = $user?.Name", "'?.' / '?[]' null-conditional access (PowerShell 7.0)"),
    ("$n = ${list}?[0]", "'?.' / '?[]' null-conditional access (PowerShell 7.0)"),
    ("$n = $ok ? 'yes' : 'no'", "ternary operator 'a ? b : c' (PowerShell 7.0)"),
    ("Get-Service x && Restart-Service x", "'&&' pipeline chain (PowerShell 7.0)"),
    ("Get-Service x || Write-Error 'gone'", "'||' pipeline chain (PowerShell 7.0)"),
    ("1..3 | ForEach-Object -Parallel { $_ }", "ForEach-Object -Parallel (PowerShell 7.0)"),
    ("1..3 | % -Par { $_ } -ThrottleLimit 2", "ForEach-Object -Parallel (PowerShell 7.0)"),
    ("$h = $json | ConvertFrom-Json -AsHashtable", "ConvertFrom-Json -AsHashtable (PowerShell 6.0)"),
    ("$h = ConvertFrom-Json $json -AsHash", "ConvertFrom-Json -AsHashtable (PowerShell 6.0)"),
    ("function F {\n  process { $_ }\n  clean { Remove-Item $tmp }\n}", "'clean {}' block (PowerShell 7.3)"),
    ("param($a)\nprocess { $_ }\nclean { 1 }", "'clean {}' block (PowerShell 7.3)"),
    ('$s = "total: $($count ?? 0)"', "'??' null-coalescing operator (PowerShell 7.0)"),
])
def test_each_powershell_7_construct_is_named_with_its_line(line, construct):
    script = "$x = 1\n" + line + "\n"
    findings = lint_51(script)
    assert [f.construct for f in findings] == [construct], findings
    where = findings[0]
    assert where.line > 1 and where.text == script.splitlines()[where.line - 1].strip()
    assert "clean" not in construct or where.text.startswith("clean")


@pytest.mark.parametrize("script", [
    "Get-Process | ? { $_.Id -gt 4 } | % { $_.Name }",            # ? and % are aliases in 5.1
    "# a ?? b && c ? d : e  and ForEach-Object -Parallel\n$a = 1",  # a comment
    "$s = 'x ?? y && z'; $t = \"a || b ? c : d\"",                     # string text
    "$h = ConvertFrom-Json $json; $p = Get-Item a?b",                 # 5.1 forms and a wildcard
    "1..3 | ForEach-Object -Process { $_ } -End { 'done' }",
    "if ($a -and $b) { $c = if ($d) { 1 } else { 2 } }",
    "$clean = 1; Write-Output clean",
    "$x = $null; if ($null -eq $x) { $x = 'default' }",
])
def test_windows_powershell_51_forms_pass(script):
    assert lint_51(script) == []


def test_a_template_that_requires_powershell_7_is_left_to_7():
    assert not runs_under_51("#Requires -Version 7.2\nparam()\n$a = $b ?? 1")
    assert not runs_under_51("#requires -PSEdition Core\n$a = 1")
    assert runs_under_51("#Requires -Version 5.1\n$a = 1")
    assert runs_under_51("$a = 1")
