"""The run directory: every run's artifacts, written atomically, so a run can be inspected,
replayed or resumed (ansible-runner's lesson).

    <state>/runs/<run-id>/
        run.json            runbook, mode, inputs (secrets masked, their sources kept), status
        events.jsonl        one JSON event a line: seq, uuid, UTC time, stage, type, data
        stages/<id>.json    one StageResult a stage
        scripts/<id>.ps1    rendered scripts, as sent (secrets never in them)
        report.json         the final RunResult
        handoff.json        what a report stage hands to a person (the main runbook)
        run.lock            held by the process working on the run: `runs` tells a live
                            run from one whose process is gone (kill -9), `resume` refuses
                            a run still going
    <state>/private/        0600 files holding secrets (client secret, PFX), stable across runs
    <state>/locks/          one lock file per target (tenant, host): runner/locks.py

`RunDir` is the one place that names these files, writes them and reads them back: the
engine records a run through it, `psrunner runs` lists runs and `resume` / `runs show` load
one."""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
import secrets as _rand
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

from .errors import InputError, LockedError
from .locks import FileLock
from .results import RunResult, RunStatus, StageResult, timestamp
from .secrets import MASK, Secret, redact, redact_obj, write_private
from .values import Unknown, clip


def default_state_dir() -> Path:
    """Per-user state directory: $XDG_STATE_HOME/psrunner on Linux, the platform's
    equivalent elsewhere (platformdirs)."""
    env = os.environ.get("PSRUNNER_STATE_DIR")
    if env:
        return Path(env)
    import platformdirs
    return Path(platformdirs.user_state_dir("psrunner", appauthor=False))


def _json_default(o: Any) -> Any:
    if isinstance(o, Secret):
        return MASK
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, (set, frozenset, tuple)):
        return list(o)
    if hasattr(o, "value") and hasattr(o, "name"):  # Enum
        return o.value
    return repr(o)


def dumps(obj: Any, **kw: Any) -> str:
    return json.dumps(redact_obj(_jsonable(obj)), default=_json_default, ensure_ascii=False, **kw)


def _jsonable(obj: Any) -> Any:
    """JSON-ready copy: Unknown and other objects become text; Secrets stay for redact_obj."""
    if isinstance(obj, Unknown):
        return str(obj)
    if isinstance(obj, Secret):
        return obj
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in obj]
    return obj


def atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


RUN_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,200}")


def new_run_id(runbook: str) -> str:
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{runbook}-{_rand.token_hex(3)}"


