"""m365-access-verify and m365-rotate-credential against the tenant simulator over real msal and
requests, after m365-backup-access onboarded the application: the application really signs
in with its own secret; with a host, the SharePoint settings are read over real pypsrp and
never set; a rotation hands a new secret over once and retires the old one only when asked,
and only what a newer one replaces."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from runner import api
from runner.results import RunStatus
from runner.sim.demo import simulators, sim_params, write_sim_params

UNIQUE = "m365-backup-access"


class Tenant:
    def __init__(self, world, tenant, host, tmp: Path) -> None:
        self.world, self.tenant, self.host, self.tmp = world, tenant, host, tmp
        self.state_dir = tmp / "state"

    def run(self, runbook: str, mode: str = "run", *, with_host: bool = True, **extra: Any):
        rb = api.load_runbook(runbook)
        given = {k: v for k, v in sim_params(self.tenant, self.host, self.world).items() if k in rb.params
                 and (with_host or not k.startswith(("host", "spo_")))}
        if "credential" in rb.params and "credential" not in extra:
            given.pop("credential", None)
        values, _ = api.resolve_params(rb, {**given, **extra})
        return (api.run if mode == "run" else api.plan)(rb, values, state_dir=self.state_dir)

    def app(self) -> dict[str, Any]:
        (app,) = [a for a in self.tenant.state.applications.values() if a.get("uniqueName") == UNIQUE]
        return app

    def secret_files(self) -> list[Path]:
        return sorted((self.state_dir / "private").rglob("client-secret-*.txt"))


@pytest.fixture(scope="module")
def onboarded(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("m365")
    with simulators() as (world, tenant, host):
        t = Tenant(world, tenant, host, tmp)
        first = t.run("m365-backup-access", credential="secret", legacy_auth=False)
        assert first.stage("consent").status.value == "changed", first.stage("consent").error
        yield t


def test_verify_after_onboarding_signs_in_as_the_app(onboarded: Tenant):
    writes = onboarded.tenant.requests.snapshot()["writes"]
    res = onboarded.run("m365-access-verify")
    assert res.status == RunStatus.SUCCEEDED, res.stage("verify").error
    out = res.stage("verify").outputs
    assert out["sign_in"] == "secret" and out["consented"] == 46 and out["missing"] == []
    assert len(out["roles"]) >= 40            # the token the app got carries its consented roles
    assert res.headline.startswith("m365-backup-access can work: 46 permissions consented, signs in with its "
                                   "secret, the next credential expires in ")
    assert res.stage("verify").warnings == []
    assert onboarded.tenant.requests.snapshot()["writes"] == writes           # read-only
    warned = onboarded.run("m365-access-verify", warn_days=400)
    assert any("expires in" in w and "rotate it" in w for w in warned.stage("verify").warnings)


def test_verify_names_what_is_wrong(onboarded: Tenant):
    state = onboarded.tenant.state
    sp = state.sp_by_app_id(onboarded.app()["appId"])
    gone = state.assignments_of(sp["id"])[0]
    state.delete_assignment(gone)
    try:
        res = onboarded.run("m365-access-verify")
        st = res.stage("verify")
        assert st.status.value == "failed" and st.error["exit_code"] == 1
        assert res.headline.startswith("Failed: m365-backup-access: 1 of 46 permissions are not consented")
    finally:
        onboarded.run("m365-backup-access", credential="secret", legacy_auth=False)   # consents it again
    assert onboarded.run("m365-access-verify").status == RunStatus.SUCCEEDED
    (secret_file,) = onboarded.secret_files()
    value = secret_file.read_text()
    secret_file.write_text("not-the-secret")
    try:
        res = onboarded.run("m365-access-verify")
        assert "the application cannot sign in with its secret" in res.headline
        assert "AADSTS7000215" in res.headline
    finally:
        secret_file.write_text(value)


SETTINGS_READ = ("The SharePoint settings do not stand in the backup application's way: legacy sign-in is off "
                 "(refused for good since 2026-05-01 whatever it says), custom app authentication is allowed "
                 "(it only gated ACS app-only, retired on 2026-04-02).")


def _settings_reads(host) -> list[dict[str, Any]]:
    return [p for tid, p in host.state.invocations if tid == "sharepoint/spo_tenant_settings"]


@pytest.mark.parametrize("mode", ["plan", "run"])
def test_verify_reads_the_sharepoint_settings_and_says_what_they_mean(onboarded: Tenant, mode: str):
    reads = len(_settings_reads(onboarded.host))
    res = onboarded.run("m365-access-verify", mode)
    assert res.status == RunStatus.SUCCEEDED, res.stage("sharepoint-settings").error
    st = res.stage("sharepoint-settings")
    assert st.status.value == "ok" and st.outputs["settings"] == {
        "LegacyAuthProtocolsEnabled": False, "DisableCustomAppAuthentication": False}   # as onboarding set them
    assert res.headline == (f"m365-backup-access can work: 46 permissions consented, signs in with its secret, the "
                            f"next credential expires in {res.stage('verify').outputs['credentials'][0]['days_left']} "
                            f"days. {SETTINGS_READ}")
    assert st.messages == [
        "LegacyAuthProtocolsEnabled is False: SharePoint Online refuses legacy (IDCRL) sign-in for good since "
        "2026-05-01; the backup application signs in with modern authentication and does not need it.",
        "DisableCustomAppAuthentication is False: it only ever gated ACS app-only tokens, retired on 2026-04-02; "
        "an application signing in with a certificate reaches SharePoint whatever it says."]
    assert [n["id"] for n in res.notices] == ["idcrl-blocked", "custom-app-auth"]   # m365-backup-access's own
    (sent,) = _settings_reads(onboarded.host)[reads:]
    assert sent["Apply"] is False and sent["TenantId"] == onboarded.world.tenant_id
    assert not {"LegacyAuthProtocolsEnabled", "DisableCustomAppAuthentication"} & set(sent)


def test_verify_never_sets_a_sharepoint_setting_even_where_one_differs(onboarded: Tenant):
    sp, host = onboarded.world.sharepoint, onboarded.host.state
    sets = len(host.set_spo_tenant)
    sp.legacy_auth_protocols_enabled, sp.disable_custom_app_authentication = True, True
    try:
        for mode in ("plan", "run"):
            res = onboarded.run("m365-access-verify", mode)
            st = res.stage("sharepoint-settings")
            assert st.status.value == "ok" and not st.changed
            assert st.outputs["settings"] == {"LegacyAuthProtocolsEnabled": True, "DisableCustomAppAuthentication": True}
            assert st.messages[0].startswith("LegacyAuthProtocolsEnabled is True: the tenant still says legacy "
                                             "sign-in is allowed, but SharePoint Online refuses")
            assert "legacy sign-in is on (refused for good since 2026-05-01 whatever it says), custom app " \
                   "authentication is disabled" in res.headline
        assert host.set_spo_tenant[sets:] == []                         # the host ran no Set-SPOTenant
        assert (sp.legacy_auth_protocols_enabled, sp.disable_custom_app_authentication) == (True, True)
    finally:
        sp.legacy_auth_protocols_enabled, sp.disable_custom_app_authentication = False, False
    # the record is no formality: the backup runbook, asked for other values, is seen setting them
    onboarded.run("m365-backup-access", credential="secret", legacy_auth=False, disable_custom_app_auth=True)
    assert host.set_spo_tenant[sets:] == [{"DisableCustomAppAuthentication": True}]
    onboarded.run("m365-backup-access", credential="secret", legacy_auth=False)


def test_verify_reads_the_settings_app_only_with_a_certificate_from_the_machine_store(onboarded: Tenant):
    thumbprint = "AB" * 20
    onboarded.host.state.certificates[thumbprint] = "LocalMachine"
    reads = len(_settings_reads(onboarded.host))
    try:
        res = onboarded.run("m365-access-verify", spo_user="", spo_client_id=onboarded.app()["appId"],
                            spo_thumbprint=thumbprint)
    finally:
        del onboarded.host.state.certificates[thumbprint]
    st = res.stage("sharepoint-settings")
    assert st.status.value == "ok", st.error
    assert st.messages[0] == f"Signed in with certificate {thumbprint} from Cert:\\LocalMachine\\My."
    (sent,) = _settings_reads(onboarded.host)[reads:]
    assert sent["TenantId"] == onboarded.world.tenant_id and "UserName" not in sent   # the tenant the check signed in to


def test_verify_without_a_host_checks_the_application_alone(onboarded: Tenant):
    reads = len(_settings_reads(onboarded.host))
    for mode in ("plan", "run"):
        res = onboarded.run("m365-access-verify", mode, with_host=False)
        assert res.status == RunStatus.SUCCEEDED
        st = res.stage("sharepoint-settings")
        assert st.status.value == "skipped"
        assert "no Windows host is given (-p host=NAME), and the SharePoint settings are read on one" in st.messages[0]
        assert res.headline.startswith("m365-backup-access can work: ") and "SharePoint" not in res.headline
    assert len(_settings_reads(onboarded.host)) == reads


def test_verify_says_when_the_host_cannot_read_the_settings(onboarded: Tenant):
    modules = onboarded.host.state.modules
    version = modules.pop("Microsoft.Online.SharePoint.PowerShell")
    try:
        res = onboarded.run("m365-access-verify")
    finally:
        modules["Microsoft.Online.SharePoint.PowerShell"] = version
    st = res.stage("sharepoint-settings")
    assert st.status.value == "failed" and st.error["exit_code"] == 1
    assert res.headline == ("Failed: the SharePoint settings cannot be read: Microsoft.Online.SharePoint.PowerShell "
                            "is not installed on the host (m365-backup-access installs it)")


def test_rotate_hands_over_once_and_retires_only_what_a_newer_one_replaces(onboarded: Tenant):
    before = {c["keyId"] for c in onboarded.app()["passwordCredentials"]}
    plan = onboarded.run("m365-rotate-credential", "plan")
    assert plan.stage("new-secret").status.value == "changed" and len(onboarded.secret_files()) == 1
    res = onboarded.run("m365-rotate-credential")
    assert res.status == RunStatus.ACTION_REQUIRED
    assert res.stage("retire").action["summary"] == \
        "Enter the new client secret in the backup product, then run with -p retire=true"
    new_file = Path(res.stage("new-secret").outputs["secret_file"])
    assert stat.S_IMODE(new_file.stat().st_mode) == 0o600 and str(new_file) in res.stage("retire").action["steps"][0]
    assert len(onboarded.app()["passwordCredentials"]) == 2
    # the grace period keeps a credential younger than it, even when a newer one exists
    kept = onboarded.run("m365-rotate-credential", retire=True)
    assert kept.stage("retire").status.value == "ok" and len(onboarded.app()["passwordCredentials"]) == 2
    assert kept.headline == "Nothing to retire: the application has 2 client secret(s); none older than 7 days is replaced."
    gone = onboarded.run("m365-rotate-credential", retire=True, grace_days=0)
    assert gone.stage("retire").status.value == "changed"
    assert gone.headline == "Removed 1 old client secret(s); 1 remains."
    left = {c["keyId"] for c in onboarded.app()["passwordCredentials"]}
    assert len(left) == 1 and not left & before                # the new one stays, the old one went
    again = onboarded.run("m365-rotate-credential", retire=True, grace_days=0)
    assert again.stage("retire").status.value == "ok"
    assert again.headline.startswith("Nothing to retire: the application has 1 client secret(s)")
    verified = onboarded.run("m365-access-verify")
    assert verified.status == RunStatus.SUCCEEDED and verified.stage("verify").outputs["sign_in"] == "secret"


def test_canary_the_rotated_secret_is_only_in_its_file(onboarded: Tenant):
    pf, files = write_sim_params(onboarded.tmp / "sim", onboarded.tenant, onboarded.host, onboarded.world)
    keep = {"tenant", "graph_auth", "graph_client_id", "graph_ca_bundle", "authority_host", "graph_endpoint"}
    lines = [ln for ln in pf.read_text().splitlines() if ln.split(" = ")[0] in keep]
    params = onboarded.tmp / "rotate.toml"
    params.write_text("\n".join(lines) + "\n")
    env = {**os.environ, "PSRUNNER_STATE_DIR": str(onboarded.state_dir)}
    r = subprocess.run([sys.executable, "-m", "runner.cli", "run", "m365-rotate-credential", "--params-file",
                        str(params), "--secret-file", f"graph_client_secret={files['graph_client_secret']}",
                        "--yes", "-vv"], capture_output=True, text=True, env=env, timeout=120,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 4, r.stderr                  # done; the hand-over waits for a person (retire)
    newest = max(onboarded.secret_files(), key=lambda f: f.stat().st_mtime)
    canary = newest.read_text().strip()
    assert canary not in r.stdout + r.stderr
    for f in (onboarded.state_dir / "runs").rglob("*"):
        if f.is_file():
            assert canary not in f.read_text(errors="replace"), f


def test_verify_by_tenant_id_finds_what_onboarding_by_domain_kept(onboarded: Tenant):
    """The private files are named by the tenant's id, so the tenant written either way finds them."""
    res = onboarded.run("m365-access-verify", with_host=False, tenant=onboarded.world.tenant_id)
    assert res.status == RunStatus.SUCCEEDED, res.stage("verify").error
    assert res.stage("verify").outputs["sign_in"] == "secret"
    (folder,) = {f.parent for f in onboarded.secret_files()}
    assert folder.parent.name == onboarded.world.tenant_id.lower()


def test_files_an_earlier_version_kept_under_the_domain_are_moved_to_the_tenant_id(onboarded: Tenant):
    (folder,) = {f.parent for f in onboarded.secret_files()}
    earlier = folder.parent.parent / onboarded.world.tenant_domain.lower() / folder.name
    earlier.parent.mkdir(mode=0o700, exist_ok=True)    # the sign-in's token cache lives there too
    folder.rename(earlier)                            # where versions before this one kept them
    res = onboarded.run("m365-access-verify", with_host=False)
    assert res.status == RunStatus.SUCCEEDED, res.stage("verify").error
    assert folder.is_dir() and not earlier.exists()
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
