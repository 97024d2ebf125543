"""The contract between the engine and the stage kinds, and between the engine and targets.

A *stage kind* is a function `(ctx, inputs) -> Outcome` registered under a name
(`graph.application`, `powershell.template`, ...). It reads the world first, computes what
differs, and changes the world only when `ctx.apply` is true (pyinfra's lesson: plan is the
same code path, minus the writes). It returns an `Outcome`: `changed` means "changed" when
applying and "would change" when planning.

In plan mode, an input that depends on an earlier stage that has not run yet arrives as an
`Unknown` (runner.values; like "known after apply"); a kind must treat it as "the object does
not exist yet" and report what it would do.

A *target* is a connection the engine opens lazily on first use and closes at the end of the
run: `ctx.target("tenant")` returns the connector for the runbook's `[targets.tenant]`
(a GraphConnector for type "graph", a HostConnector for type "psrp"). One connector per
target per run (so one PSRP runspace pool per host per run)."""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol

from ..results import Outcome

StageFn = Callable[["StageContext", dict[str, Any]], Outcome]


class Connector(Protocol):
    """What every target connector offers the engine."""

    def close(self) -> None: ...

    def metrics(self) -> dict[str, int]: ...

    def interrupt(self) -> None:
        """Stop remote work now (Ctrl-C). May be called from another thread."""


class StageContext(Protocol):
    run_id: str
    stage_id: str
    apply: bool                      # False while planning
    params: dict[str, Any]           # validated runbook params (secrets as runner.secrets.Secret)
    log: logging.Logger
    deadline: float | None           # time.monotonic() value the stage must finish by
    run_dir: Path | None

    def target(self, name: str) -> Any:
        """The connector of the runbook target `name`, opened on first use."""

    def remaining(self) -> float | None:
        """Seconds left before the deadline (None: no deadline)."""

    def write_private_file(self, relpath: str, data: str | bytes) -> Path:
        """Write a 0600 file at private_path(relpath) (secrets, PFX). Returns its path."""

    def private_path(self, relpath: str) -> Path:
        """Where a private file lives: `<state dir>/private/<relpath>`, stable across runs, so
        a re-run can find the secret file an earlier run wrote (put tenant and app in relpath)."""

    def record_script(self, text: str, suffix: str = "") -> None:
        """Keep the rendered script as scripts/<stage>[suffix].ps1 (secrets never in it)."""

    def event(self, type: str, **data: Any) -> None:
        """Append an event to events.jsonl (e.g. 'graph.request', 'psrp.stream')."""

    def count(self, metric: str, n: int = 1) -> None:
        """Add to a run metric (e.g. graph_writes)."""


@dataclass(frozen=True)
class KindSpec:
    name: str
    module: str                      # where the function lives (imported lazily)
    function: str
    target_type: str | None          # "graph" | "psrp" | None (local)
    uses_template: bool = False
    summary: str = ""


# Names -> where they live. Listed here (not discovered by import) so that loading and
# validating a runbook never imports msal, pypsrp or cryptography.
KINDS: dict[str, KindSpec] = {k.name: k for k in [
    KindSpec("local.file", "runner.stages.local", "ensure_file", None,
             summary="ensure a local file has the given content"),
    KindSpec("local.script_file", "runner.stages.local", "ensure_script_file", None, True,
             summary="render a PowerShell template to a local file for review or manual use"),
    KindSpec("local.notice", "runner.stages.local", "notices", None,
             summary="report platform notices (dates, what to do instead)"),
    KindSpec("report.handoff", "runner.stages.report", "handoff", None,
             summary="assemble the hand-off report from earlier stages"),
    KindSpec("graph.preflight", "runner.stages.graph_app", "preflight", "graph",
             summary="sign in and check the operator's rights before any write"),
    KindSpec("graph.application", "runner.stages.graph_app", "application", "graph",
             summary="ensure the Entra application and its requested permissions"),
    KindSpec("graph.service_principal", "runner.stages.graph_app", "service_principal", "graph",
             summary="ensure the application's service principal"),
    KindSpec("graph.consent", "runner.stages.graph_app", "consent", "graph",
             summary="ensure admin consent: one app role assignment per application permission"),
    KindSpec("graph.secret", "runner.stages.graph_app", "client_secret", "graph",
             summary="ensure a client secret valid beyond N days (written to a 0600 file)"),
    KindSpec("graph.certificate", "runner.stages.graph_app", "certificate", "graph",
             summary="ensure a certificate credential (self-signed or given)"),
    KindSpec("graph.remove_application", "runner.stages.graph_app", "remove_application", "graph",
             summary="remove the application and its service principal"),
    KindSpec("powershell.template", "runner.stages.sharepoint", "template", "psrp", True,
             summary="run a PowerShell template on a host over PSRP"),
    KindSpec("sharepoint.appinv_grant", "runner.stages.sharepoint", "appinv_grant", "psrp", True,
             summary="grant tenant-scope app-only rights (appinv.aspx / SharePoint Server)"),
]}


def resolve_kind(name: str) -> StageFn:
    spec = KINDS[name]
    mod = importlib.import_module(spec.module)
    return getattr(mod, spec.function)
