"""The contract between the host simulator and the template twins.

No PowerShell engine exists here, so each template in ps_templates/ has a Python *twin* that
performs the same effect on simulated host state. The host simulator reads the template id
from the rendered script's first line (`# psrunner-template: sharepoint/spo_module`), binds
the PSRP parameters it received, and calls the twin registered under that id.

A twin honours the parameters it receives, returns the one result object the real template
emits, built with `runner.powershell.result.template_result` (the contract's one home, which
the session checks on the client side), and fails the way the real cmdlet fails: raise
`TwinError` for a terminating error, or return `errors` for non-terminating ones. Test twins
may return anything, to prove the client refuses what breaks the contract."""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Callable

from .world import SimWorld

TEMPLATE_HEADER = re.compile(r"^\s*#\s*psrunner-template:\s*(?P<id>[A-Za-z0-9_./-]+)\s*$", re.M)


class SimSecureString:
    """A parameter that arrived as a SecureString (decrypted by the simulator). Twins use
    `.value`; tests check the type to prove the secret travelled as a SecureString."""

    __slots__ = ("value",)

    def __init__(self, value: str) -> None:
        self.value = value

    def __repr__(self) -> str:
        return "SimSecureString(********)"


@dataclass
class ErrorSpec:
    """An error record as PowerShell would write it."""
    message: str
    exception_type: str = "System.Management.Automation.RuntimeException"
    category: str = "NotSpecified"
    fqid: str = "RuntimeException"
    target: str | None = None


class TwinError(Exception):
    """A terminating error (throw / -ErrorAction Stop) from the simulated cmdlet."""

    def __init__(self, message: str, *, exception_type: str = "System.Management.Automation.RuntimeException",
                 category: str = "NotSpecified", fqid: str = "RuntimeException", target: str | None = None):
        super().__init__(message)
        self.spec = ErrorSpec(message, exception_type, category, fqid, target)


@dataclass
class TwinOutput:
    result: dict[str, Any] | None
    errors: list[ErrorSpec] = field(default_factory=list)      # non-terminating
    warnings: list[str] = field(default_factory=list)
    verbose: list[str] = field(default_factory=list)
    information: list[str] = field(default_factory=list)


@dataclass
class SimService:
    """A Windows service as Get-Service shows it (runner/sim/twins_services.py has the model)."""
    name: str
    display_name: str
    status: str = "Running"                    # Running | Stopped | StartPending | StopPending | Paused
    start_type: str = "Automatic"              # Automatic | Manual | Disabled
    depends_on: list[str] = field(default_factory=list)
    can_stop: bool = True
    hangs_on_stop: bool = False                # stays StopPending once asked to stop
    fails_to_start: bool = False               # its process dies while starting: back to Stopped


