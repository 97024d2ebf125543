"""A fleet against the simulators: twenty targets, each its own simulated tenant and host, one
host broken and one hanging. The others converge, the two fail within their deadline, the
aggregate exit code is the worst, no target's run touches another's, and no secret of any
target (its references' values, the client secrets the runs made, any token) is in the
output, the run directories or the fleet's reports (the secret canary scan)."""

from __future__ import annotations

import json
import os
import time
import xml.etree.ElementTree as ET

import click
import pytest
from click.testing import CliRunner

from runner.cli import main
from runner.fleet.inventory import load_inventory
from runner.fleet.run import run_fleet
from tests.canary import Canaries, tree_texts
from tests.fleet_lab import fleet_lab

RUNBOOK = "m365-backup-access"
DEADLINE = 10


@click.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.pass_context
def _entry(ctx):
    main(ctx.args)


def test_twenty_targets_one_broken_one_hanging(tmp_path, monkeypatch):
    # the hanging host has a short deadline of its own; the others the default, so that a slow
    # machine cannot make a healthy target miss it
    with fleet_lab(tmp_path / "lab", 20, groups={"odd": list(range(1, 21, 2))}, deadlines={7: DEADLINE, 13: DEADLINE}
                   ) as lab:
        for k, v in lab.env.items():
            monkeypatch.setenv(k, v)
        lab.target("t07").host.faults.set("refuse")        # nobody listens
        lab.target("t13").host.faults.set("hang")          # takes requests, never answers
        inv = load_inventory(lab.inventory)
        t0 = time.monotonic()
        fleet = run_fleet(RUNBOOK, inv, inv.select(), mode="run", parallel=8, state_dir=tmp_path / "state")
        elapsed = time.monotonic() - t0

        by_name = {t.target: t for t in fleet.targets}
        assert [t.target for t in fleet.targets] == [f"t{i:02d}" for i in range(1, 21)]
        assert fleet.exit_code == 1
        for name in ("t07", "t13"):
            t = by_name[name]
            assert t.exit_code == 1 and t.status == "failed" and t.summary.startswith("failed: host-facts: ")
            assert t.duration < DEADLINE + 5, (name, t.duration)          # within its deadline (+ stopping)
        assert "did not finish within" in by_name["t13"].summary
        converged = [t for t in fleet.targets if t.target not in ("t07", "t13")]
        assert {t.exit_code for t in converged} == {0}       # done, nothing left for a person
        assert all(t.status == "succeeded" for t in converged)
        assert elapsed < 120

        for st in lab.targets:
            t = by_name[st.name]
            info = json.loads((tmp_path / "state" / "runs" / t.run_id / "run.json").read_text())
            # its own parameters, its own targets, its own secrets' references: no cross-talk
            assert info["params"]["tenant"] == f"{st.name}.onmicrosoft.com"
            assert info["params"]["host_port"] == st.host.port
            assert any(k.startswith("graph") and k.endswith(f":{st.name}.onmicrosoft.com") for k in info["targets"])
            assert f"psrp:{info['params']['host']}" in info["targets"]
            assert info["secret_sources"]["host_password"] == f"env:FLEET_{st.name.upper()}_HOST_PASSWORD"
            events = (tmp_path / "state" / "runs" / t.run_id / "events.jsonl").read_text()
            others = [o.name for o in lab.targets if o is not st and f"{o.name}.onmicrosoft.com" in events]
            assert others == []
            apps = [a for a in st.tenant.state.applications.values() if a.get("uniqueName") == "m365-backup-access"]
            assert len(apps) == (0 if st.name in ("t07", "t13") else 1)
            report = (tmp_path / "state" / "runs" / t.run_id / "report.json").read_text()
            for value in st.secrets.values():
                assert value not in report

        out = tmp_path / "state" / "fleet" / fleet.fleet_id
        assert json.loads((out / "report.json").read_text())["exit_code"] == 1
        suites = ET.parse(out / "report.xml").getroot().findall("testsuite")
        assert [s.get("name") for s in suites] == [f"t{i:02d}" for i in range(1, 21)]
        assert {s.get("name") for s in suites if s.get("errors") != "0"} == {"t07", "t13"}
        table = (out / "report.txt").read_text()
        assert "run of m365-backup-access on 20 target(s): 18 done, 2 failed; exit 1" in table

        # the same through the command line, for one group: a check, exit the worst
        for name in ("t07", "t13"):
            lab.target(name).host.faults.clear()
        r = CliRunner().invoke(_entry, ["fleet", "check", RUNBOOK, "-i", str(lab.inventory), "--limit", "odd",
                                        "--parallel", "5", "--state-dir", str(tmp_path / "state"), "-o", "json",
                                        "-q"])
        doc = json.loads(r.stdout)
        assert [t["target"] for t in doc["targets"]] == [f"t{i:02d}" for i in range(1, 21, 2)]
        assert r.exit_code == doc["exit_code"] == 3              # t07 and t13 were never applied: drift
        assert {t["target"] for t in doc["targets"] if t["exit_code"] == 3} == {"t07", "t13"}
        assert {t["exit_code"] for t in doc["targets"] if t["target"] not in ("t07", "t13")} == {0}

        made = {f.read_text().strip() for f in (tmp_path / "state" / "private").rglob("client-secret-*")}
        assert len(made) == 18                                   # one new client secret per converged target
        canaries = Canaries(made | {v for st in lab.targets for v in st.secrets.values()})
        places = {"fleet check stdout": r.stdout, "fleet check stderr": r.stderr,
                  **tree_texts(tmp_path / "state", skip=("private",))}
        assert canaries.scan(places) == []                       # JSON web tokens included


