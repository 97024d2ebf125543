"""`psrunner sim serve` as an admin rehearsing an outage uses it: real processes, faults armed
from the command line and through the control endpoint, a real `psrunner plan` against it,
and nothing private left behind after Ctrl-C."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

pytestmark = pytest.mark.skipif(os.name != "posix", reason="sends SIGINT to a child process")

PSRUNNER = [sys.executable, "-m", "runner.cli"]


def test_a_malformed_fault_is_exit_2_naming_the_option_before_any_port_opens(tmp_path):
    r = subprocess.run([*PSRUNNER, "sim", "serve", "--tenant-port", "0", "--host-port", "0",
                        "--state-dir", str(tmp_path), "--fault", "429:GET:/ok", "--fault", "503:FETCH:/v1.0"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.startswith("error: --fault '503:FETCH:/v1.0': METHOD 'FETCH' is not one of GET, POST, PATCH,")
    assert "fix: write it as KIND[=VALUE]:METHOD:PATH[:COUNT]" in r.stderr
    assert not (tmp_path / "sim").exists()


def _banner(proc: subprocess.Popen) -> list[str]:
    lines: list[str] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if line.startswith("Ctrl-C stops"):
            return lines
    proc.kill()
    raise AssertionError("sim serve printed no banner:\n" + "\n".join(lines))


def test_sim_serve_arms_faults_that_a_real_psrunner_process_meets(tmp_path):
    # stderr to a file, not a pipe nobody reads until the end: a simulator that logs more than
    # a pipe holds would otherwise block mid-request
    err_file = open(tmp_path / "serve.err", "w+")
    proc = subprocess.Popen([*PSRUNNER, "sim", "serve", "--tenant-port", "0", "--host-port", "0",
                             "--state-dir", str(tmp_path), "--public-name", "graph.microsoft.com",
                             "--fault", r"429=0:POST:/oauth2/v2\.0/token$:1"],
                            stdout=subprocess.PIPE, stderr=err_file, text=True)
    try:
        lines = _banner(proc)
        text = "\n".join(lines)
        base = next(x for x in lines if x.startswith("tenant simulator:")).split()[2]
        ca = next(x for x in lines if x.startswith("CA bundle:")).split(maxsplit=2)[2]
        assert f"also as:        https://graph.microsoft.com:{base.rsplit(':', 1)[1]}" in text
        assert r"fault armed:      throttle POST /oauth2/v2\.0/token$ (1 time(s))" in text
        plan = shlex.split(next(x for x in lines if x.strip().startswith("psrunner plan")))
        done = subprocess.run([*PSRUNNER, *plan[1:]], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        counts = requests.get(f"{base}/_sim/requests", verify=ca, timeout=10).json()
        assert counts["tenant"]["fault_kinds"] == {"throttle": 1} and counts["tenant"]["token"] == 2
        assert counts["tenant"]["round_trips"] >= 3 and counts["wsman"]["requests"] > 0
        armed = requests.post(f"{base}/_sim/faults", data=r"503=5:*:/v1\.0/.*:*", verify=ca, timeout=10)
        assert armed.status_code == 201
        assert requests.get(f"{base}/_sim/faults", verify=ca, timeout=10).json()["faults"][-1]["kind"] == "unavailable"
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
        err_file.seek(0)
        err = err_file.read()
        err_file.close()
    assert proc.returncode == 0 and "stopping" in err, err
    assert not Path(ca).exists()  # the tenant's TLS folder, private key included, is gone
