"""Section 4: start-up of the commands people type first, and the import audit.

Each command runs as a new process (`python -m runner.cli ...`, what the `psrunner` script
does), `bench.repeats * 4` times; the figure is the median. The audit runs each command in a
process that then lists which heavy libraries it imported: none may be."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from .harness import Bench, exactly

SECTION = "4. Start-up (median of 20 runs) and the import audit"
ORDER = 40
ROOT = Path(__file__).resolve().parents[1]
COMMANDS = {"--help": ["--help"], "list": ["list"], "show": ["show", "m365-backup-access"]}
HEAVY = ("msal", "pypsrp", "cryptography", "jinja2")


def _run(argv: list[str]) -> float:
    t0 = time.monotonic()
    subprocess.run([sys.executable, "-m", "runner.cli", *argv], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
    return time.monotonic() - t0


def _heavy_imports(argv: list[str]) -> list[str]:
    code = ("import sys\nfrom runner.cli import main\n"
            f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
            f"print('heavy:' + ','.join(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         check=True, timeout=60)
    last = out.stdout.strip().splitlines()[-1]
    assert last.startswith("heavy:"), out.stdout
    return [m for m in last[len("heavy:"):].split(",") if m]


def measure(bench: Bench) -> None:
    for name, argv in COMMANDS.items():
        median, samples = bench.median(lambda argv=argv: _run(argv), repeats=bench.repeats * 4)
        bench.figure(f"startup.{name}", f"psrunner {' '.join(argv)}", round(median, 3), "s",
                     samples=[round(x, 3) for x in samples])
        heavy = _heavy_imports(argv)
        bench.figure(f"startup.{name}.heavy", f"psrunner {' '.join(argv)}: heavy libraries imported",
                     len(heavy), "", exactly(0), note=", ".join(heavy))
