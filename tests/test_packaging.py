"""An installed wheel works on its own: runbooks and templates are packaged as data, and the
console script runs list, show, plan and render from a clean virtual environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(ROOT)],
                   check=True, capture_output=True, timeout=300)
    (whl,) = out.glob("psrunner-*.whl")
    return whl


def test_wheel_carries_templates_and_runbooks(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert "ps_templates/sharepoint/spo_module.ps1.j2" in names
    assert "ps_templates/windows/host_facts.ps1.j2" in names
    assert "runner/runbooks/m365-backup-access.toml" in names
    assert "runner/data/permissions.csv" in names
    assert {"runner/portal/templates/base.html", "runner/portal/static/portal.js"} <= set(names)
    assert not [n for n in names if n.startswith("tests/")]
    # every template and runbook in the source tree is in the wheel (a new template family
    # needs its line in setup.cfg's package_data)
    source = {str(p.relative_to(ROOT)) for p in (ROOT / "ps_templates").rglob("*.j2")}
    source |= {str(p.relative_to(ROOT)) for p in (ROOT / "runner" / "runbooks").glob("*.toml")}
    assert source <= set(names), sorted(source - set(names))


@pytest.mark.slow
def test_clean_venv_runs_the_cli_from_the_wheel(wheel, tmp_path):
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    bindir = env_dir / ("Scripts" if os.name == "nt" else "bin")
    py = bindir / "python"
    subprocess.run([str(py), "-m", "pip", "install", "--quiet", str(wheel)], check=True,
                   capture_output=True, timeout=600)
    exe = bindir / "psrunner"
    env = {**os.environ, "PSRUNNER_STATE_DIR": str(tmp_path / "state")}
    work = tmp_path / "elsewhere"     # not the source tree: templates must come from the wheel
    work.mkdir()

    def cli(*args):
        return subprocess.run([str(exe), *args], capture_output=True, text=True, cwd=work, env=env, timeout=120)

    r = cli("list", "--output", "json")
    assert r.returncode == 0, r.stderr
    assert {"m365-backup-access", "sharepoint-scripts"} <= {b["name"] for b in json.loads(r.stdout)}
    r = cli("show", "m365-backup-access", "--output", "json")
    assert r.returncode == 0 and json.loads(r.stdout)["stages"][0]["id"] == "preflight"
    r = cli("plan", "sharepoint-scripts", "-p", f"dest={work / 'out'}", "--output", "json", "-q")
    assert r.returncode == 0, r.stderr
    assert [s["status"] for s in json.loads(r.stdout)["stages"]] == ["changed"] * 3
    r = cli("render", "m365-backup-access", "--stage", "spo-settings")
    assert r.returncode == 0 and r.stdout.startswith("# psrunner-template: sharepoint/spo_tenant_settings")
    r = subprocess.run([str(py), "-c", "import runner.powershell.templates as t, ps_templates; "
                        "print(t.__file__); print(ps_templates.__file__)"], capture_output=True, text=True, cwd=work)
    assert str(ROOT) not in r.stdout   # really the installed copy
