"""A real Redis server as a Celery broker for tests and benchmarks: Debian's redis-server on
loopback, on a free port, in its own folder, without persistence; and `psrunner worker`
processes that take tasks from it. Everything the broker is sent can be recorded (MONITOR)."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

REDIS = shutil.which("redis-server")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def redis_server(folder: Path) -> Iterator[str]:
    """A redis-server of our own until the block ends; yields its URL (db 0)."""
    import redis
    folder.mkdir(parents=True, exist_ok=True)
    for _ in range(5):                      # another process may take the free port first
        port = _free_port()
        proc = subprocess.Popen([REDIS, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder),
                                 "--save", "", "--appendonly", "no", "--daemonize", "no", "--logfile",
                                 str(folder / "redis.log")], stdin=subprocess.DEVNULL)
        client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=2)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                client.ping()
                break
            except redis.exceptions.ConnectionError:
                time.sleep(0.05)
        if proc.poll() is None:
            break
    else:
        raise RuntimeError(f"redis-server did not start: {(folder / 'redis.log').read_text()[-2000:]}")
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


class Monitor:
    """Every command the broker receives, as redis MONITOR prints it, until `stop()`."""

    def __init__(self, url: str) -> None:
        import redis
        self.lines: list[str] = []
        self._client = redis.Redis.from_url(url)
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._listen, daemon=True)
        self._thread.start()
        self._ready.wait(10)

    def _listen(self) -> None:
        # Each line as the server sends it (quotes unescaped), not redis-py's parse of it: the
        # parse raises on a line it does not expect, which ended the recording early and left
        # the scan blind to the rest.
        try:
            with self._client.monitor() as m:
                self._ready.set()
                while True:
                    raw = m.connection.read_response()
                    line = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
                    self.lines.append(line.replace('\\"', '"'))
        except Exception:           # the server went away: recording ends
            self._ready.set()

    def text(self) -> str:
        return "\n".join(self.lines)


@contextlib.contextmanager
def workers(url: str, n: int, *, state_dir: Path, env: dict[str, str], concurrency: int = 4,
            redeliver_after: float = 3600) -> Iterator[list[subprocess.Popen]]:
    """`n` `psrunner worker` processes on `url`, ready when the block starts."""
    import redis
    procs = []
    full_env = {**os.environ, **env}
    try:
        for i in range(1, n + 1):
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "runner.cli", "worker", "--broker", url, "--concurrency", str(concurrency),
                 "--name", f"w{i}@%h", "--state-dir", str(state_dir), "--redeliver-after", str(redeliver_after)],
                env=full_env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=open(state_dir.parent / f"worker{i}.log", "wb")))
        client = redis.Redis.from_url(url)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:   # each worker registers its consumer on the queue
            if len([c for c in client.client_list() if c.get("cmd") in ("brpop", "blpop")]) >= n:
                break
            time.sleep(0.1)
        yield procs
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