def test_a_target_with_bad_input_or_an_unreadable_secret_fails_alone(tmp_path, monkeypatch):
    with fleet_lab(tmp_path / "lab", 3, deadline=30) as lab:
        for k, v in lab.env.items():
            monkeypatch.setenv(k, v)
        secret = tmp_path / "lab" / "secrets" / "t03-spo_password"
        os.chmod(secret, 0o644)                                   # readable by others: refused
        monkeypatch.delenv("FLEET_T02_HOST_PASSWORD")             # t02's reference leads nowhere
        r = CliRunner().invoke(_entry, ["fleet", "plan", RUNBOOK, "-i", str(lab.inventory), "--state-dir",
                                        str(tmp_path / "state"), "-q"])
        lines = r.stdout.splitlines()
        assert r.exit_code == 2, r.stdout
        assert lines[1].startswith("t01        0  planned ")
        assert lines[2] == ("t02        2  bad input           refused: secret 'host_password': the environment "
                            "variable FLEET_T02_HOST_PASSWORD is not set"[:100 - 3] + "...")
        assert lines[3].startswith("t03        2  bad input           refused: secret file for 'spo_password' ")
        report = json.loads((tmp_path / "state" / "fleet" / os.listdir(tmp_path / "state" / "fleet")[0]
                             / "report.json").read_text())
        assert report["targets"][2]["error"]["message"] == (f"secret file for 'spo_password' '{secret}' is readable "
                                                            f"by others (mode 0644): the secret in it is not a secret")


@pytest.mark.parametrize("n", [3])
def test_cli_refuses_a_fleet_run_without_yes_and_a_literal_secret_others_can_read(tmp_path, n):
    with fleet_lab(tmp_path / "lab", n) as lab:
        r = CliRunner().invoke(_entry, ["fleet", "run", RUNBOOK, "-i", str(lab.inventory), "-o", "json"])
        doc = json.loads(r.stdout)
        assert r.exit_code == 2 and doc["error"]["input"] == "--yes"
        text = lab.inventory.read_text().replace("secrets = { ", 'secrets = { spo_password = "hunter2", ', 1)
        text = text.replace('spo_password = { file', 'x_spo = { file', 1)
        lab.inventory.write_text(text)
        os.chmod(lab.inventory, 0o644)
        r = CliRunner().invoke(_entry, ["fleet", "check", RUNBOOK, "-i", str(lab.inventory), "-o", "json"])
        doc = json.loads(r.stdout)
        assert r.exit_code == 2 and doc["error"]["input"] == "targets.t01.secrets.spo_password"
        assert "hunter2" not in r.stdout and doc["error"]["fix"].endswith(f"chmod 600 {lab.inventory}")


def test_shards_of_the_command_line_cover_a_fleet_exactly_once(tmp_path):
    """`fleet plan --shard i/3` on three machines: every target in exactly one share. Each
    target is refused on its own (an unknown parameter) before any network call, so the shares
    show which targets each machine took."""
    names = [f"site-{i:02d}" for i in range(12)]
    inv = tmp_path / "fleet.toml"
    inv.write_text("".join(f'[targets.{n}]\nparams = {{ tenant = "{n}.example", no_such = 1 }}\n' for n in names))
    taken = []
    for i in (1, 2, 3):
        r = CliRunner().invoke(_entry, ["fleet", "plan", RUNBOOK, "-i", str(inv), "--shard", f"{i}/3", "-o", "json",
                                        "--state-dir", str(tmp_path / "state"), "-q"])
        doc = json.loads(r.stdout)
        assert r.exit_code == 2 and {t["exit_code"] for t in doc["targets"]} == {2}
        taken.append([t["target"] for t in doc["targets"]])
    assert sorted(sum(taken, [])) == names and all(taken)
