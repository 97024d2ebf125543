"""m365-access-verify and m365-rotate-credential against the tenant simulator over real msal and
requests, after m365-backup-access onboarded the application: the application really signs
in with its own secret; a rotation hands a new secret over once and retires the old one only
when asked, and only what a newer one replaces."""

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

    def run(self, runbook: str, mode: str = "run", **extra: Any):
        rb = api.load_runbook(runbook)
        given = {k: v for k, v in sim_params(self.tenant, self.host, self.world).items() if k in rb.params}
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
