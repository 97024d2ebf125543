"""The library front door. The CLI is a thin layer over these functions; scripts and tests
can call them directly.

    rb = load_runbook("m365-backup-access")
    values, sources = resolve_params(rb, {"tenant": "contoso.onmicrosoft.com"})
    result = plan(rb, values)
    result = run(rb, values, secret_sources=sources)
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from .catalog import Catalog, Entry
from .errors import InputError
from .params import Prompt, check_before_run, resolve_params
from .registry import open_target
from .results import RunResult
from .retention import Removed, default_keep_checks, keep_newest, kind_of, parse_age, prune
from .rundir import RunDir, default_state_dir, list_runs
from .runbook import Runbook

log = logging.getLogger("psrunner.api")

if TYPE_CHECKING:       # the engine is imported when something runs: `list` and `show` start faster
    from .engine import EventSink


def catalog(runbook_dirs: Sequence[str | Path] = (), environ: Mapping[str, str] | None = None) -> Catalog:
    """The runbooks reachable by name: `runbook_dirs` first, then PSRUNNER_RUNBOOKS, the
    user's and the system's config folders, then the built-ins (runner.catalog)."""
    return Catalog(runbook_dirs, environ)


def list_runbooks(runbook_dirs: Sequence[str | Path] = (), audience: str | None = None) -> list[Entry]:
    """The catalog's runbooks (the first of each name), for one audience when given."""
    return Catalog(runbook_dirs).entries(audience)


def load_runbook(name_or_path: str, runbook_dirs: Sequence[str | Path] = ()) -> Runbook:
    """A runbook by name (searched as `catalog` says), `builtin:NAME`, or a .toml path."""
    return Catalog(runbook_dirs).load(name_or_path)


def applicable(rb: Runbook, given: Mapping[str, Any],
               runbook_dirs: Sequence[str | Path] = ()) -> tuple[dict[str, Any], list[str]]:
    """(`given` without what only the runbooks `rb` accepts the parameters of take, the
    names left out): a params file written for onboarding serves offboarding. Any other
    unknown name stays, for resolve_params to refuse."""
    theirs: set[str] = set()
    for name in rb.accepts_params_of:
        theirs |= set(load_runbook(name, runbook_dirs).params)
    foreign = theirs - set(rb.params)
    return {k: v for k, v in given.items() if k not in foreign}, sorted(k for k in given if k in foreign)


def _execute(rb: Runbook, params: dict[str, Any], mode: str, *, state_dir: Path | None,
             secret_sources: dict[str, str] | None, on_event: EventSink | None,
             interactive: bool, opener=None, run_dir: RunDir | None = None,
             previous: RunResult | None = None, extra_metrics=None, keep: int | None = None,
             deadline: float | None = None) -> RunResult:
    from .engine import Engine, Options
    if opener is None:
        # bad target settings (a sign-in without its secret, a CA bundle that is not PEM...) and
        # stage inputs (contradicting each other, a certificate file that does not open) end
        # here with exit 2 naming the parameter: before a run directory, a stage or a connection
        check_before_run(rb, params)
    # how many runs of this kind to keep ($PSRUNNER_KEEP_CHECKS for checks): a bad value is
    # refused before the run, not found after it
    keep = keep if keep is not None else (default_keep_checks() if mode == "check" else None)
    sd = Path(state_dir) if state_dir else default_state_dir()
    rd = run_dir or RunDir.create(sd, rb.name)
    opts = Options(mode=mode, state_dir=sd, interactive=interactive, on_event=on_event,
                   opener=opener or open_target, extra_metrics=extra_metrics, deadline=deadline)
    result = Engine(rb, params, rd, opts, secret_sources=secret_sources, previous=previous).execute()
    _retain(rd, mode, keep)
    return result


def _retain(rd: RunDir, mode: str, n: int | None) -> None:
    """Keep the newest `n` runs of this kind (runbook, targets, mode); None keeps them all.
    A run never fails for it."""
    if n is None:
        return
    try:
        removed = keep_newest(rd.state_dir, kind_of(rd.read_info()), n, spare=rd.run_id)
    except OSError as e:
        log.warning("could not remove older runs from %s: %s", rd.state_dir / "runs", e)
        return
    if removed:
        log.info("removed %d older %s run(s) of %s, keeping the newest %d", len(removed), mode, removed[0].runbook, n)


def plan(rb: Runbook, params: dict[str, Any], *, state_dir: Path | None = None,
         on_event: EventSink | None = None, interactive: bool = False, opener=None,
         secret_sources: dict[str, str] | None = None, extra_metrics=None,
         run_dir: RunDir | None = None, keep: int | None = None, deadline: float | None = None) -> RunResult:
    """Read the world and report what would change. Changes nothing.

    `run_dir` (made with `new_run_dir`) lets a caller know the run's id before it starts,
    as the portal does to show its progress. `keep`: afterwards keep only the newest N runs
    of this runbook, targets and mode (runner.retention). `deadline`: a time.monotonic() by
    which the run ends, stages cut short at it (a fleet's per-target deadline). The same
    for `check` and `run`."""
    return _execute(rb, params, "plan", state_dir=state_dir, secret_sources=secret_sources,
                    on_event=on_event, interactive=interactive, opener=opener,
                    extra_metrics=extra_metrics, run_dir=run_dir, keep=keep, deadline=deadline)


