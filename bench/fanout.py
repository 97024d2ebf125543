"""Section 5, fan-out: a scheduled check of 1, 10 and 100 targets (each its own tenant and
host) at --parallel 16, here (threads of one process), and of the 100 on two Celery workers
over a real Redis broker.

Each target is its own simulated tenant and host (tests/fleet_lab.py), brought in place by a
`fleet run` first, so the figure is the steady state a timer sees: every target read in
full, nothing to change. The 1 and the 10 are the first targets of the same inventory,
chosen with --limit. `psrunner fleet check` runs as a process of its own; wall time is
its start to its exit, peak RSS is the kernel's (wait4) for that process, and on Celery the
larger of the two workers' (the client only waits). The simulators live in this process,
so their cost is in neither figure."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from runner.graph.endpoints import ALLOW_ENV

from .harness import Bench

SECTION = "5. Fan-out: 1, 10 and 100 targets at --parallel 16, local and on two Celery workers"
ORDER = 55
ROOT = Path(__file__).resolve().parents[1]
RUNBOOK = "m365-backup-access"


def _psrunner(args: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, peak RSS in MiB) of one `psrunner` process, which must end with exit 0
    (every target in place): any other end is no figure but a failure of the section."""
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "runner.cli", *args], cwd=ROOT, env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    out = proc.stdout.read() if proc.stdout else b""
    _, status, usage = os.wait4(proc.pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise RuntimeError(f"psrunner {' '.join(args[:2])} ended with exit {code}: {out[-2000:]!r}")
    return time.monotonic() - t0, usage.ru_maxrss / 1024


def measure(bench: Bench) -> None:
    sys.path.insert(0, str(ROOT))
    from tests.fleet_lab import fleet_lab
    from tests.redis_broker import REDIS, redis_server

    n = 3 if bench.smoke else 100
    sizes = {1: "one", 10: "ten"} if not bench.smoke else {1: "one"}
    with tempfile.TemporaryDirectory(prefix="psrunner-bench-fleet-") as tmp:
        base = Path(tmp)
        groups = {name: list(range(1, size + 1)) for size, name in sizes.items()}
        with fleet_lab(base / "lab", n, deadline=600, groups=groups) as lab:
            env = {**os.environ, **lab.env, "PSRUNNER_STATE_DIR": str(base / "state"),
                   ALLOW_ENV: "1"}                                  # the targets are simulators on loopback
            common = [RUNBOOK, "-i", str(lab.inventory), "--parallel", "16", "-q", "-o", "json"]
            wall, _ = _psrunner(["fleet", "run", *common, "--yes"], env)
            bench.figure("fleet.run.local", f"fleet run, {n} targets, first time (local)", round(wall, 1), "s")
            for size, group in sizes.items():
                wall, rss = _psrunner(["fleet", "check", *common, "--limit", group], env)
                bench.figure(f"fanout.check.{size}.wall", f"fleet check, {size} target(s) (local)", round(wall, 1), "s")
                bench.figure(f"fanout.check.{size}.rss", f"fleet check, {size} target(s) (local): peak RSS",
                             round(rss), "MiB")
            wall, rss = _psrunner(["fleet", "check", *common], env)
            bench.figure("fleet.check.local.wall", f"fleet check, {n} targets (local)", round(wall, 1), "s")
            bench.figure("fleet.check.local.rss", f"fleet check, {n} targets (local): peak RSS", round(rss), "MiB")
            if REDIS is None:
                bench.figure("fleet.check.celery.wall", f"fleet check, {n} targets (2 Celery workers)", None, "s",
                             note="redis-server is not installed")
                return
            with redis_server(base / "redis") as url:
                wenv = {**lab.env, ALLOW_ENV: "1", "PSRUNNER_STATE_DIR": str(base / "state")}   # shared: one machine
                workers = [subprocess.Popen([sys.executable, "-m", "runner.cli", "worker", "--broker", url,
                                             "--concurrency", "8", "--name", f"w{i}@%h", "-q"], cwd=ROOT,
                                            env={**os.environ, **wenv}, stdin=subprocess.DEVNULL,
                                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                           for i in (1, 2)]
                try:
                    time.sleep(3)            # both workers connected to the broker
                    wall, client_rss = _psrunner(["fleet", "check", *common, "--executor", "celery",
                                                  "--broker", url], env)
                finally:
                    peaks = []
                    for w in workers:
                        w.terminate()
                        _, _, usage = os.wait4(w.pid, 0)
                        peaks.append(usage.ru_maxrss / 1024)
                bench.figure("fleet.check.celery.wall", f"fleet check, {n} targets (2 Celery workers x 8)",
                             round(wall, 1), "s")
                bench.figure("fleet.check.celery.rss", f"fleet check, {n} targets (2 Celery workers): peak RSS "
                             "of a worker", round(max(peaks)), "MiB", note=f"client {round(client_rss)} MiB")
