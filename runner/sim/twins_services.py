"""Twins of the service templates (windows/service_status, windows/service_restart), acting on
the host's services (`HostState.services`).

The model, from Microsoft Learn's Get-Service and ServiceController pages: a service has a
name, a display name, a status (Running, Stopped, StartPending, StopPending, Paused), a start
type (Automatic, Manual, Disabled), the services it depends on (its dependants are those that
name it), and CanStop. Two misbehaviours a helpdesk meets: a service that hangs in
StopPending (`hangs_on_stop`) and one whose process dies while starting, so it falls back to
Stopped (`fails_to_start`).

Errors as Windows PowerShell 5.1 writes them (exception type, category, FullyQualifiedErrorId):

- Get-Service -Name x, no such service: "Cannot find any service with service name 'x'."
  ServiceCommandException, ObjectNotFound,
  NoServiceFoundForGivenName,Microsoft.PowerShell.Commands.GetServiceCommand
- Stop-Service on a service that cannot stop: "Service 'D (x)' cannot be stopped due to the
  following error: Cannot stop x service on computer '.'." ServiceCommandException,
  CloseError, CouldNotStopService,Microsoft.PowerShell.Commands.StopServiceCommand
- $service.Start() on a disabled service: 'Exception calling "Start" with "0" argument(s):
  "Cannot start service x on computer '.'."' MethodInvocationException, NotSpecified,
  InvalidOperationException

Sources: Microsoft Learn, Get-Service, Stop-Service, Restart-Service (-Force stops the
dependants and does not start them again), ServiceController.Start; the messages as recorded
from Windows PowerShell 5.1 sessions (ServiceCommandException texts in the PowerShell
repository's ServiceResources.resx)."""

from __future__ import annotations

import time
from typing import Any

from ..powershell.result import template_result
from .twin_types import HostState, SimService, TwinError, TwinOutput, twin
from .world import SimWorld

SERVICE_EXCEPTION = "Microsoft.PowerShell.Commands.ServiceCommandException"


def demo_services() -> dict[str, SimService]:
    """A file server's services for the demo and `sim serve`."""
    return {s.name.lower(): s for s in [
        SimService("Spooler", "Print Spooler", depends_on=["RPCSS"]),
        SimService("Fax", "Fax", start_type="Manual", depends_on=["Spooler"]),
        SimService("RPCSS", "Remote Procedure Call (RPC)", can_stop=False),
        SimService("BackupAgent", "Backup Agent", hangs_on_stop=True),
        SimService("LegacyApp", "Legacy Line-of-Business App", status="Stopped", fails_to_start=True),
        SimService("RemoteRegistry", "Remote Registry", status="Stopped", start_type="Disabled"),
    ]}


def services_of(state: HostState) -> dict[str, SimService]:
    if state.services is None:
        state.services = demo_services()
    return state.services


def _get(state: HostState, name: str) -> SimService:
    found = services_of(state).get(str(name).lower())
    if found is None:
        raise TwinError(f"Cannot find any service with service name '{name}'.", exception_type=SERVICE_EXCEPTION,
                        category="ObjectNotFound", target=name,
                        fqid="NoServiceFoundForGivenName,Microsoft.PowerShell.Commands.GetServiceCommand")
    return found


def _dependants(state: HostState, svc: SimService) -> list[SimService]:
    return [s for s in services_of(state).values() if svc.name.lower() in (d.lower() for d in s.depends_on)]


def service_state(state: HostState, svc: SimService) -> dict[str, Any]:
    """Get-PsrunnerServiceState."""
    return {"name": svc.name, "display_name": svc.display_name, "status": svc.status,
            "start_type": svc.start_type, "can_stop": svc.can_stop,
            "dependants": [{"name": d.name, "status": d.status} for d in _dependants(state, svc)],
            "depends_on": list(svc.depends_on)}


def service_line(s: dict[str, Any]) -> str:
    """Format-PsrunnerService."""
    line = f"{s['display_name']} ({s['name']}) is {s['status']}, start type {s['start_type']}"
    if s["dependants"]:
        line += "; dependants: " + ", ".join(f"{d['name']} {d['status']}" for d in s["dependants"])
    return line + "."


