"""The runbook catalog: search order, first-wins with shadows, templates beside a runbook and
confined to its folder, audiences, and what `list` / `show` print about it."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from runner.api import list_runbooks, load_runbook, render
from runner.catalog import Catalog, search_path
from runner.cli import cli
from runner.errors import ParamError, RunbookError

TEMPLATE = '''param(
    [Parameter(Mandatory)][string]$Identity,
    [bool]$Apply
)
$result = @{ changed = $false; data = @{ identity = $Identity } }
$result
'''


def runbook_text(name: str, *, title: str = "Mine", audience: str = '"helpdesk"', template: str | None = None) -> str:
    text = f'name = "{name}"\ntitle = "{title}"\naudience = {audience}\n'
    text += '[params.identity]\ntype = "str"\nrequired = true\nexample = "jdoe"\nhelp = "the account"\n'
    text += '[params.host]\ntype = "str"\nrequired = true\n'
    text += '[targets.host]\ntype = "psrp"\nhost = "${params.host}"\n'
    if template:
        text += (f'[[stages]]\nid = "look"\nkind = "powershell.template"\ntemplate = "{template}"\n'
                 'inputs = { Identity = "${params.identity}" }\n')
    else:
        text += '[[stages]]\nid = "note"\nkind = "local.notice"\n'
    return text


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_search_path_order(tmp_path, monkeypatch):
    env = {"PSRUNNER_RUNBOOKS": os.pathsep.join([str(tmp_path / "e1"), str(tmp_path / "e2")])}
    got = [(d.origin, d.path) for d in search_path([tmp_path / "cli"], env)]
    assert got == [("--runbooks", tmp_path / "cli"), ("PSRUNNER_RUNBOOKS", tmp_path / "e1"),
                   ("PSRUNNER_RUNBOOKS", tmp_path / "e2"), ("user", tmp_path / "config/psrunner/runbooks"),
                   ("system", tmp_path / "etc-xdg/psrunner/runbooks"), ("built-in", None)]


def test_first_on_the_path_wins_and_show_says_what_it_hides(tmp_path, monkeypatch):
    mine = write(tmp_path / "cli" / "sharepoint-scripts.toml", runbook_text("sharepoint-scripts", title="Ours"))
    env_rb = write(tmp_path / "env" / "sharepoint-scripts" / "sharepoint-scripts.toml",
                   runbook_text("sharepoint-scripts", title="Env's"))
    write(tmp_path / "config/psrunner/runbooks/only-user.toml", runbook_text("only-user", audience='"admin"'))
    monkeypatch.setenv("PSRUNNER_RUNBOOKS", str(tmp_path / "env"))
    cat = Catalog([tmp_path / "cli"])
    by_name = {e.name: e for e in cat.entries()}
    assert by_name["sharepoint-scripts"].title == "Ours" and by_name["sharepoint-scripts"].origin == "--runbooks"
    assert by_name["sharepoint-scripts"].shadows == (str(env_rb.resolve()), "builtin:sharepoint-scripts")
    assert by_name["only-user"].origin == "user"
    rb = cat.load("sharepoint-scripts")
    assert (rb.title, rb.source, rb.origin) == ("Ours", str(mine.resolve()), "--runbooks")
    assert cat.load("builtin:sharepoint-scripts").origin == "built-in"      # resume finds the original
    # without --runbooks the environment's copy wins
    assert Catalog().load("sharepoint-scripts").title == "Env's"

    r = CliRunner().invoke(cli, ["show", "sharepoint-scripts", "--runbooks", str(tmp_path / "cli")])
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert lines[:4] == ["sharepoint-scripts: Ours", "audience: helpdesk",
                         f"source: {mine.resolve()} (--runbooks)", f"shadows: {env_rb.resolve()}"]
    assert lines[4] == "shadows: builtin:sharepoint-scripts"
    assert lines[-2:] == ["Example:", f"  psrunner run sharepoint-scripts --runbooks {tmp_path / 'cli'} "
                                      "-p identity=jdoe -p host=HOST"]


def test_list_by_audience_and_unreadable_runbooks_are_listed_not_fatal(tmp_path, monkeypatch):
    write(tmp_path / "rb" / "look.toml", runbook_text("look", audience='["helpdesk", "scheduled"]'))
    write(tmp_path / "rb" / "broken.toml", 'name = "broken"\ntitle = \n')
    write(tmp_path / "rb" / "misnamed.toml", runbook_text("other"))
    monkeypatch.setenv("PSRUNNER_RUNBOOKS", str(tmp_path / "rb"))
    assert [e.name for e in list_runbooks(audience="scheduled") if e.origin != "built-in"] == ["look"]
    assert "look" not in [e.name for e in list_runbooks(audience="admin")]
    r = CliRunner().invoke(cli, ["list"])
    assert r.exit_code == 0
    lines = {ln.split()[0]: ln for ln in r.output.splitlines()}
    assert re.split(r"\s{2,}", lines["look"]) == ["look", "helpdesk,scheduled", "Mine", "[PSRUNNER_RUNBOOKS]"]
    assert "(cannot be read: not valid TOML" in lines["broken"]
    assert "(cannot be read: the file names runbook 'other'" in lines["misnamed"]
    assert lines["sharepoint-scripts"].rstrip().endswith("manual use")   # built-ins carry no mark
    items = json.loads(CliRunner().invoke(cli, ["list", "-o", "json", "--audience", "helpdesk"]).output)
    assert [(i["name"], i["audiences"], i["origin"]) for i in items if i["origin"] != "built-in"] == \
        [("look", ["helpdesk", "scheduled"], "PSRUNNER_RUNBOOKS")]
    with pytest.raises(RunbookError, match="not valid TOML"):
        load_runbook("broken")
    with pytest.raises(RunbookError, match="names runbook 'other'"):
        load_runbook("misnamed")
    r = CliRunner().invoke(cli, ["list", "--audience", "nobody"])
    assert r.exit_code == 2 and "nobody" in r.output


def test_a_template_beside_the_runbook(tmp_path):
    write(tmp_path / "rb" / "mine" / "look.ps1.j2", TEMPLATE)
    write(tmp_path / "rb" / "mine" / "mine.toml", runbook_text("mine", template="look.ps1.j2"))
    rb = load_runbook("mine", [tmp_path / "rb"])
    assert rb.stages[0].template == str((tmp_path / "rb/mine/look.ps1.j2").resolve())
    script = render(rb, "look")
    assert script.splitlines()[0] == "# psrunner-template: local/look"     # the host sees no local path
    assert "$Identity" in script
    r = CliRunner().invoke(cli, ["show", "mine", "--runbooks", str(tmp_path / "rb")])
    assert "   1. look                     look  [look.ps1.j2]" in r.output.splitlines()


@pytest.mark.parametrize("template, message", [
    ("../outside.ps1.j2", "is outside the runbook's folder"),
    ("/etc/outside.ps1.j2", "is outside the runbook's folder"),
    ("link.ps1.j2", "is outside the runbook's folder"),
    ("missing.ps1.j2", "no template file 'missing.ps1.j2' beside the runbook"),
])
def test_a_template_never_outside_the_runbook_folder(tmp_path, template, message):
    outside = write(tmp_path / "rb" / "outside.ps1.j2", TEMPLATE)
    (tmp_path / "rb" / "mine").mkdir(parents=True)
    (tmp_path / "rb" / "mine" / "link.ps1.j2").symlink_to(outside)
    write(tmp_path / "rb" / "mine" / "mine.toml", runbook_text("mine", template=template))
    with pytest.raises(RunbookError) as e:
        load_runbook(str(tmp_path / "rb" / "mine" / "mine.toml"))
    assert message in str(e.value) and "stages.look.template" in str(e.value)


def test_a_template_file_needs_a_runbook_file():
    from runner.runbook_loader import parse
    with pytest.raises(RunbookError, match="needs a runbook file in a folder"):
        parse(runbook_text("mine", template="look.ps1.j2"))


def test_unknown_name_names_the_catalog(tmp_path):
    with pytest.raises(ParamError) as e:
        load_runbook("nope")
    assert "psrunner list" in e.value.hint