def check(rb: Runbook, params: dict[str, Any], *, state_dir: Path | None = None,
          on_event: EventSink | None = None, interactive: bool = False, opener=None,
          secret_sources: dict[str, str] | None = None, extra_metrics=None,
          run_dir: RunDir | None = None, keep: int | None = None, deadline: float | None = None) -> RunResult:
    """A plan recorded as a check: is everything in place? Changes nothing; the result's
    `exit_code()` says 0 in place, 3 drift, 4 a person must act (runner.results). Keeps the
    newest retention.default_keep_checks() checks of this runbook and targets unless `keep`."""
    return _execute(rb, params, "check", state_dir=state_dir, secret_sources=secret_sources,
                    on_event=on_event, interactive=interactive, opener=opener,
                    extra_metrics=extra_metrics, run_dir=run_dir, keep=keep, deadline=deadline)


def run(rb: Runbook, params: dict[str, Any], *, state_dir: Path | None = None,
        on_event: EventSink | None = None, interactive: bool = False, opener=None,
        secret_sources: dict[str, str] | None = None, extra_metrics=None,
        run_dir: RunDir | None = None, keep: int | None = None, deadline: float | None = None) -> RunResult:
    """Check each stage's state and change what differs (`run_dir`, `keep`, `deadline`: as
    for `plan`)."""
    return _execute(rb, params, "run", state_dir=state_dir, secret_sources=secret_sources,
                    on_event=on_event, interactive=interactive, opener=opener,
                    extra_metrics=extra_metrics, run_dir=run_dir, keep=keep, deadline=deadline)


def new_run_dir(rb: Runbook, state_dir: Path | None = None) -> RunDir:
    """An empty run directory for `rb` under `state_dir` (the default state folder when None):
    its run id is known before `plan` or `run` is called with it."""
    return RunDir.create(Path(state_dir) if state_dir else default_state_dir(), rb.name)


def load_run(run_id: str, state_dir: Path | None = None) -> tuple[RunDir, dict[str, Any], RunResult]:
    """(run dir, run.json, result so far) of an earlier run."""
    sd = Path(state_dir) if state_dir else default_state_dir()
    rd = RunDir.open(sd, run_id)
    return rd, rd.read_info(), rd.load_result()


def resume(run_id: str, *, state_dir: Path | None = None, on_event: EventSink | None = None,
           interactive: bool = False, opener=None, secret_files: dict[str, str] | None = None,
           prompt: Prompt | None = None, environ: dict[str, str] | None = None,
           extra_metrics=None, confirm: Callable[[RunResult], bool] | None = None) -> RunResult | None:
    """Run an earlier run again, in its own run directory, skipping the stages that already
    finished (ok or changed) with the same inputs. Secrets are asked for again from the
    sources the first attempt used (environment, file, prompt); they are never stored.

    With `confirm`, the runbook is planned first (a plan run of its own) and `confirm(plan)`
    decides whether to go on; None when it says no."""
    rd, info, previous = load_run(run_id, state_dir)
    if info.get("mode") != "run":
        raise InputError(f"run {run_id} was a plan; there is nothing to resume", input="RUN_ID",
                         hint="start it with `psrunner run`")
    rb = load_runbook(info["source"])       # the same file (or built-in) as the first attempt
    given = {k: v for k, v in info.get("params", {}).items() if not rb.params.get(k) or not rb.params[k].secret}
    files = dict(secret_files or {})
    for name, src in (info.get("secret_sources") or {}).items():
        if src.startswith("file:") and name not in files:
            files[name] = src[5:]
    values, sources = resolve_params(rb, given, secret_files=files, prompt=prompt, environ=environ)
    if confirm is not None:
        preview = _execute(rb, values, "plan", state_dir=rd.state_dir, secret_sources=sources,
                           on_event=on_event, interactive=interactive, opener=opener)
        if not confirm(preview):
            return None
    return _execute(rb, values, "run", state_dir=rd.state_dir, secret_sources=sources,
                    on_event=on_event, interactive=interactive, opener=opener, run_dir=rd,
                    previous=previous, extra_metrics=extra_metrics)


def render(rb: Runbook, stage_id: str) -> str:
    """The script a stage would send, rendered with its `vars` (data travels as parameters,
    so the script text holds no parameter values)."""
    stage = rb.stage(stage_id)
    if not stage.template:
        raise InputError(f"stage {stage_id!r} of {rb.name} runs no template", input="--stage",
                         hint="stages with templates: " + ", ".join(s.id for s in rb.stages if s.template))
    from .powershell.templates import render_template
    return render_template(stage.template, stage.vars).text


def runs(state_dir: Path | None = None) -> list[dict[str, Any]]:
    return list_runs(Path(state_dir) if state_dir else default_state_dir())


def prune_runs(older_than: str, state_dir: Path | None = None, *, dry_run: bool = False) -> list[Removed]:
    """Remove the finished runs started more than `older_than` ('30d', '12h') ago; never a
    run under way, never private files (runner.retention). Returns what was removed."""
    return prune(Path(state_dir) if state_dir else default_state_dir(), older_than=parse_age(older_than),
                 dry_run=dry_run)


__all__ = ["catalog", "check", "list_runbooks", "load_run", "load_runbook", "new_run_dir", "plan", "prune_runs",
           "render", "resolve_params", "resume", "run", "runs"]
