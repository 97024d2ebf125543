"""Runbook loading: every mistake is caught at load time with the file, key and the fix."""

from __future__ import annotations

import pytest

from runner.errors import RunbookError
from runner.conditions import evaluate_condition
from runner.catalog import Catalog, builtin_names
from runner.runbook_loader import parse

GOOD = '''
name = "t"
title = "Test"
[params.dest]
type = "str"
required = true
[params.mode]
type = "choice"
choices = ["a", "b"]
default = "a"
[[stages]]
id = "one"
kind = "local.file"
inputs = { path = "${params.dest}/x", content = "hi" }
[[stages]]
id = "two"
kind = "local.file"
when = "params.mode == 'b' and stages.one.status != 'failed'"
inputs = { path = "${stages.one.outputs.path}.copy", content = "x" }
'''


def test_a_good_runbook_loads_with_its_parts():
    rb = parse(GOOD, "t.toml")
    assert [s.id for s in rb.stages] == ["one", "two"]
    assert rb.params["mode"].choices == ("a", "b")
    assert rb.stages[1].when.startswith("params.mode")


@pytest.mark.parametrize("mutate, message", [
    (lambda t: t.replace('title = "Test"', 'title = "Test"\ncolour = "red"'),
     "t.toml: colour: unknown key"),
    (lambda t: t.replace('kind = "local.file"\ninputs = { path = "${params.dest}/x"',
                         'kind = "local.flie"\ninputs = { path = "${params.dest}/x"'),
     "t.toml: stages.one.kind: 'local.flie' is not a stage kind"),
    (lambda t: t.replace('type = "choice"', 'type = "colour"'),
     "t.toml: params.mode.type: 'colour' is not a parameter type"),
    (lambda t: t.replace("${params.dest}/x", "${params.dst}/x"),
     "t.toml: stages.one.inputs: reference ${params.dst} names no parameter"),
    (lambda t: t.replace("${stages.one.outputs.path}", "${stages.three.outputs.path}"),
     "t.toml: stages.two.inputs: reference ${stages.three.outputs.path} names no earlier stage output"),
    (lambda t: t.replace("params.mode == 'b'", "__import__('os')"),
     "t.toml: stages.two.when: condition \"__import__('os')"),
    (lambda t: t.replace('id = "two"', 'id = "one"'),
     "t.toml: stages.one.id: duplicate stage id 'one'"),
    (lambda t: t.replace('default = "a"', 'default = "c"'),
     "t.toml: params.mode.default: default does not fit the parameter"),
    (lambda t: t + '\n[[stages]]\nid = "three"\nkind = "local.file"\non_failure = "retry"\n',
     "t.toml: stages.three.on_failure: 'retry' is not allowed"),
    (lambda t: t.replace('name = "t"', 'name = "t"\n[['), "t.toml: not valid TOML"),
    (lambda t: t.replace('title = "Test"', 'title = "Test"\napproval = ["admin"]'),
     "t.toml: approval: ['admin'] is not a role name"),
    (lambda t: t.replace('title = "Test"', 'title = "Test"\napproval = "two admins"'),
     "t.toml: approval: 'two admins' is not a role name"),
    (lambda t: t + '\n[targets.host]\ntype = "psrp"\nhost = "x"\nwhen = "params.hots != \'\'"\n',
     "t.toml: targets.host.when: condition \"params.hots != ''\" names no parameter 'hots'"),
    (lambda t: t + '\n[targets.host]\ntype = "psrp"\nhost = "x"\nunused = "no host"\n',
     "t.toml: targets.host.unused: a sentence for a target with a `when`"),
    (lambda t: t.replace('id = "two"', 'id = "two"\nconcurrent = true'),
     "t.toml: stages.two.concurrent: runs alongside stage 'one' but uses what it leaves"),
    (lambda t: t.replace('id = "one"', 'id = "one"\nconcurrent = true'),
     "t.toml: stages.one.concurrent: the first stage has no stage to run alongside"),
    (lambda t: t.replace('id = "two"', 'id = "two"\nconcurrent = "yes"'),
     "t.toml: stages.two.concurrent: must be true or false"),
    (lambda t: t + '\n[[stages]]\nid = "three"\nkind = "local.file"\nconcurrent = true\n'
                   'when = "stages.one.status == \'ok\'"\n'
                   '[[stages]]\nid = "four"\nkind = "local.file"\nconcurrent = true\n'
                   'when = "stages.two.status == \'ok\'"\n',
     "t.toml: stages.four.concurrent: runs alongside stage 'two' but uses what it leaves"),
])
def test_mistakes_name_the_file_and_key(mutate, message):
    with pytest.raises(RunbookError) as e:
        parse(mutate(GOOD), "t.toml")
    assert str(e.value).startswith(message), str(e.value)
    assert e.value.exit_code == 2


