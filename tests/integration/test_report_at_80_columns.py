"""The plan a careful admin reads on an 80-column terminal (issue 12 item 4): wrapped to the
width, each distinct warning once, the platform notices told once and pointed to, the
permissions it would grant or change listed API by API."""

from __future__ import annotations

import json

from tests.terminal import psrunner


def plan_at_80(args, env, *extra):
    r = psrunner("plan", "m365-backup-access", *args, *extra, env={**env, "COLUMNS": "80"})
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_the_plan_fits_80_columns_and_says_each_thing_once(lab):
    world, tenant, host, args, env, _ = lab
    out = plan_at_80(args, env)
    lines = out.splitlines()
    # only what cannot be broken is wider: a URL, a path alone on its line, XML to paste as it is
    assert [ln for ln in lines if len(ln) > 80 and "https://" not in ln and "<App" not in ln
             and " " in ln.strip()] == []
    # the stage table: the stage on one line, what it did under it
    i = lines.index("  ok              preflight")
    assert lines[i + 1].startswith("      signed in to tenant ")
    # the ACS retirement: told once in full (the notices), and the stage it makes obsolete says
    # so in one sentence, with no warning or action beside it
    flat = " ".join(out.split())                           # the words, whatever the wrapping
    assert flat.count("Grants made through appinv.aspx (ACS app-only) no longer give SharePoint Online") == 1
    assert flat.count("skipped as obsolete: SharePoint Online has ignored appinv.aspx (ACS app-only) grants "
                      "since 2026-04-02") == 1
    assert 'platform notice "Azure ACS app-only for SharePoint Online retired"' not in flat
    warnings = [ln.strip() for ln in lines if ln.strip().startswith("warning: ")]
    assert len(warnings) == len(set(warnings))
    # with the manual steps asked for, the stage and the action point to the notice, told once
    flat = " ".join(plan_at_80(args, env, "-p", "appinv_manual_steps=true").split())
    assert flat.count("Grants made through appinv.aspx (ACS app-only) no longer give SharePoint Online") == 1
    assert flat.count('warning: platform notice "Azure ACS app-only for SharePoint Online retired"') == 1
    assert flat.count('note: see the platform notice "Azure ACS app-only for SharePoint Online retired" below') == 1
    # what consent would grant, API by API, not just "46"
    assert "  Permissions: 46 would-grant" in lines
    assert "    to grant on Office 365 Exchange Online (1): full_access_as_app" in lines
    assert ("    to grant on Office 365 SharePoint Online (5): Sites.FullControl.All,\n"
            "      Sites.Manage.All, Sites.Read.All, Sites.ReadWrite.All, User.ReadWrite.All") in out
    assert "    to grant on Microsoft Graph (40): Calendars.ReadWrite, Channel.Create," in lines


def test_a_plan_lists_the_permissions_it_would_add_api_by_api(lab):
    world, tenant, host, args, env, _ = lab
    assert psrunner("run", "m365-backup-access", *args, "--yes", "-q", env=env).returncode == 0
    with tenant.state.lock:
        (app,) = [a for a in tenant.state.applications.values() if a.get("uniqueName") == "m365-backup-access"]
        for entry in app["requiredResourceAccess"]:      # one permission less on every API
            entry["resourceAccess"].pop(0)
    r = psrunner("plan", "m365-backup-access", *args, "-o", "json", "-q", env=env)
    (stage,) = [s for s in json.loads(r.stdout)["stages"] if s["id"] == "application"]
    assert stage["messages"] == [
        "would add 3 permission(s): Microsoft Graph: Calendars.ReadWrite; Office 365 Exchange Online: "
        "full_access_as_app; Office 365 SharePoint Online: Sites.FullControl.All"]


def test_without_a_terminal_nothing_is_wrapped(lab):
    world, tenant, host, args, env, _ = lab
    r = psrunner("plan", "m365-backup-access", *args, env={k: v for k, v in env.items() if k != "COLUMNS"})
    assert "  ok              preflight          signed in to tenant " in r.stdout   # a log keeps one line
