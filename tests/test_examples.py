"""Everything in examples/ stays correct: params files name real parameters with valid
values, the custom runbook loads, the library example runs, the shell script parses."""

from __future__ import annotations

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
    assert "application (client) id:" in r.stdout and "graph requests this run: 10" in r.stdout   # the plan before it discovered the authority


def test_shell_example_parses():
    assert subprocess.run(["bash", "-n", str(EXAMPLES / "check-and-remediate.sh")], timeout=30).returncode == 0