class RunDir:
    INFO = "run.json"
    EVENTS = "events.jsonl"
    STAGES = "stages"
    SCRIPTS = "scripts"
    REPORT = "report.json"
    HANDOFF = "handoff.json"
    RUNNING = "run.lock"        # locked by the process working on the run (locks.FileLock)

    def __init__(self, state_dir: Path, run_id: str) -> None:
        self.state_dir = Path(state_dir)
        self.run_id = run_id
        self.path = self.state_dir / "runs" / run_id
        self._seq = 0
        self._lock = threading.Lock()
        self._running = FileLock(self.path / self.RUNNING)

    @classmethod
    def create(cls, state_dir: Path, runbook: str) -> "RunDir":
        rd = cls(state_dir, new_run_id(runbook))
        try:
            (rd.path / cls.STAGES).mkdir(parents=True, exist_ok=False)
            (rd.path / cls.SCRIPTS).mkdir(exist_ok=True)
        except OSError as e:
            raise InputError(f"cannot create a run directory under {rd.state_dir}: {e.strerror or e}",
                             input="--state-dir",
                             hint="give --state-dir (or PSRUNNER_STATE_DIR) a folder this user can create "
                                  "and write") from None
        return rd

    @classmethod
    def prepared(cls, state_dir: Path, run_id: str) -> "RunDir":
        """The run directory `run_id` that another process made beforehand for this run (the
        portal, for a worker that shares its state folder), made here when this machine has
        none by that name, so the run keeps the id its requester knows it by."""
        if not RUN_ID_RE.fullmatch(run_id):
            raise InputError(f"{clip(repr(run_id))} is not a run id", input="run_id",
                             hint="a run id is like 20261102T101500Z-NAME-1a2b3c")
        rd = cls(state_dir, run_id)
        (rd.path / cls.STAGES).mkdir(parents=True, exist_ok=True)
        (rd.path / cls.SCRIPTS).mkdir(exist_ok=True)
        return rd

    @classmethod
    def at(cls, path: Path) -> "RunDir":
        """The run directory at `path` (<state>/runs/<run-id>)."""
        return cls(Path(path).parent.parent, Path(path).name)

    @classmethod
    def open(cls, state_dir: Path, run_id: str) -> "RunDir":
        if not RUN_ID_RE.fullmatch(run_id):
            raise InputError(f"{clip(repr(run_id))} is not a run id", input="RUN_ID",
                             hint="list runs with `psrunner runs`; a run id is like 20261102T101500Z-NAME-1a2b3c")
        rd = cls(state_dir, run_id)
        if not (rd.path / cls.INFO).is_file():
            raise InputError(f"no run {run_id!r} in {rd.state_dir / 'runs'}", input="RUN_ID",
                             hint="list runs with `psrunner runs`; pass the same --state-dir as the run")
        events = rd.path / cls.EVENTS
        if events.is_file():
            with open(events, "rb") as f:
                rd._seq = sum(1 for _ in f)
        return rd

    # -- files -------------------------------------------------------------
    def write_json(self, rel: str, obj: Any) -> Path:
        p = self.path / rel
        atomic_write(p, dumps(obj, indent=2) + "\n")
        return p

    def read_json(self, rel: str) -> Any:
        """A JSON file of the run, or InputError naming it when it is unreadable or corrupt."""
        try:
            return json.loads((self.path / rel).read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError) as e:
            why = e.strerror if isinstance(e, OSError) and e.strerror else type(e).__name__
            raise InputError(f"run {self.run_id}: {rel} is unreadable or corrupt ({why})", input="RUN_ID",
                             hint=f"look at {self.path / rel}; start a new run with `psrunner run` "
                                  "(re-running is safe)") from None

    def write_info(self, result: RunResult, *, source: str, params: dict[str, Any],
                   secret_sources: dict[str, str], targets: list[str] | None = None) -> None:
        """run.json: what ran with which inputs (secrets masked; where each came from, so
        `resume` can ask the same place again), on which targets (their lock keys: what
        retention groups runs by), and how it stands."""
        self.write_json(self.INFO, {
            "run_id": result.run_id, "runbook": result.runbook, "source": source,
            "mode": result.mode, "status": result.status.value, "started": result.started,
            "finished": result.finished, "resumed_from": result.resumed_from,
            "params": dict(params), "secret_sources": secret_sources, "targets": list(targets or []),
            "pid": os.getpid(),
        })

    def read_info(self) -> dict[str, Any]:
        info = self.read_json(self.INFO)
        if not isinstance(info, dict) or not all(isinstance(info.get(k), str) for k in ("runbook", "mode", "source")):
            raise InputError(f"run {self.run_id}: {self.INFO} is corrupt (it does not describe a run)",
                             input="RUN_ID", hint=f"look at {self.path / self.INFO}; start a new run with "
                                                  "`psrunner run` (re-running is safe)")
        return info

    # -- is it still running? ------------------------------------------------
    def hold(self) -> None:
        """Mark the run as worked on by this process until `let_go()` (or the process's end,
        however it ends). LockedError when another process works on it."""
        if not self._running.try_acquire({"pid": os.getpid(), "time": timestamp()}):
            pid = self._running.owner().get("pid", "?")
            raise LockedError(f"run {self.run_id} is still running (pid {pid})", target=self.run_id,
                              hint="wait for it to end, or stop it (Ctrl-C) before resuming it")

    def let_go(self) -> None:
        self._running.release()

    def is_live(self) -> bool:
        """True while some process works on this run (this one or another)."""
        return self._running.held or self._running.is_held_elsewhere()

    def write_stage(self, result: StageResult) -> None:
        self.write_json(f"{self.STAGES}/{result.id}.json", result.to_dict())

    def write_script(self, stage_id: str, text: str, suffix: str = "", ext: str = ".ps1") -> Path:
        p = self.path / self.SCRIPTS / f"{stage_id}{suffix}{ext}"
        atomic_write(p, redact(text))
        return p

    def write_report(self, result: RunResult) -> None:
        self.write_json(self.REPORT, result.to_dict())

    def load_result(self) -> RunResult:
        """The run's result: its report, or, when the process died mid-run, one rebuilt from
        the stage files written so far (status interrupted)."""
        try:
            if (self.path / self.REPORT).is_file():
                return RunResult.from_dict(self.read_json(self.REPORT))
            info = self.read_info()
            result = RunResult(run_id=self.run_id, runbook=info["runbook"], mode=info["mode"],
                               status=RunStatus.RUNNING if self.is_live() else RunStatus.INTERRUPTED,
                               started=info.get("started") or "")
            for f in sorted((self.path / self.STAGES).glob("*.json")):
                result.stages.append(StageResult.from_dict(self.read_json(f"{self.STAGES}/{f.name}")))
            return result
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise InputError(f"run {self.run_id}: its records are corrupt ({type(e).__name__}: {e})",
                             input="RUN_ID", hint=f"look at {self.path}; start a new run with `psrunner run` "
                                                  "(re-running is safe)") from None

    def event(self, type: str, stage: str | None = None, **data: Any) -> dict[str, Any]:
        with self._lock:
            self._seq += 1
            ev = {"seq": self._seq, "uuid": str(uuid.uuid4()), "time": timestamp(),
                  "run_id": self.run_id, "stage": stage, "type": type, "data": data}
            line = dumps(ev)
            with open(self.path / self.EVENTS, "a", encoding="utf-8", newline="\n") as f:
                f.write(line + "\n")
        return ev

    def events(self) -> list[dict[str, Any]]:
        p = self.path / self.EVENTS
        if not p.exists():
            return []
        return [json.loads(line) for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]

    # -- private files -------------------------------------------------------
    def private_path(self, relpath: str) -> Path:
        rel = Path(relpath)
        if rel.is_absolute() or ".." in rel.parts:
            raise ValueError(f"private path must be relative and inside the state dir: {relpath}")
        return self.state_dir / "private" / rel

    def write_private(self, relpath: str, data: str | bytes) -> Path:
        p = self.private_path(relpath)
        p.parent.mkdir(parents=True, exist_ok=True)
        if sys.platform != "win32":
            os.chmod(self.state_dir / "private", 0o700)
        return write_private(p, data)


def list_runs(state_dir: Path) -> list[dict[str, Any]]:
    runs_dir = Path(state_dir) / "runs"
    if not runs_dir.is_dir():
        return []
    out = []
    for d in sorted(runs_dir.iterdir(), reverse=True):
        rd = RunDir(state_dir, d.name)
        if not (rd.path / RunDir.INFO).is_file():
            continue
        try:
            info = rd.read_info()
        except InputError:
            out.append({"run_id": d.name, "runbook": None, "mode": None, "status": "corrupt",
                        "started": None, "finished": None})
            continue
        status = info.get("status")
        if status == RunStatus.RUNNING.value and not rd.is_live():
            status = RunStatus.INTERRUPTED.value     # its process ended (kill -9, a second Ctrl-C)
        out.append({"run_id": d.name, "runbook": info.get("runbook"), "mode": info.get("mode"),
                    "status": status, "started": info.get("started"), "finished": info.get("finished")})
    return out
