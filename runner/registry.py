"""What a runbook may name, and where each lives: the stage kinds (`kind = "graph.consent"`)
and the target types (`[targets.NAME] type = "psrp"`).

Both tables are written out here, as module and function names, rather than discovered by
importing: loading, validating and showing a runbook then never imports msal, pypsrp,
cryptography or jinja2, and a module is imported only when a stage or a target of its kind
is used (`stage_kind`, `check_stage`, `open_target`, `check_target`, `target_lock_keys`).

A stage kind may name a `check` function beside it: `(inputs) -> None`, the checks that need no
connection (how inputs relate), run by `check_stage` before any stage runs.

A target type's module offers three functions:

    open_target(settings, env) -> a connector      (no network yet: it connects on first use)
    check_settings(settings, name) -> None          (offline checks: InputError naming the setting)
    lock_keys(settings) -> list[str]                (what two runs must not change at once: the
                                                     target's canonical identities known before
                                                     connecting; a connector claims more, such
                                                     as a tenant's id once signed in, through
                                                     `TargetEnv.claim`)

A connector offers the engine `close()`, `metrics()` and `interrupt()` (the `Connector`
protocol), and is a context manager that closes itself."""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

from .results import Outcome

# ---------------------------------------------------------------------------- stage kinds

@dataclass(frozen=True)
class KindSpec:
    name: str
    module: str                      # where the function lives (imported lazily)
    function: str
    target_type: str | None          # "graph" | "psrp" | None (local)
    uses_template: bool = False
    summary: str = ""
    check: str | None = None         # (inputs) -> None: offline checks, before any connection


KINDS: dict[str, KindSpec] = {k.name: k for k in [
    KindSpec("local.file", "runner.stages.local", "ensure_file", None,
             summary="ensure a local file has the given content"),
    KindSpec("local.script_file", "runner.stages.local", "ensure_script_file", None, True,
             summary="render a PowerShell template to a local file for review or manual use",
             check="check_script_inputs"),
    KindSpec("local.notice", "runner.stages.local", "notices", None,
             summary="report platform notices (dates, what to do instead)"),
    KindSpec("report.handoff", "runner.stages.report", "handoff", None,
             summary="assemble the hand-off report from earlier stages"),
    KindSpec("graph.preflight", "runner.stages.entra", "preflight", "graph",
             summary="sign in and check the operator's rights before any write"),
    KindSpec("graph.application", "runner.stages.entra", "application", "graph",
             summary="ensure the Entra application and its requested permissions"),
    KindSpec("graph.service_principal", "runner.stages.entra", "service_principal", "graph",
             summary="ensure the application's service principal"),
    KindSpec("graph.consent", "runner.stages.entra", "consent", "graph",
             summary="ensure admin consent: one app role assignment per application permission"),
    KindSpec("graph.secret", "runner.stages.entra_credentials", "client_secret", "graph",
             summary="ensure a client secret valid beyond N days (written to a 0600 file)",
             check="check_secret_inputs"),
    KindSpec("graph.certificate", "runner.stages.entra_credentials", "certificate", "graph",
             summary="ensure a certificate credential (self-signed or given)", check="check_certificate"),
    KindSpec("graph.find_application", "runner.stages.entra_access", "find_application", "graph",
             summary="find an existing application by unique name (read-only)"),
    KindSpec("graph.verify_access", "runner.stages.entra_access", "verify_access", "graph",
             summary="check the application, its consent, its credentials and that it signs in (read-only)"),
    KindSpec("graph.retire_credentials", "runner.stages.entra_credentials", "retire_credentials", "graph",
             summary="hand a new credential over, or remove the older ones it replaces"),
    KindSpec("graph.remove_application", "runner.stages.entra", "remove_application", "graph",
             summary="remove the application and its service principal"),
    KindSpec("powershell.template", "runner.stages.powershell", "template", "psrp", True,
             summary="run a PowerShell template on a host over PSRP"),
    KindSpec("sharepoint.module", "runner.stages.spo_module", "ensure_module", "psrp", True,
             summary="ensure the SharePoint Online module the sign-in needs, from the host's facts when they show it"),
    KindSpec("activedirectory.reset_password", "runner.stages.activedirectory", "reset_password", "psrp", True,
             summary="set a generated one-time password the domain accepts, handed over once"),
    KindSpec("sharepoint.appinv_grant", "runner.stages.sharepoint", "appinv_grant", "psrp", True,
             summary="grant tenant-scope app-only rights (appinv.aspx / SharePoint Server)",
             check="check_grant_inputs"),
    KindSpec("sharepoint.read_settings", "runner.stages.spo_settings", "read_settings", "psrp",
             summary="read the SharePoint Online tenant settings and say what they mean (read-only)"),
]}


def check_stage(name: str, inputs: dict[str, Any]) -> None:
    """The stage kind's offline checks of `inputs` (resolved from the parameters; what earlier
    stages give is Unknown): an InputError naming the input, before any stage runs."""
    spec = KINDS[name]
    if spec.check:
        getattr(importlib.import_module(spec.module), spec.check)(inputs)


def stage_kind(name: str) -> Callable[[Any, dict[str, Any]], Outcome]:
    """The function of stage kind `name` (its module imported now): (StageContext, inputs)
    -> Outcome, see runner.stages.base."""
    spec = KINDS[name]
    return getattr(importlib.import_module(spec.module), spec.function)


# ---------------------------------------------------------------------------- target types

@dataclass(frozen=True)
class TargetSpec:
    type: str
    module: str                      # defines open_target, check_settings, lock_keys
    summary: str = ""


TARGETS: dict[str, TargetSpec] = {t.type: t for t in [
    TargetSpec("graph", "runner.graph.connector", "Microsoft Graph in one tenant (msal + requests)"),
    TargetSpec("psrp", "runner.powershell.connector", "PowerShell on one Windows host over WinRM (pypsrp)"),
]}


def _null_event(type: str, **data: Any) -> None:
    """Where a connector's events go when nobody records them."""


def _null_claim(key: str) -> None:
    """A connector's lock claims when nobody keeps locks (a library caller, a test)."""


@dataclass
class TargetEnv:
    """What a connector may use from the run that opened it. The engine makes one per
    target; a library caller or a test may make its own (every field has a default)."""
    name: str = "target"
    state_dir: Path = field(default_factory=lambda: Path("."))
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("psrunner.target"))
    interactive: bool = False
    event: Callable[..., None] = _null_event
    # take the target lock for an identity learnt while connected (LockedError when another
    # run holds it); the engine's does so in a run, not in a plan
    claim: Callable[[str], None] = _null_claim


class Connector(Protocol):
    """What every target connector offers the engine."""

    def close(self) -> None: ...

    def metrics(self) -> dict[str, int]: ...

    def interrupt(self) -> None:
        """Stop remote work now (Ctrl-C). May be called from another thread."""

    def __enter__(self) -> Any: ...

    def __exit__(self, *exc: object) -> None: ...


def _target_module(target_type: str) -> Any:
    return importlib.import_module(TARGETS[target_type].module)


def open_target(target_type: str, settings: dict[str, Any], env: TargetEnv) -> Connector:
    """A connector for a target of `target_type` (no network traffic yet)."""
    return _target_module(target_type).open_target(settings, env)


def check_target(target_type: str, settings: dict[str, Any], name: str) -> None:
    """The target type's offline checks of `settings`: InputError naming the setting."""
    _target_module(target_type).check_settings(settings, name)


def target_lock_keys(target_type: str, settings: dict[str, Any]) -> list[str]:
    """The locks two runs share when they would change the same tenant or host."""
    return list(_target_module(target_type).lock_keys(settings))
