"""How long run directories stay: every check leaves one (~190 KB for the main runbook), so a
15-minute timer would grow a state folder by gigabytes a year without this.

Two rules, both over <state>/runs/ only:
- keep the newest N runs of a kind, a kind being runbook + targets (their lock keys, from
  run.json) + mode: `--keep N` after any command, and by default after every `check`
  (`DEFAULT_KEEP_CHECKS`, or $PSRUNNER_KEEP_CHECKS);
- `psrunner runs prune --older-than 30d`: every finished run started before then.

Never removed: a run still under way (RunDir.is_live: a process holds its run lock), the run just made, and anything
outside runs/ (private/ holds secrets the next run reads; locks/ and refusals/ are live state).
Each removal is reported (run id, kind, size), so `runs prune` can say what it removed."""

from __future__ import annotations

import datetime as _dt
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from .errors import InputError
from .rundir import RunDir
from .values import clip

DEFAULT_KEEP_CHECKS = 96        # a day of checks every 15 minutes, per runbook and target
KEEP_CHECKS_ENV = "PSRUNNER_KEEP_CHECKS"
_AGE = re.compile(r"(\d+)\s*([smhdw])")
MAX_AGE_DAYS = 36500            # older than a run can be; more would overflow a date
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


@dataclass
class Removed:
    run_id: str
    runbook: str
    mode: str
    started: str
    bytes: int


def parse_age(text: str, option: str = "--older-than") -> _dt.timedelta:
    """'30d', '12h', '2w', '90m', '45s' (or several: '1d12h') as a duration."""
    parts = _AGE.findall(text.strip().lower())
    if not parts or _AGE.sub("", text.strip().lower()).strip():
        raise InputError(f"{option} {clip(text)!r} is not a duration", input=option,
                         hint="write a number and a unit: 30d, 12h, 2w, 90m, 45s")
    seconds = sum(int(n) * _UNIT[u] for n, u in parts)
    if seconds > MAX_AGE_DAYS * 86400:
        raise InputError(f"{option} {clip(text)!r} is more than {MAX_AGE_DAYS:,} days", input=option,
                         hint="write a duration of at most 100 years: 30d, 12h, 2w")
    return _dt.timedelta(seconds=seconds)


def default_keep_checks(environ: dict[str, str] | None = None) -> int:
    """How many checks of a runbook and target stay by default ($PSRUNNER_KEEP_CHECKS)."""
    raw = (os.environ if environ is None else environ).get(KEEP_CHECKS_ENV, "").strip()
    if not raw:
        return DEFAULT_KEEP_CHECKS
    if not raw.isdigit() or int(raw) < 1:
        raise InputError(f"{KEEP_CHECKS_ENV}={raw!r} is not a whole number of runs", input=KEEP_CHECKS_ENV,
                         hint=f"set it to 1 or more (default {DEFAULT_KEEP_CHECKS}), or unset it")
    return int(raw)


def _runs(state_dir: Path) -> Iterator[tuple[RunDir, dict[str, Any]]]:
    runs = Path(state_dir) / "runs"
    if not runs.is_dir():
        return
    for d in sorted(runs.iterdir()):
        rd = RunDir(Path(state_dir), d.name)
        try:
            yield rd, rd.read_info()
        except (OSError, ValueError, InputError):
            continue        # not a run directory (or half written, or corrupt): not ours to remove


def kind_of(info: dict[str, Any]) -> tuple[str, tuple[str, ...], str]:
    """What makes runs comparable: the runbook, its targets (lock keys) and the mode."""
    return str(info.get("runbook")), tuple(info.get("targets") or ()), str(info.get("mode"))


def _remove(rd: RunDir, info: dict[str, Any], dry_run: bool) -> Removed:
    size = sum(f.stat().st_size for f in rd.path.rglob("*") if f.is_file())
    if not dry_run:
        shutil.rmtree(rd.path)
    return Removed(rd.run_id, str(info.get("runbook")), str(info.get("mode")), str(info.get("started")), size)


def keep_newest(state_dir: Path, kind: tuple[str, tuple[str, ...], str], keep: int, *,
                spare: str | None = None, dry_run: bool = False) -> list[Removed]:
    """Remove all but the newest `keep` finished runs of `kind` (`spare`: a run id never removed)."""
    if keep < 1:
        raise InputError(f"--keep {keep}: keep at least one run", input="--keep", hint="--keep 1 or more")
    same = [(rd, info) for rd, info in _runs(state_dir) if kind_of(info) == kind]
    same.sort(key=lambda x: (str(x[1].get("started") or ""), x[0].run_id), reverse=True)
    return [_remove(rd, info, dry_run) for rd, info in same[keep:]
            if rd.run_id != spare and not rd.is_live()]


def prune(state_dir: Path, *, older_than: _dt.timedelta, dry_run: bool = False,
          now: _dt.datetime | None = None) -> list[Removed]:
    """Remove every finished run that started more than `older_than` ago."""
    cutoff = (now or _dt.datetime.now(_dt.timezone.utc)) - older_than
    removed = []
    for rd, info in _runs(state_dir):
        started = _when(info.get("started"))
        if started is not None and started < cutoff and not rd.is_live():
            removed.append(_remove(rd, info, dry_run))
    return removed


def _when(text: Any) -> _dt.datetime | None:
    try:
        return _dt.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None


__all__ = ["DEFAULT_KEEP_CHECKS", "Removed", "default_keep_checks", "keep_newest", "kind_of", "parse_age", "prune"]