def test_a_concurrent_stage_may_use_what_the_stages_before_its_group_left():
    text = GOOD + ('\n[[stages]]\nid = "three"\nkind = "local.file"\nconcurrent = true\n'
                   'when = "stages.one.status == \'ok\'"\ninputs = { path = "${stages.one.outputs.path}.3" }\n')
    rb = parse(text, "t.toml")
    assert [(s.id, s.concurrent) for s in rb.stages] == [("one", False), ("two", False), ("three", True)]
    assert rb.stages[2].to_dict()["concurrent"] is True and "concurrent" not in rb.stages[1].to_dict()


def test_approval_names_the_role_that_approves_and_show_says_so():
    from runner.render_text import show
    rb = parse(GOOD.replace('title = "Test"', 'title = "Test"\napproval = "admin"'), "t.toml")
    assert rb.approval == "admin" and rb.to_dict()["approval"] == "admin"
    assert "approval: in the portal a run waits for a member of admin (not the requester)" in show(rb)
    assert parse(GOOD, "t.toml").approval is None


def test_template_stage_needs_a_known_template():
    text = GOOD + '\n[[stages]]\nid = "s"\nkind = "local.script_file"\ntemplate = "sharepoint/nope"\n'
    with pytest.raises(RunbookError) as e:
        parse(text, "t.toml")
    assert "stages.s.template: no template 'sharepoint/nope'" in str(e.value)
    assert "sharepoint/spo_module" in str(e.value)  # the fix lists what exists


def test_remote_kind_needs_a_target_of_its_type():
    text = GOOD + '\n[[stages]]\nid = "app"\nkind = "graph.application"\n'
    with pytest.raises(RunbookError) as e:
        parse(text, "t.toml")
    assert "stages.app.target: stage kind graph.application needs a graph target" in str(e.value)


def test_every_builtin_runbook_loads():
    assert "sharepoint-scripts" in builtin_names()
    for name in builtin_names():
        assert Catalog(environ={}).load(name).name == name


@pytest.mark.parametrize("expr, expected", [
    ("params.mode == 'b'", True),
    ("params.mode in ['a', 'c']", False),
    ("not params.flag", False),
    ("stages.one.status == 'ok' or params.flag", True),
    ("params.mode != 'b' and params.flag", False),
])
def test_conditions(expr, expected):
    scope = {"params": {"mode": "b", "flag": True}, "stages": {"one": {"status": "changed"}}}
    assert evaluate_condition(expr, scope) is expected


def test_template_stage_inputs_must_be_template_parameters():
    base = GOOD + '\n[targets.h]\ntype = "psrp"\nhost = "x"\n[[stages]]\nid = "m"\nkind = "powershell.template"\ntemplate = "sharepoint/spo_module"\n'
    with pytest.raises(RunbookError) as e:
        parse(base + 'inputs = { MinimumVersin = "1.0" }\n', "t.toml")
    assert str(e.value).startswith("t.toml: stages.m.inputs.MinimumVersin: template sharepoint/spo_module has no parameter 'MinimumVersin'")
    assert "MinimumVersion" in e.value.hint
    with pytest.raises(RunbookError) as e:
        parse(base + 'inputs = { Apply = true }\n', "t.toml")
    assert "Apply is set by psrunner" in str(e.value)
    assert parse(base + 'inputs = { MinimumVersion = "1.0" }\n', "t.toml").stage("m").template == "sharepoint/spo_module"


