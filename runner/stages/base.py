"""The contract between the engine and the stage kinds, and between stage kinds and targets.

A *stage kind* is a function `(ctx, inputs) -> Outcome` registered under a name
(`graph.application`, `powershell.template`, ...) in runner.registry. It reads the world
first, computes what differs, and changes the world only when `ctx.apply` is true (pyinfra's
lesson: plan is the same code path, minus the writes). It returns an `Outcome`: `changed`
means "changed" when applying and "would change" when planning.

In plan mode, an input that depends on an earlier stage that has not run yet arrives as an
`Unknown` (runner.values; like "known after apply"); a kind must treat it as "the object does
not exist yet" and report what it would do.

A *target* is a connection the engine opens lazily on first use and closes at the end of the
run: `ctx.target("tenant")` returns the connector for the runbook's `[targets.tenant]`, a
`GraphTarget` for type "graph" and a `HostTarget` for type "psrp". One connector per target
per run (so one PSRP runspace pool per host per run)."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Protocol

from ..results import Outcome, StageResult
from ..runbook import quoted_notice

if TYPE_CHECKING:                    # types only: kinds receive these, they never build them
    from ..graph.auth import SignInSettings
    from ..graph.client import GraphClient
    from ..graph.facts import Facts
    from ..powershell.result import Invocation
    from ..runbook import Stage

StageFn = Callable[["StageContext", dict[str, Any]], Outcome]


class StageContext(Protocol):
    """What a stage kind may use from the run (the engine's RunningStage implements it)."""
    run_id: str
    stage_id: str
    stage: Stage                     # the stage as the runbook declares it (target, raw inputs)
    apply: bool                      # False while planning
    params: dict[str, Any]           # validated runbook params (secrets as runner.secrets.Secret)
    log: logging.Logger
    deadline: float | None           # time.monotonic() value the stage must finish by
    run_dir: Path | None
    state_dir: Path
    interactive: bool                # a person at a terminal may be asked (device-code sign-in)
    cancelled: threading.Event       # set on a deadline or Ctrl-C
    notices: list[dict[str, Any]]    # the runbook's platform notices that apply to this run

    def results(self) -> list[StageResult]:
        """The results of the stages before this one (read-only use)."""

    def target(self, name: str | None = None) -> Any:
        """The connector of the runbook target `name` (default: the stage's own target),
        opened on first use: a GraphTarget or a HostTarget."""

    def remaining(self) -> float | None:
        """Seconds left before the deadline (None: no deadline)."""

    def write_private_file(self, relpath: str, data: str | bytes) -> Path:
        """Write a 0600 file at private_path(relpath) (secrets, PFX). Returns its path."""

    def private_path(self, relpath: str) -> Path:
        """Where a private file lives: `<state dir>/private/<relpath>`, stable across runs, so
        a re-run can find the secret file an earlier run wrote (put tenant and app in relpath)."""

    def record_script(self, text: str, suffix: str = "", ext: str = ".ps1") -> None:
        """Keep the rendered script (or another rendered text, by `ext`) as
        scripts/<stage>[suffix][ext] (secrets never in it)."""

    def event(self, type: str, **data: Any) -> None:
        """Append an event to events.jsonl (e.g. 'graph.request', 'psrp.stream')."""

    def count(self, metric: str, n: int = 1) -> None:
        """Add to a run metric (e.g. graph_writes)."""


def notice_of(ctx: StageContext, notice_id: str) -> dict[str, Any] | None:
    """The runbook's platform notice `notice_id` (`Notice.to_dict`), or None when the runbook
    does not declare it or it does not apply to this run."""
    return next((n for n in ctx.notices if n.get("id") == notice_id), None)


def notice_line(ctx: StageContext, notice_id: str) -> str | None:
    """The runbook's platform notice `notice_id` in one line, or None when the runbook does
    not declare it or it does not apply to this run. Stage code names notices by id; their
    text lives once, in the runbook's [[notices]]."""
    n = notice_of(ctx, notice_id)
    return None if n is None else quoted_notice(n)


class GraphTarget(Protocol):
    """A `graph` target as the Entra kinds use it (runner.graph.connector.GraphConnector)."""
    tenant: str
    offline: bool                    # plan without signing in
    signin: SignInSettings
    client: GraphClient
    facts: Facts                     # what this run has read or written in the tenant
    tenant_id: str                   # the tenant's id (from the token once signed in)

    def begin_stage(self, deadline: float | None) -> None:
        """A fresh cancel flag and the stage's deadline for every call that follows."""

    def claims(self) -> dict[str, Any]:
        """Who signed in and what the token grants (signs in when needed)."""

    def require(self, *, manage_apps: bool = True, grant_roles: bool = False,
                grant_graph_roles: bool = False) -> None:
        """AuthError naming what is missing unless the token grants the rights for the work."""

    def app_claims(self, client_id: str, *, secret: Any = None, certificate: Path | None = None) -> dict[str, Any]:
        """The claims of a token another application gets with its own credential (a Secret
        or a certificate file): proof that it signs in."""


class HostTarget(Protocol):
    """A `psrp` target as the PowerShell kinds use it (runner.powershell.connector.HostConnector)."""
    name: str
    host: str

    def invoke(self, script: str, parameters: dict[str, Any] | None = None, *,
               secure: set[str] | frozenset[str] = frozenset(), deadline: float | None = None,
               label: str | None = None) -> Invocation:
        """Run a script with parameters bound by its param() block; secrets as SecureStrings."""
