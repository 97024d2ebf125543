"""A runbook of one's own, with its own template in its folder, found through --runbooks and
run by the `psrunner` command against the host simulator over real pypsrp."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from runner.powershell.result import template_result
from runner.sim.host import HostSimulator
from runner.sim.twin_types import TWINS, TwinOutput, twin

RUNBOOK = '''
name = "greet-host"
title = "Say hello to a host"
audience = "helpdesk"

[params.who]
type = "str"
required = true
example = "jdoe"
[params.host]
type = "str"
required = true
[params.host_port]
type = "int"
default = 5986
[params.host_auth]
type = "str"
default = "basic"
[params.host_user]
type = "str"
default = ""
[params.host_password]
type = "secret"
required_if = "params.host_user != ''"
[params.host_ca_bundle]
type = "file"
default = ""

[targets.host]
type = "psrp"
host = "${params.host}"
port = "${params.host_port}"
auth = "${params.host_auth}"
username = "${params.host_user}"
password = "${params.host_password}"
ca_bundle = "${params.host_ca_bundle}"

[[stages]]
id = "greet"
kind = "powershell.template"
template = "templates/greet.ps1.j2"
inputs = { Who = "${params.who}" }
'''

TEMPLATE = '''param(
    [Parameter(Mandatory)][string]$Who,
    [bool]$Apply
)
$greeted = [Environment]::GetEnvironmentVariable('PSRUNNER_GREETED') -eq $Who
if (-not $greeted -and $Apply) { [Environment]::SetEnvironmentVariable('PSRUNNER_GREETED', $Who) }
@{ changed = -not $greeted; after = @{ greeted = $Who }; messages = @("hello $Who") }
'''


@pytest.fixture
def greet_twin():
    greeted: list[str] = []

    @twin("local/greet")
    def _greet(state, world, params) -> TwinOutput:
        who = params["Who"]
        done = who in greeted
        if not done and params.get("Apply"):
            greeted.append(who)
        return TwinOutput(template_result(changed=not done, after={"greeted": who}, messages=[f"hello {who}"]))

    yield greeted
    TWINS.pop("local/greet", None)


def test_own_runbook_with_its_template_runs_from_runbooks(tmp_path, greet_twin):
    folder = tmp_path / "runbooks" / "greet-host"
    (folder / "templates").mkdir(parents=True)
    (folder / "greet-host.toml").write_text(RUNBOOK, encoding="utf-8")
    (folder / "templates" / "greet.ps1.j2").write_text(TEMPLATE, encoding="utf-8")
    with HostSimulator() as host:
        pw = tmp_path / "pw"
        pw.write_text(host.password)
        pw.chmod(0o600)             # a secret file others can read is refused
        args = ["--runbooks", str(tmp_path / "runbooks"), "-p", "who=jdoe", "-p", f"host={host.host}",
                "-p", f"host_port={host.port}", "-p", f"host_user={host.username}",
                "-p", f"host_ca_bundle={host.ca_bundle}", "--secret-file", f"host_password={pw}",
                "-o", "json", "-q"]
        env = {**os.environ, "PSRUNNER_STATE_DIR": str(tmp_path / "state")}

        def psrunner(*a):
            r = subprocess.run([sys.executable, "-m", "runner.cli", *a], capture_output=True, text=True,
                               env=env, timeout=120, stdin=subprocess.DEVNULL)
            assert r.returncode == 0, r.stderr
            return json.loads(r.stdout)

        first = psrunner("run", "greet-host", *args, "--yes")
        again = psrunner("run", "greet-host", *args, "--yes")
    assert [s["status"] for s in first["stages"]] == ["changed"]
    assert first["stages"][0]["messages"] == ["hello jdoe"]
    assert [s["status"] for s in again["stages"]] == ["ok"]
    assert greet_twin == ["jdoe"]
    sent = (tmp_path / "state" / "runs" / first["run_id"] / "scripts" / "greet.ps1").read_text()
    assert sent.startswith("# psrunner-template: local/greet\n") and str(tmp_path) not in sent
