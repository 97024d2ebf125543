"""Target and run locks between real processes: one holder at a time under contention, a
lock file that is empty or left by a dead run is no way in, a killed holder frees it at
once, and a run whose process is gone shows as interrupted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from runner.errors import LockedError
from runner.graph.connector import lock_keys as tenant_keys
from runner.locks import FileLock, TargetLock
from runner.powershell.connector import lock_keys as host_keys
from runner.results import RunResult
from runner.rundir import RunDir, list_runs

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and process handling")

ROOT = Path(__file__).resolve().parents[2]

# One contender: waits for the start file, then tries the lock `rounds` times; inside it
# appends "in PID" / "out PID" to the log, so overlapping holders would interleave there.
CONTENDER = r"""
import os, sys, time
from pathlib import Path
from runner.errors import LockedError
from runner.locks import TargetLock
state, log, start, rounds, hold = sys.argv[1], sys.argv[2], Path(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
while not start.exists():
    time.sleep(0.001)
won = 0
deadline = time.monotonic() + 60
while won < rounds and time.monotonic() < deadline:
    lock = TargetLock(state, "graph-tenant:contoso.onmicrosoft.com", f"run-{os.getpid()}")
    try:
        lock.acquire()
    except LockedError:
        time.sleep(0.002)
        continue
    with open(log, "a") as f:
        f.write(f"in {os.getpid()}\n")
    time.sleep(hold)
    with open(log, "a") as f:
        f.write(f"out {os.getpid()}\n")
    lock.release()
    won += 1
print(won)
"""

HOLDER = r"""
import sys, time
from runner.locks import FileLock
lock = FileLock(sys.argv[1])
assert lock.try_acquire()          # holds it, and writes nothing: the file stays empty
print("held", flush=True)
time.sleep(600)
"""


def spawn(code: str, *args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code, *args], cwd=ROOT, text=True, **kw)


CONTENDERS, ROUNDS = 5, 4


def test_contending_processes_hold_the_lock_one_at_a_time(tmp_path):
    log, start = tmp_path / "log", tmp_path / "start"
    procs = [spawn(CONTENDER, str(tmp_path / "state"), str(log), str(start), str(ROUNDS), "0.005",
                   stdout=subprocess.PIPE) for _ in range(CONTENDERS)]
    start.touch()
    wins = [int(p.communicate(timeout=90)[0]) for p in procs]
    assert wins == [ROUNDS] * CONTENDERS
    lines = log.read_text().splitlines()
    assert len(lines) == 2 * ROUNDS * CONTENDERS
    for enter, leave in zip(lines[0::2], lines[1::2], strict=True):     # never two inside at once
        assert enter.startswith("in ") and leave == "out " + enter[3:]


def test_an_empty_lock_file_held_by_a_live_process_is_not_taken_as_stale(tmp_path):
    lock = TargetLock(tmp_path, "psrp:mgmt01", "mine")
    holder = spawn(HOLDER, str(lock.path), stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert lock.path.read_text() == ""
        with pytest.raises(LockedError) as e:
            lock.acquire()
        assert e.value.message == "another run (unknown run, pid ?) is working on psrp:mgmt01"
        assert "released the moment that process ends" in e.value.hint
        os.kill(holder.pid, signal.SIGKILL)        # kill -9: the kernel releases the lock
        holder.wait(timeout=30)
        lock.acquire()
        assert json.loads(lock.path.read_text())["run_id"] == "mine"
    finally:
        holder.kill()
        holder.wait(timeout=30)
    lock.release()


def test_a_lock_left_by_a_dead_run_goes_to_exactly_one_of_two_takers(tmp_path):
    state = tmp_path / "state"
    stale = TargetLock(state, "graph-tenant:contoso.onmicrosoft.com", "dead-run")
    stale.path.parent.mkdir(parents=True)
    stale.path.write_text(json.dumps({"pid": 999999, "run_id": "dead-run"}))   # the old format, pid gone
    log, start = tmp_path / "log", tmp_path / "start"
    procs = [spawn(CONTENDER, str(state), str(log), str(start), "1", "0.5", stdout=subprocess.PIPE)
             for _ in range(2)]
    start.touch()
    for p in procs:
        p.communicate(timeout=90)
    lines = log.read_text().splitlines()
    assert [x.split()[0] for x in lines] == ["in", "out", "in", "out"]      # one after the other


def test_lock_keys_are_the_canonical_identity():
    assert tenant_keys({"tenant": "Contoso.OnMicrosoft.com."}) == tenant_keys({"tenant": "contoso.onmicrosoft.com"})
    assert tenant_keys({"tenant": "8F7C1B2A-3D4E-4F50-9A6B-7C8D9E0F1A2B"}) == \
        ["graph-tenant:8f7c1b2a-3d4e-4f50-9a6b-7c8d9e0f1a2b"]
    local, dotted, address = (set(host_keys({"host": h, "port": p}))
                              for h, p in (("localhost", 5986), ("LOCALHOST.", 5985), ("127.0.0.1", 5986)))
    assert local == dotted                       # spelling and listener do not matter
    assert "psrp-address:127.0.0.1" in local & address


def test_a_run_whose_process_is_gone_is_listed_as_interrupted(tmp_path):
    rd = RunDir.create(tmp_path, "m365-backup-access")
    rd.write_info(RunResult(run_id=rd.run_id, runbook="m365-backup-access", mode="run"), source="builtin:x",
                  params={}, secret_sources={})
    holder = spawn(HOLDER, str(rd.path / RunDir.RUNNING), stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert [r["status"] for r in list_runs(tmp_path)] == ["running"]
        assert rd.load_result().status.value == "running"
        with pytest.raises(LockedError, match="is still running"):
            RunDir.open(tmp_path, rd.run_id).hold()       # nor resumed while it runs
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=30)
    finally:
        holder.kill()
        holder.wait(timeout=30)
    assert [r["status"] for r in list_runs(tmp_path)] == ["interrupted"]
    assert rd.load_result().status.value == "interrupted"


def test_a_file_lock_is_exclusive_within_one_process_too(tmp_path):
    a, b = FileLock(tmp_path / "x.lock"), FileLock(tmp_path / "x.lock")
    assert a.try_acquire() and not b.try_acquire() and b.is_held_elsewhere()
    a.release()
    assert not b.is_held_elsewhere() and b.try_acquire()
    b.release()
    started = time.monotonic()
    assert not FileLock(tmp_path / "never.lock").is_held_elsewhere() and time.monotonic() - started < 5