@twin("windows/service_status")
def service_status(state: HostState, world: SimWorld, params: dict[str, Any]) -> TwinOutput:
    s = service_state(state, _get(state, params["Name"]))
    s["headline"] = service_line(s)
    return TwinOutput(template_result(changed=False, before=s, after=s, data=s, messages=[s["headline"]]))


def _stop(state: HostState, svc: SimService) -> None:
    """Stop-Service -Force -NoWait: the dependants first, then the service."""
    for d in _dependants(state, svc):
        if d.status != "Stopped":
            _stop(state, d)
    if not svc.can_stop:
        raise TwinError(f"Service '{svc.display_name} ({svc.name})' cannot be stopped due to the following error: "
                        f"Cannot stop {svc.name} service on computer '.'.", exception_type=SERVICE_EXCEPTION,
                        category="CloseError", target=svc.name,
                        fqid="CouldNotStopService,Microsoft.PowerShell.Commands.StopServiceCommand")
    svc.status = "StopPending" if svc.hangs_on_stop else "Stopped"


def _start(svc: SimService) -> None:
    """ServiceController.Start(), and what the service does then."""
    if svc.start_type == "Disabled":
        raise TwinError(f"Exception calling \"Start\" with \"0\" argument(s): \"Cannot start service {svc.name} on "
                        f"computer '.'.\"", exception_type="System.Management.Automation.MethodInvocationException",
                        category="NotSpecified", fqid="InvalidOperationException")
    svc.status = "Stopped" if svc.fails_to_start else "Running"


def _wait(svc: SimService, status: str, deadline: float) -> bool:
    """Wait-PsrunnerServiceStatus: a service stuck where it is waits out the deadline."""
    from .psrp_shell import wait_or_stop
    if svc.status == status:
        return True
    if status == "Running" and svc.status == "Stopped":
        return False
    wait_or_stop(max(0.0, deadline - time.monotonic()))
    return svc.status == status


@twin("windows/service_restart")
def service_restart(state: HostState, world: SimWorld, params: dict[str, Any]) -> TwinOutput:
    svc = _get(state, params["Name"])
    timeout = int(params.get("TimeoutSeconds", 60))
    before = service_state(state, svc)
    label = f"{svc.display_name} ({svc.name})"
    running = [d["name"] for d in before["dependants"] if d["status"] == "Running"]
    if params.get("IfRunning", "restart") == "leave" and svc.status == "Running":
        line = f"{label} is running; left alone."
        return TwinOutput(template_result(changed=False, before=before, after=before,
                                          data={"service": before, "headline": line}, messages=[line]))
    if not params.get("Apply"):
        line = f"{label} is {svc.status}; a run would {'start' if svc.status == 'Stopped' else 'restart'} it"
        line += f" and its running dependants ({', '.join(running)})." if running else "."
        return TwinOutput(template_result(changed=True, before=before, after=before,
                                          data={"service": before, "headline": line}, messages=[line]))
    started = time.monotonic()
    deadline = started + timeout

    def failed(reason: str) -> TwinOutput:
        now = service_state(state, svc)
        return TwinOutput(template_result(changed=True, status="failed", before=before, after=now,
                                          data={"service": now}, reason=reason))

    if svc.status != "Stopped":
        _stop(state, svc)
        if not _wait(svc, "Stopped", deadline):
            return failed(f"{label} did not stop within {timeout} s; it is {svc.status}")
    _start(svc)
    if not _wait(svc, "Running", deadline):
        why = ("it stopped again while starting (the System event log says why)" if svc.status == "Stopped"
               else f"it is still {svc.status} after {timeout} s")
        return failed(f"{label} did not start: {why}")
    late = []
    for name in running:
        d = _get(state, name)
        if d.status != "Running":
            _start(d)
        if not _wait(d, "Running", deadline):
            late.append(name)
    after = service_state(state, svc)
    line = f"{label} was {before['status']}; it is Running again after {round(time.monotonic() - started, 1)} s"
    if running:
        line += f"; dependants restarted: {', '.join(running)}"
    if late:
        return failed(f"{line}; but not Running within {timeout} s: {', '.join(late)}")
    return TwinOutput(template_result(changed=True, before=before, after=after,
                                      data={"service": after, "headline": line + "."}, messages=[line + "."]))
