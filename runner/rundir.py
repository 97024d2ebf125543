"""The run directory: every run's artifacts, written atomically, so a run can be inspected,
replayed or resumed (ansible-runner's lesson).

    <state>/runs/<run-id>/
        run.json            runbook, mode, inputs (secrets masked, their sources kept), status
        events.jsonl        one JSON event a line: seq, uuid, UTC time, stage, type, data
        stages/<id>.json    one StageResult a stage
        scripts/<id>.ps1    rendered scripts, as sent (secrets never in them)
        report.json         the final RunResult
        handoff.json        what a report stage hands to a person (the main runbook)
    <state>/private/        0600 files holding secrets (client secret, PFX), stable across runs
    <state>/locks/          one lock file per target (tenant, host)

`RunDir` is the one place that names these files, writes them and reads them back: the
engine records a run through it, `psrunner runs` lists runs and `resume` / `runs show` load
one."""

from __future__ import annotations

import datetime as _dt
import json
import os
import secrets as _rand
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

from .errors import InputError, LockedError
from .results import RunResult, RunStatus, StageResult, timestamp
from .secrets import MASK, Secret, redact, redact_obj, write_private
from .values import Unknown


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

    def __init__(self, state_dir: Path, run_id: str) -> None:
        self.state_dir = Path(state_dir)
        self.run_id = run_id
        self.path = self.state_dir / "runs" / run_id
        self._seq = 0
        self._lock = threading.Lock()

    @classmethod
    def create(cls, state_dir: Path, runbook: str) -> "RunDir":
        rd = cls(state_dir, new_run_id(runbook))
        (rd.path / cls.STAGES).mkdir(parents=True, exist_ok=False)
        (rd.path / cls.SCRIPTS).mkdir(exist_ok=True)
        return rd

    @classmethod
    def at(cls, path: Path) -> "RunDir":
        """The run directory at `path` (<state>/runs/<run-id>)."""
        return cls(Path(path).parent.parent, Path(path).name)

    @classmethod
    def open(cls, state_dir: Path, run_id: str) -> "RunDir":
        rd = cls(state_dir, run_id)
        if not (rd.path / cls.INFO).is_file():
            raise InputError(f"no run {run_id!r} in {rd.state_dir / 'runs'}", input="RUN_ID",
                             hint="list runs with `psrunner runs`; pass the same --state-dir as the run")
        events = rd.path / cls.EVENTS
        if events.exists():
            with open(events, encoding="utf-8") as f:
                rd._seq = sum(1 for _ in f)
        return rd

    # -- files -------------------------------------------------------------
    def write_json(self, rel: str, obj: Any) -> Path:
        p = self.path / rel
        atomic_write(p, dumps(obj, indent=2) + "\n")
        return p

    def read_json(self, rel: str) -> Any:
        return json.loads((self.path / rel).read_text(encoding="utf-8"))

    def write_info(self, result: RunResult, *, source: str, params: dict[str, Any],
                   secret_sources: dict[str, str]) -> None:
        """run.json: what ran with which inputs (secrets masked; where each came from, so
        `resume` can ask the same place again) and how it stands."""
        self.write_json(self.INFO, {
            "run_id": result.run_id, "runbook": result.runbook, "source": source,
            "mode": result.mode, "status": result.status.value, "started": result.started,
            "finished": result.finished, "resumed_from": result.resumed_from,
            "params": dict(params), "secret_sources": secret_sources,
        })

    def read_info(self) -> dict[str, Any]:
        return self.read_json(self.INFO)

    def write_stage(self, result: StageResult) -> None:
        self.write_json(f"{self.STAGES}/{result.id}.json", result.to_dict())

    def write_script(self, stage_id: str, text: str, suffix: str = "") -> Path:
        p = self.path / self.SCRIPTS / f"{stage_id}{suffix}.ps1"
        atomic_write(p, redact(text))
        return p

    def write_report(self, result: RunResult) -> None:
        self.write_json(self.REPORT, result.to_dict())

    def load_result(self) -> RunResult:
        """The run's result: its report, or, when the process died mid-run, one rebuilt from
        the stage files written so far (status interrupted)."""
        if (self.path / self.REPORT).is_file():
            return RunResult.from_dict(self.read_json(self.REPORT))
        info = self.read_info()
        result = RunResult(run_id=self.run_id, runbook=info["runbook"], mode=info["mode"],
                           status=RunStatus.INTERRUPTED, started=info.get("started") or "")
        for f in sorted((self.path / self.STAGES).glob("*.json")):
            result.stages.append(StageResult.from_dict(json.loads(f.read_text(encoding="utf-8"))))
        return result

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
        if (rd.path / RunDir.INFO).is_file():
            try:
                info = rd.read_info()
            except (OSError, ValueError):
                continue
            out.append({"run_id": d.name, "runbook": info.get("runbook"), "mode": info.get("mode"),
                        "status": info.get("status"), "started": info.get("started"),
                        "finished": info.get("finished")})
    return out


# ---------------------------------------------------------------------------- target locks

class TargetLock:
    """One lock file per target (tenant, host) so two runs cannot interleave changes.

    Created with O_EXCL (atomic on POSIX and Windows); holds the owner's pid and run id. A
    lock whose pid is gone is stale and is taken over."""

    def __init__(self, state_dir: Path, key: str, run_id: str) -> None:
        import hashlib
        self.key = key
        self.run_id = run_id
        digest = hashlib.sha256(key.encode()).hexdigest()[:16]
        self.path = Path(state_dir) / "locks" / f"{digest}.lock"
        self.held = False

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                owner = self._owner()
                if owner and _pid_alive(owner.get("pid", -1)):
                    raise LockedError(
                        f"another run ({owner.get('run_id')}, pid {owner.get('pid')}) is working on {self.key}",
                        hint="wait for it to finish; if it died, delete " + str(self.path),
                        target=self.key, lock=str(self.path)) from None
                try:
                    os.unlink(self.path)  # stale
                except FileNotFoundError:
                    pass
                continue
            with os.fdopen(fd, "w") as f:
                json.dump({"pid": os.getpid(), "run_id": self.run_id, "target": self.key,
                           "time": timestamp()}, f)
            self.held = True
            return
        raise LockedError(f"could not take the lock for {self.key}", target=self.key)  # pragma: no cover

    def _owner(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None

    def release(self) -> None:
        if self.held:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
            self.held = False


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    if pid == os.getpid():
        return True
    if sys.platform == "win32":  # pragma: no cover
        import ctypes
        handle = ctypes.windll.kernel32.OpenProcess(0x1000, False, pid)
        if handle:
            ctypes.windll.kernel32.CloseHandle(handle)
            return True
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