@dataclass
class HostState:
    """What the twins read and change on the simulated Windows host."""
    computer_name: str = "WIN-SIM01"
    ps_version: str = "5.1.20348.2849"
    ps_edition: str = "Desktop"                  # "Core" for PowerShell 7
    modules: dict[str, str] = field(default_factory=dict)   # installed module name -> version
    # PowerShell 7 beside Windows PowerShell (pwsh.exe), and the modules installed for it alone
    # (its own module folders): Windows PowerShell 5.1 does not see those, PowerShell 7 sees
    # both (runner/powershell/modules.py). An endpoint with ps_edition "Core" is PowerShell 7.
    pwsh_version: str | None = None
    pwsh_modules: dict[str, str] = field(default_factory=dict)
    nuget_provider: bool = False
    psgallery_reachable: bool = True
    gallery: dict[str, str] = field(default_factory=lambda: {
        "Microsoft.Online.SharePoint.PowerShell": "16.0.26712.12000",
        "PnP.PowerShell": "3.1.0",
    })
    offline_sources: dict[str, dict[str, str]] = field(default_factory=dict)  # path -> {module: version}
    # what the host fetched from the internet (the NuGet provider bootstrap, PSGallery), in
    # order: an offline install must leave it empty even where the internet is reachable
    internet: list[str] = field(default_factory=list)
    sharepoint_server: bool = False              # SharePoint Server snap-in present (on-prem farm)
    sp_app_principals: dict[str, dict[str, Any]] = field(default_factory=dict)
    # SharePoint Online sign-in that Connect-SPOService accepts in the simulator:
    spo_admin_user: str = "admin@contoso.onmicrosoft.com"
    spo_admin_password: str = "Sim-Admin-Pa55!"
    # certificates with their private key in the host's stores, by thumbprint (upper case):
    # "CurrentUser" or "LocalMachine" (Cert:\<store>\My); the app-only sign-ins use them
    certificates: dict[str, str] = field(default_factory=dict)
    invocations: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (template id, params)
    # every Set-SPOTenant the host ran, as {setting: value}, in order (the proof a reading
    # runbook wrote nothing to the tenant)
    set_spo_tenant: list[dict[str, bool]] = field(default_factory=list)
    # seconds a template's twin takes before it acts, like a slow Install-Module; a stopped
    # pipeline (Ctrl-C, deadline) ends the wait and the twin does nothing
    delays: dict[str, float] = field(default_factory=dict)
    # the Active Directory domain the AD twins act on (runner.sim.directory.Directory): a Samba
    # DC in tests that hand one in, else the in-memory demo domain made on first use
    directory: Any = None
    # the host's Windows services by lower-cased name; the demo set (twins_services) when None
    services: dict[str, SimService] | None = None

    def __post_init__(self) -> None:
        self.activity = TwinActivity()

    def twin_started(self, template_id: str) -> threading.Event:
        return self.activity.started(template_id)

    def wait_idle(self, timeout: float) -> bool:
        return self.activity.wait_idle(timeout)


class TwinActivity:
    """Which twins started and how many run now, for tests to wait on: a pipeline running
    on the host (to interrupt or kill its client there), or none left running (one whose
    client died runs on, as a pipeline on a real host does). Not part of what the host holds:
    a copy of a HostState starts with none."""

    def __init__(self) -> None:
        self._events: dict[str, threading.Event] = {}
        self._running = 0
        self._idle = threading.Condition()

    def __deepcopy__(self, memo: dict) -> TwinActivity:
        return TwinActivity()

    def started(self, template_id: str) -> threading.Event:
        return self._events.setdefault(template_id, threading.Event())

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no twin runs; False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._running == 0, timeout)

    @contextlib.contextmanager
    def running(self, template_id: str) -> Iterator[None]:
        with self._idle:
            self._running += 1
        try:
            self.started(template_id).set()
            yield
        finally:
            with self._idle:
                self._running -= 1
                self._idle.notify_all()


TwinFn = Callable[[HostState, SimWorld, dict[str, Any]], TwinOutput]
TWINS: dict[str, TwinFn] = {}


def twin(template_id: str) -> Callable[[TwinFn], TwinFn]:
    def deco(fn: TwinFn) -> TwinFn:
        TWINS[template_id] = fn
        return fn
    return deco


def template_id_of(script: str) -> str | None:
    m = TEMPLATE_HEADER.search(script[:2048])
    return m.group("id") if m else None


def run_twin(script: str, state: HostState, world: SimWorld, params: dict[str, Any]) -> TwinOutput:
    """Find the twin for `script` and run it. Raises TwinError like PowerShell would."""
    try:  # the real twins register themselves on import
        from . import twins  # noqa: F401
    except ImportError:
        pass
    tid = template_id_of(script)
    if tid is None or tid not in TWINS:
        raise TwinError(f"The simulator has no twin for this script (template id: {tid or 'none'}).",
                        exception_type="System.NotSupportedException", category="NotImplemented",
                        fqid="PsrunnerSimNoTwin")
    with state.activity.running(tid):
        delay = state.delays.get(tid)
        if delay:
            from .psrp_shell import wait_or_stop
            if wait_or_stop(delay):
                raise TwinError("The pipeline has been stopped.",
                                exception_type="System.Management.Automation.PipelineStoppedException",
                                category="OperationStopped", fqid="PipelineStopped")
        state.invocations.append((tid, {k: ("********" if isinstance(v, SimSecureString) else v)
                                        for k, v in params.items()}))
        return TWINS[tid](state, world, params)
