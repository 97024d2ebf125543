"""Secret canaries (tests/canary.py) across what psrunner leaves behind: the demo (plan, run,
run again) and real processes at -vv against `psrunner sim serve`. Every secret value they
handled (the operator's client secret, the host and SharePoint passwords, the new client
secret, the PFX password, the access tokens) is looked for, plain, base64 and URL-encoded,
in their output and in every file outside private/: 0 hits. RELIABILITY.md quotes the counts."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from runner import secrets

from ..canary import Canaries, tree_texts

PSRUNNER = [sys.executable, "-m", "runner.cli"]


def private_values(state: Path) -> set[str]:
    """The secrets psrunner keeps in private/ (the new client secret, the PFX password)."""
    return {f.read_text().strip() for pattern in ("client-secret-*.txt", "*.pfx-password.txt")
            for f in (state / "private").rglob(pattern)}


def test_the_demo_leaves_no_secret_behind(tmp_path, capsys):
    from runner.sim.demo import run_demo

    with secrets._known_lock:
        before = set(secrets._known)
    state = tmp_path / "demo"
    assert run_demo(state_dir=state, output="human", quiet=False, progress=None, color=False) == 0
    out = capsys.readouterr()
    with secrets._known_lock:
        handled = set(secrets._known) - before          # tokens, the simulators' secrets, the new ones
    handled |= private_values(state)
    assert any(v.startswith("eyJ") for v in handled), "no access token was seen: the scan would be blind"
    canaries = Canaries(handled)
    places = {"stdout": out.out, "stderr": out.err, **tree_texts(state, skip=("private",))}
    assert canaries.scan(places) == []


@pytest.mark.skipif(os.name != "posix", reason="SIGINT to a child process")
def test_processes_at_vv_against_sim_serve_leave_no_secret_behind(tmp_path):
    served = tmp_path / "served"
    server = subprocess.Popen([*PSRUNNER, "sim", "serve", "--tenant-port", "0", "--host-port", "0",
                               "--state-dir", str(served)], stdout=subprocess.PIPE,
                              stderr=open(tmp_path / "serve.err", "w"), text=True)
    try:
        banner = []
        for line in server.stdout:
            banner.append(line)
            if line.startswith("Ctrl-C stops"):
                break
        run = next(shlex.split(x) for x in banner if x.strip().startswith("psrunner run"))
        state = tmp_path / "state"
        env = {**os.environ, "PSRUNNER_STATE_DIR": str(state)}
        outputs = {}
        for name, argv in (("run", [*run[1:], "--yes", "-vv"]), ("re-run", [*run[1:], "--yes", "-vv"]),
                           ("runs show", ["runs", "show", "--output", "json"])):
            if name == "runs show":
                argv.insert(2, next(p.name for p in (state / "runs").iterdir()))
            done = subprocess.run([*PSRUNNER, *argv], capture_output=True, text=True, env=env, timeout=300)
            # a run with the defaults settles (exit 0), and so does showing it
            assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
            outputs[f"{name} stdout"], outputs[f"{name} stderr"] = done.stdout, done.stderr
        assert "INFO psrunner.target.tenant: graph" in outputs["run stderr"]      # -vv did speak
    finally:
        server.send_signal(signal.SIGINT)
        server.communicate(timeout=60)
    sim_secrets = {f.read_text().strip() for f in (served / "sim").glob("*.secret")}
    handled = sim_secrets | private_values(state)
    canaries = Canaries(handled)
    places = {**outputs, "sim serve banner": "".join(banner), "sim serve stderr": (tmp_path / "serve.err").read_text(),
              **tree_texts(state, skip=("private",)),
              **{f"served/{k}": v for k, v in tree_texts(served).items() if not k.endswith(".secret")}}
    assert len(sim_secrets) == 3 and len(handled) >= 5
    assert canaries.scan(places) == []                          # JSON web tokens included
