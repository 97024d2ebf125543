"""Running `psrunner` in a child process: the way a scheduler does (`psrunner`: no terminal at
all), or the way a person at a keyboard does (`at_terminal`: stdin, stderr and unless asked
otherwise stdout on a pseudo-terminal, answering its questions as they appear; POSIX only)."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass


def psrunner(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    """`python -m runner.cli ARGS` with no terminal: stdin empty, output captured."""
    return subprocess.run([sys.executable, "-m", "runner.cli", *args], capture_output=True, text=True,
                          env=env, timeout=timeout, stdin=subprocess.DEVNULL)


@dataclass
class Session:
    code: int
    terminal: str          # everything written to the terminal (stderr, and stdout when on it)
    stdout: str            # stdout when it was a pipe ("" when it was the terminal)


def at_terminal(*args: str, env: dict[str, str], answers: dict[str, str] | None = None,
                stdout_to_pipe: bool = False, interrupt_when: str | None = None,
                columns: int = 80, timeout: float = 120) -> Session:
    """Run `python -m runner.cli ARGS` with stdin and stderr on a terminal `columns` wide.
    `answers`: text to type once the terminal shows a prompt containing the key.
    `stdout_to_pipe`: stdout goes to a pipe (`psrunner ... | tee`), not the terminal.
    `interrupt_when`: press Ctrl-C (SIGINT to the process) once the terminal shows this text."""
    import fcntl
    import pty
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    proc = subprocess.Popen([sys.executable, "-m", "runner.cli", *args], stdin=slave,
                            stdout=subprocess.PIPE if stdout_to_pipe else slave, stderr=slave,
                            env={**env, "COLUMNS": str(columns)})
    os.close(slave)
    pending = dict(answers or {})
    term, out = bytearray(), bytearray()
    streams = [master] + ([proc.stdout.fileno()] if stdout_to_pipe and proc.stdout else [])
    deadline = time.monotonic() + timeout
    try:
        while streams and time.monotonic() < deadline:
            ready = select.select(streams, [], [], 0.5)[0]
            if not ready and proc.poll() is not None:
                break
            for fd in ready:
                try:
                    data = os.read(fd, 65536)
                except OSError:          # the child closed the terminal
                    data = b""
                if not data:
                    streams.remove(fd)
                    continue
                (term if fd == master else out).extend(data)
            shown = term.decode(errors="replace")
            for prompt in [p for p in pending if p in shown]:
                os.write(master, pending.pop(prompt).encode() + b"\n")
            if interrupt_when and interrupt_when in shown:
                interrupt_when = None
                proc.send_signal(signal.SIGINT)
        else:
            if streams:
                proc.kill()
        code = proc.wait(timeout=30)
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
    return Session(code, term.decode(errors="replace").replace("\r\n", "\n"), out.decode(errors="replace"))