NOTICE = '''
[[notices]]
id = "n"
title = "Something retired"
date = "2026-04-02"
says = "It stopped."
instead = "Use the other thing."
'''


def test_a_notice_without_the_source_of_its_date_is_refused():
    with pytest.raises(RunbookError) as e:
        parse(GOOD + NOTICE, "t.toml")
    assert str(e.value).startswith("t.toml: notices[0].source: is required"), str(e.value)


def test_show_prints_each_notice_with_its_source():
    from runner.render_text import show
    rb = parse(GOOD + NOTICE + 'source = "Microsoft Learn, the retirement page"\n', "t.toml")
    assert rb.to_dict()["notices"][0]["source"] == "Microsoft Learn, the retirement page"
    lines = show(rb).splitlines()
    i = lines.index("  - 2026-04-02: Something retired")
    assert lines[i + 1] == "      source: Microsoft Learn, the retirement page"


def test_a_notice_is_borrowed_from_a_built_in_runbook_by_its_id():
    main = {n.id: n for n in Catalog().load("m365-backup-access").notices}
    rb = parse(GOOD + '[[notices]]\nid = "idcrl-blocked"\nof = "m365-backup-access"\n', "t.toml")
    assert rb.notices == (main["idcrl-blocked"],)                  # the one text, not a copy to keep up
    for spec, where, msg in [
            ('id = "nope"\nof = "m365-backup-access"', "notices[0].id", "built-in runbook m365-backup-access has no notice 'nope'"),
            ('id = "idcrl-blocked"\nof = "../m365-backup-access"', "notices[0].of", "'../m365-backup-access' is not a built-in runbook"),
            ('id = "idcrl-blocked"\nof = "m365-backup-access"\ndate = "2026-05-02"', "notices[0].date", "unknown key")]:
        with pytest.raises(RunbookError) as e:
            parse(GOOD + "[[notices]]\n" + spec + "\n", "t.toml")
        assert str(e.value).startswith(f"t.toml: {where}: {msg}"), str(e.value)


def test_the_main_runbook_notices_carry_the_dates_and_names_their_sources_give():
    """Dates and names as the sources cited in each notice give them (issue 10 item 10)."""
    rb = Catalog().load("m365-backup-access")
    n = {x.id: x for x in rb.notices}
    assert n["aad-graph-row"].date == "2025-07-01" and "fully retired" in n["aad-graph-row"].says
    assert "microsoft-entra-blog" in n["aad-graph-row"].source
    assert "EWSEnabled" in n["ews-off"].says and "EWSAllowedAppIDs" in n["ews-off"].says
    assert "end of August 2026" in n["ews-off"].says
    assert "several weeks" in n["idcrl-blocked"].says
    assert "AllowLegacyAuthProtocolsEnabledSetting" in n["idcrl-blocked"].says
    assert "MC1184649" in n["idcrl-blocked"].source
    assert all(x.source.strip() for x in rb.notices)


def test_the_main_runbook_defaults_to_both_credentials_and_the_legacy_setting_the_platform_keeps():
    """Issue 10 item 5: credential defaults to both (the vendor's form wants the secret,
    SharePoint Online app-only a certificate) and legacy_auth to false, so a run with the
    defaults settles instead of asking the platform for what it refuses for good; the
    appinv.aspx steps on SharePoint Online are asked for, never the default."""
    p = Catalog().load("m365-backup-access").params
    assert p["credential"].default == "both" and p["legacy_auth"].default is False
    assert p["appinv_manual_steps"].default is False
