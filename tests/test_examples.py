"""Everything in examples/ stays correct: params files name real parameters with valid
values, the custom runbook loads, the library example runs, the shell script parses."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from runner import api
from runner.params import load_params_file
from runner.values import coerce

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.parametrize("name", ["contoso-unattended.toml", "contoso-admin.toml"])
def test_params_files_fit_the_main_runbook(name):
    rb = api.load_runbook("m365-backup-access")
    given = load_params_file(str(EXAMPLES / name))
    for key, value in given.items():
        assert key in rb.params, f"{name}: {key} is not a parameter"
        p = rb.params[key]
        assert not p.secret, f"{name}: secrets never go in params files"
        if p.type != "file":          # the example's paths exist on the admin's machine, not here
            coerce(p, value)


def test_custom_runbook_loads_and_renders(tmp_path):
    rb = api.load_runbook(str(EXAMPLES / "my-runbook.toml"))
    assert rb.audience == "helpdesk" and [s.id for s in rb.stages] == ["facts", "module", "copy"]
    assert api.render(rb, "module").startswith("# psrunner-template: sharepoint/spo_module")


def test_library_example_runs():
    r = subprocess.run([sys.executable, str(EXAMPLES / "library.py")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "application (client) id:" in r.stdout and "graph requests this run: 9" in r.stdout   # the plan before it discovered the authority


def test_shell_example_parses():
    assert subprocess.run(["bash", "-n", str(EXAMPLES / "check-and-remediate.sh")], timeout=30).returncode == 0


# ---------------------------------------------------------------------------- schedules

@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_systemd_units_verify(tmp_path):
    """systemd-analyze verify finds nothing to say about the service and its timer, once
    instantiated (the script path pointed at this checkout's copy)."""
    for src in (EXAMPLES / "systemd").iterdir():
        text = src.read_text().replace("/usr/local/lib/psrunner/check-and-remediate.sh",
                                       str(EXAMPLES / "check-and-remediate.sh"))
        (tmp_path / src.name.replace("@.", "@contoso.")).write_text(text)
    units = sorted(str(p) for p in tmp_path.iterdir())
    r = subprocess.run(["systemd-analyze", "verify", "--man=no", *units], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout + r.stderr == "", r.stdout + r.stderr
    service = (EXAMPLES / "systemd" / "psrunner-check@.service").read_text()
    assert "SuccessExitStatus" not in service          # 4 (a person must act) is a failed unit: someone is told
    for name in ("graph_client_secret", "host_password", "spo_password"):
        assert f"LoadCredential={name}:" in service


@pytest.mark.parametrize("code, mails", [(0, ""), (4, "psrunner contoso: exit 4"), (1, "psrunner contoso: exit 1")])
def test_cron_line_is_quiet_only_when_all_is_in_place(tmp_path, code, mails):
    (line,) = [ln for ln in (EXAMPLES / "cron.txt").read_text().splitlines() if ln and not ln.startswith("#")]
    fields = line.split(None, 6)
    assert fields[:5] == ["*/15", "*", "*", "*", "*"] and fields[5] == "psrunner"
    stub = tmp_path / "job.sh"
    stub.write_text(f"#!/bin/sh\necho 'the job says things'\nexit {code}\n")
    stub.chmod(0o755)
    command = fields[6].replace("/usr/local/lib/psrunner/check-and-remediate.sh", str(stub)) \
        .replace("/var/log/psrunner/contoso.log", str(tmp_path / "job.log"))
    r = subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=30)
    assert r.stdout.split(" (see ")[0].strip() == mails            # what cron mails
    assert (tmp_path / "job.log").read_text() == "the job says things\n"


def test_task_scheduler_xml_is_well_formed_and_remediates_on_drift_only():
    import xml.etree.ElementTree as ET

    import tree_sitter
    import tree_sitter_powershell
    ns = {"t": "http://schemas.microsoft.com/windows/2004/02/mit/task"}
    root = ET.parse(EXAMPLES / "windows" / "psrunner-check.xml").getroot()
    assert root.tag == f"{{{ns['t']}}}Task"
    assert root.find("t:Triggers/t:TimeTrigger/t:Repetition/t:Interval", ns).text == "PT15M"
    args = root.find("t:Actions/t:Exec/t:Arguments", ns).text
    script = args.split("-Command ", 1)[1].strip().strip('"')
    tree = tree_sitter.Parser(tree_sitter.Language(tree_sitter_powershell.language())).parse(script.encode())
    assert not tree.root_node.has_error, script
    # check first; run only on 3 (drift); the task's result is the last psrunner's exit code
    assert script.index("psrunner check") < script.index("if ($code -eq 3)") < script.index("psrunner run")
    assert script.rstrip().endswith("exit $code") and "--yes" in script.split("psrunner run", 1)[1]


def test_celery_beat_schedule_imports_and_carries_references_only(tmp_path, monkeypatch):
    import importlib.util
    import json
    inv = tmp_path / "fleet.toml"
    inv.write_text('[defaults]\nsecrets = { graph_client_secret = { env = "CONTOSO_GRAPH_SECRET" } }\n'
                   '[targets.contoso]\nparams = { tenant = "contoso.onmicrosoft.com", host = "mgmt01", '
                   'graph_auth = "secret", graph_client_id = "11111111-1111-1111-1111-111111111111" }\n'
                   '[targets.fabrikam]\nparams = { tenant = "fabrikam.onmicrosoft.com", host = "mgmt02" }\n')
    monkeypatch.setenv("PSRUNNER_INVENTORY", str(inv))
    monkeypatch.setenv("PSRUNNER_BROKER", "redis://127.0.0.1:1/0")      # never contacted to build it
    monkeypatch.setenv("CONTOSO_GRAPH_SECRET", "not-in-any-message")
    spec = importlib.util.spec_from_file_location("celery_beat", EXAMPLES / "celery_beat.py")
    beat = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(beat)
    schedule = beat.app.conf.beat_schedule
    assert sorted(schedule) == ["m365-backup-access check contoso", "m365-backup-access check fabrikam",
                                "m365-backup-access run contoso", "m365-backup-access run fabrikam"]
    entry = schedule["m365-backup-access check contoso"]
    assert entry["task"] == "psrunner.run_target" and entry["schedule"].minute == set(range(0, 60, 15))
    message = json.loads(json.dumps(entry["kwargs"]["message"]))          # what the broker will carry
    assert message["secret_sources"] == {"graph_client_secret": "env:CONTOSO_GRAPH_SECRET"}
    assert message["params"]["tenant"] == "contoso.onmicrosoft.com" and message["mode"] == "check"
    assert "not-in-any-message" not in json.dumps(schedule, default=str)
