"""Offboarding as an admin does it, with the params file written for onboarding (issue 12
item 7): what does not apply is ignored with one note, the app and the private files that
held its secret and PFX go, and the report says what is left as it was."""

from __future__ import annotations

import json

from tests.terminal import psrunner

LEFT = [
    "left as it is: the SharePoint tenant settings m365-backup-access set (LegacyAuthProtocolsEnabled, "
    "DisableCustomAppAuthentication): Set-SPOTenant puts back values you want back",
    "left as it is: an appinv.aspx grant made by hand: revoke it in Site app permissions "
    "(_layouts/15/appprincipals.aspx) on the SharePoint admin site; since ACS retired it gives no access",
]


def test_offboarding_takes_the_onboarding_params_file_and_removes_the_private_files(lab):
    world, tenant, host, args, env, tmp = lab
    r = psrunner("run", "m365-backup-access", *args, "--yes", "-q", "-o", "json", env=env)
    assert r.returncode == 0, r.stderr                  # done and settled
    app_id = {s["id"]: s for s in json.loads(r.stdout)["stages"]}["application"]["outputs"]["app_id"]
    private = sorted(p.name for p in (tmp / "state" / "private").rglob("*") if p.is_file())
    assert any(n.startswith("client-secret-") for n in private) and any(n.endswith(".pfx") for n in private)

    r = psrunner("plan", "m365-backup-access-remove", *args, "-o", "json", env=env)
    assert r.returncode == 0, r.stderr
    # one note for everything the onboarding file gives that offboarding does not take
    assert [ln for ln in r.stderr.splitlines() if ln.startswith("note: ")] == [
        "note: 11 parameter(s) of m365-backup-access do not apply to m365-backup-access-remove and are "
        "ignored: credential, host, host_auth, host_ca_bundle, host_https, host_password, host_port, "
        "host_user, pnp_client_id, spo_password, spo_user"]
    plan = json.loads(r.stdout)
    # onboarding's warnings (EWS, SharePoint app-only) are not offboarding's to give
    assert [w for s in plan["stages"] for w in s["warnings"]] == [
        "signed in with a client secret: prefer a certificate for unattended runs"]
    (stage,) = [s for s in plan["stages"] if s["id"] == "remove-application"]
    assert stage["status"] == "changed"
    assert stage["messages"][1].startswith("would remove ") and "private file(s) in " in stage["messages"][1]
    assert stage["messages"][2:] == LEFT
    assert tenant.state.app_by_app_id(app_id) is not None

    r = psrunner("run", "m365-backup-access-remove", *args, "--yes", env=env)
    assert r.returncode == 0, r.stderr
    assert tenant.state.app_by_app_id(app_id) is None
    left = sorted(p.name for p in (tmp / "state" / "private").rglob("*") if p.is_file())
    assert not any(n.startswith("client-secret-") or n.endswith(".pfx") for n in left), left
    assert not (tmp / "state" / "private" / "graph" / world.tenant_domain / "m365-backup-access").exists()
    for line in LEFT:
        assert line in r.stdout

    r = psrunner("run", "m365-backup-access-remove", *args, "--yes", "-o", "json", "-q", env=env)
    (stage,) = [s for s in json.loads(r.stdout)["stages"] if s["id"] == "remove-application"]
    assert stage["status"] == "ok" and stage["messages"][1:] == LEFT


def test_a_mistyped_parameter_on_the_command_line_is_still_refused(lab):
    world, tenant, host, args, env, tmp = lab
    r = psrunner("plan", "m365-backup-access-remove", *args, "-p", "purg=true", env=env)
    assert r.returncode == 2
    assert r.stderr.splitlines()[-2:] == [
        "error: unknown parameter 'purg' for runbook 'm365-backup-access-remove'",
        "  fix: did you mean purge? (-p purge=...)"]
