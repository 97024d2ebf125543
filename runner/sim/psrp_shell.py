"""The PowerShell side of the host simulator: WSMan shells backed by psrpcore's server
Runspace Pool, pipelines that run template twins, and the Receive long-poll.

One `ShellEngine` holds every open shell (= Runspace Pool). It is driven by the HTTP layer,
one WSMan request at a time per connection, under one lock whose condition variable wakes
long-polling Receives as soon as a twin finishes, a signal arrives or a fault is cleared.

How a pipeline runs (no PowerShell engine here):
  Command   -> a `ServerPipeline` is created *before* its first fragment is fed to the pool
               (psrpcore looks the pipeline up when it decodes CreatePipeline);
  CreatePipeline decoded -> the pipeline starts: parameters are bound against the script's
               param() block (ps_binding), then `run_twin` runs on a worker thread;
  worker done -> streams, the one output object (a Hashtable) and the final state are queued
               in one go under the lock, so a single Receive usually carries them all;
  Receive   -> `data_to_send()` payloads, cut to the client's MaxEnvelopeSize, are routed by
               pipeline id (None = the pool itself) into per-target queues and answered."""

from __future__ import annotations

import base64
import datetime as _dt
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from psrpcore import (
    CreatePipelineEvent,
    EndOfPipelineInputEvent,
    GetAvailableRunspacesEvent,
    GetCommandMetadataEvent,
    PipelineInputEvent,
    PSRPCoreError,
    PSRPPayload,
    ResetRunspaceStateEvent,
    ServerPipeline,
    ServerRunspacePool,
    SetMaxRunspacesEvent,
    SetMinRunspacesEvent,
    StreamType,
)
from psrpcore.types import (
    ErrorCategory,
    ErrorCategoryInfo,
    ErrorRecord,
    NETException,
    PSDouble,
    PSInvocationState,
    PSSecureString,
    PSVersion,
)

from . import wsman_soap as soap
from .ps_binding import bind
from .twin_types import (
    ErrorSpec,
    HostState,
    SimSecureString,
    TwinError,
    TwinOutput,
    run_twin,
    template_id_of,
)
from .world import SimWorld

log = logging.getLogger(__name__)

_current = threading.local()


def stop_requested() -> bool:
    """True when the pipeline the calling twin runs for was stopped (Signal ctrl_c/terminate,
    pool deleted, simulator stopping). A slow twin checks it and returns early."""
    run = getattr(_current, "run", None)
    return bool(run and run.stop_event.is_set())


def wait_or_stop(seconds: float) -> bool:
    """Sleep like a slow cmdlet, waking at once when the pipeline is stopped.
    Returns True if it was stopped."""
    run = getattr(_current, "run", None)
    if run is None:
        time.sleep(seconds)
        return False
    return run.stop_event.wait(seconds)


class Aborted(Exception):
    """The simulator is stopping: drop the request without an answer."""


@dataclass
class PipelineRun:
    id: uuid.UUID
    command_id: str
    server: ServerPipeline
    stop_event: threading.Event = field(default_factory=threading.Event)
    metadata: Any = None
    started: bool = False
    done: bool = False
    break_on_receive: dict | None = None     # "break_pool" fault options
    extra_error: ErrorSpec | None = None     # "non_terminating_error" fault


class Shell:
    """A WSMan shell = one PSRP Runspace Pool."""

    def __init__(self, shell_id: str, resource_uri: str, state: HostState, owner: str, client_ip: str):
        self.id = shell_id
        self.resource_uri = resource_uri
        self.owner = owner
        self.client_ip = client_ip
        self.pool = ServerRunspacePool(application_private_data=_private_data(state))
        self.pipelines: dict[uuid.UUID, PipelineRun] = {}
        self.outbox: dict[uuid.UUID | None, deque[bytes]] = {}


def _private_data(state: HostState) -> dict:
    """$PSVersionTable as a Windows host reports it in APPLICATION_PRIVATE_DATA."""
    parts = state.ps_version.split(".")
    major = ".".join(parts[:2])
    table: dict[str, Any] = {
        "PSVersion": PSVersion(state.ps_version),
        "PSEdition": state.ps_edition,
        "PSCompatibleVersions": [PSVersion(v) for v in ("1.0", "2.0", "3.0", "4.0", "5.0", major)],
        "WSManStackVersion": PSVersion("3.0"),
    }
    if state.ps_edition == "Desktop":
        build = ".".join(parts[2:4]) if len(parts) >= 4 else "20348.1"
        table["BuildVersion"] = PSVersion(f"10.0.{build}")
        table["CLRVersion"] = PSVersion("4.0.30319.42000")
    return {"PSVersionTable": table}


def from_ps(value: Any) -> Any:
    """psrpcore's deserialized value -> plain Python for the twins (SecureString ->
    SimSecureString, PS collections -> dict/list, PS primitives -> str/int/float)."""
    if isinstance(value, PSSecureString):
        return SimSecureString(str(value.decrypt()))
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, bytes):
        return bytes(value)
    if isinstance(value, dict):
        return {from_ps(k): from_ps(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [from_ps(v) for v in value]
    return value


def to_ps(value: Any) -> Any:
    """A twin's result -> values psrpcore serializes the way PowerShell would (a dict as a
    Hashtable, a float as a Double rather than psrpcore's default Single)."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, float):
        return PSDouble(value)
    if isinstance(value, dict):
        return {str(k): to_ps(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_ps(v) for v in value]
    if isinstance(value, SimSecureString):
        return "********"
    if isinstance(value, (_dt.datetime, _dt.date)):
        return value.isoformat()
    return value


def _exception(spec: ErrorSpec) -> NETException:
    exc = NETException(Message=spec.message, HResult=-2146233087)
    names = [spec.exception_type]
    for base in ("System.Management.Automation.RuntimeException", "System.SystemException"):
        if base not in names and spec.exception_type.startswith("System.Management.Automation"):
            names.append(base)
    exc.PSObject.type_names = names + [n for n in exc.PSTypeNames if n not in names]
    exc.PSObject.to_string = f"{spec.exception_type}: {spec.message}"
    return exc


def _category(spec: ErrorSpec) -> ErrorCategoryInfo:
    try:
        category = ErrorCategory[spec.category]
    except KeyError:
        category = ErrorCategory.NotSpecified
    return ErrorCategoryInfo(
        Category=category,
        Reason=spec.exception_type.rsplit(".", 1)[-1],
        TargetName=None if spec.target is None else str(spec.target),
        TargetType=None if spec.target is None else "String",
    )


def error_record(spec: ErrorSpec) -> ErrorRecord:
    return ErrorRecord(Exception=_exception(spec), CategoryInfo=_category(spec),
                       TargetObject=spec.target, FullyQualifiedErrorId=spec.fqid)


class ShellEngine:
    """Every shell of one simulator and the WSMan actions on them."""

    def __init__(self, *, state: HostState, world: SimWorld, cond: threading.Condition,
                 faults: Any, on_pool_open: Callable[[], None], address: Callable[[], str],
                 owner: str) -> None:
        self.state = state
        self.world = world
        self.cond = cond
        self.faults = faults
        self.shells: dict[str, Shell] = {}
        self.stopping = False
        self._on_pool_open = on_pool_open
        self._address = address
        self._owner = owner

    # ---- dispatch -------------------------------------------------------------------
    def handle(self, req: soap.WSManRequest, client_ip: str) -> str:
        """Answer one WSMan request: returns the SOAP body, raises SoapError for a fault."""
        handler = getattr(self, "_do_" + req.action.lower(), None)
        if handler is None:
            raise soap.SoapError(soap.FAULT_INTERNAL,
                                 f"The host simulator does not implement the action {req.action_uri}.",
                                 subcode="a:ActionNotSupported", sender=True)
        try:
            if req.action == "Receive":
                return handler(req)
            with self.cond:
                try:
                    return handler(req, client_ip) if req.action == "Create" else handler(req)
                finally:
                    self.cond.notify_all()
        except ValueError as exc:  # bad base64 or GUID in the request
            raise soap.SoapError(soap.FAULT_INTERNAL, f"The request carries a malformed value: {exc}",
                                 subcode="w:InvalidParameter", sender=True) from None

    def stop(self) -> None:
        with self.cond:
            self.stopping = True
            for shell in self.shells.values():
                for run in shell.pipelines.values():
                    run.stop_event.set()
            self.shells.clear()
            self.cond.notify_all()

    # ---- helpers --------------------------------------------------------------------
    def _shell(self, req: soap.WSManRequest) -> Shell:
        sid = req.shell_id or ""
        shell = self.shells.get(sid.upper())
        if shell is None:
            raise soap.shell_not_found(sid)
        return shell

    def _feed(self, shell: Shell, data: bytes, pipeline_id: uuid.UUID | None,
              stream: StreamType = StreamType.default) -> None:
        try:
            shell.pool.receive_data(PSRPPayload(data, stream, pipeline_id))
            while True:
                event = shell.pool.next_event()
                if event is None:
                    break
                self._on_event(shell, event)
        except (PSRPCoreError, ValueError, KeyError) as exc:
            log.warning("PSRP data rejected on shell %s: %s", shell.id, type(exc).__name__)
            raise soap.SoapError(soap.FAULT_INTERNAL,
                                 f"The PowerShell plugin could not process the PSRP data: {exc}") from None

    def _on_event(self, shell: Shell, event: Any) -> None:
        if isinstance(event, CreatePipelineEvent):
            run = shell.pipelines[event.pipeline_id]
            run.metadata = event.pipeline
            if run.metadata.no_input:
                self._start(shell, run)
        elif isinstance(event, EndOfPipelineInputEvent):
            run = shell.pipelines.get(event.pipeline_id)
            if run is not None and not run.started and run.metadata is not None:
                self._start(shell, run)
        elif isinstance(event, PipelineInputEvent):
            pass  # template twins take parameters, not pipeline input
        elif isinstance(event, GetCommandMetadataEvent):
            run = shell.pipelines[event.pipeline_id]
            self._mark_running(run)
            self._fail(run, ErrorSpec("The host simulator does not serve command metadata.",
                                      "System.NotSupportedException", "NotImplemented",
                                      "PsrunnerSimNoMetadata"))
        elif isinstance(event, (SetMaxRunspacesEvent, SetMinRunspacesEvent, ResetRunspaceStateEvent)):
            shell.pool.runspace_availability_response(event.ci, True)
        elif isinstance(event, GetAvailableRunspacesEvent):
            busy = sum(1 for r in shell.pipelines.values() if r.started and not r.done)
            shell.pool.runspace_availability_response(event.ci, max(shell.pool.max_runspaces - busy, 0))

    # ---- pipelines ------------------------------------------------------------------
    @staticmethod
    def _mark_running(run: PipelineRun) -> None:
        # PowerShell sends PIPELINE_STATE only for Completed/Failed/Stopped
        # (ServerPowerShellDriver.HandlePowerShellInvocationStateChanged); psrpcore's start()
        # would also queue a Running state, so change the state without emitting it.
        run.server._change_state(PSInvocationState.Running, emit=False)
        run.started = True

    def _start(self, shell: Shell, run: PipelineRun) -> None:
        self._mark_running(run)
        failure = self.faults.take("terminating_error")
        if failure is not None:
            self._fail(run, ErrorSpec(
                failure.get("message", "Simulated terminating error."),
                failure.get("exception_type", "System.Management.Automation.RuntimeException"),
                failure.get("category", "NotSpecified"),
                failure.get("fqid", "PsrunnerSimFault"),
                failure.get("target")))
            return
        extra = self.faults.take("non_terminating_error")
        if extra is not None:
            run.extra_error = ErrorSpec(
                extra.get("message", "Simulated non-terminating error."),
                extra.get("exception_type", "Microsoft.PowerShell.Commands.WriteErrorException"),
                extra.get("category", "NotSpecified"),
                extra.get("fqid", "Microsoft.PowerShell.Commands.WriteErrorException"),
                extra.get("target"))
        broken = self.faults.take("break_pool")
        if broken is not None:
            run.break_on_receive = broken
            if not broken.get("ran", True):
                return  # the shell goes away before the script runs
        commands = list(run.metadata.commands)
        threading.Thread(target=self._work, args=(shell, run, commands), daemon=True,
                         name=f"sim-pipeline-{run.command_id[:8]}").start()

    def _work(self, shell: Shell, run: PipelineRun, commands: list) -> None:
        """Worker thread: bind and run the twins outside the lock, then queue the results."""
        _current.run = run
        outputs: list[tuple[str, TwinOutput]] = []
        error: ErrorSpec | None = None
        try:
            for cmd in commands:
                if run.stop_event.is_set():
                    return
                args = [(name, from_ps(value)) for name, value in cmd.parameters]
                script = cmd.command_text
                if cmd.is_script:
                    params = bind(script, args)
                else:
                    params = {n: v for n, v in args if n is not None}
                outputs.append((template_id_of(script) or script[:40], run_twin(script, self.state, self.world, params)))
        except TwinError as exc:
            error = exc.spec
        except Exception as exc:  # a twin bug must fail the pipeline, not hang the client
            log.exception("twin raised %s", type(exc).__name__)
            error = ErrorSpec(f"The simulated command failed: {type(exc).__name__}: {exc}",
                              "System.Management.Automation.RuntimeException", "NotSpecified",
                              "PsrunnerSimTwinCrashed")
        finally:
            _current.run = None
        with self.cond:
            if run.done or run.stop_event.is_set():
                return
            try:
                for source, out in outputs:
                    self._emit(run, source, out)
                if run.extra_error is not None:
                    self._write_error(run, run.extra_error)
                if error is not None:
                    self._fail(run, error)
                else:
                    run.server.complete()
                    run.done = True
            except Exception as exc:  # e.g. a result psrpcore cannot serialize
                log.exception("could not serialize the pipeline result")
                if not run.done:
                    self._fail(run, ErrorSpec(f"The simulator could not serialize the result: {exc}",
                                              "System.Runtime.Serialization.SerializationException",
                                              "NotSpecified", "PsrunnerSimSerialization"))
            self.cond.notify_all()

    def _emit(self, run: PipelineRun, source: str, out: TwinOutput) -> None:
        for msg in out.verbose:
            run.server.write_verbose(str(msg))
        for msg in out.warnings:
            run.server.write_warning(str(msg))
        for msg in out.information:
            run.server.write_information(str(msg), source)
        for spec in out.errors:
            self._write_error(run, spec)
        if out.result is not None:
            run.server.write_output(to_ps(out.result))

    @staticmethod
    def _write_error(run: PipelineRun, spec: ErrorSpec) -> None:
        run.server.write_error(_exception(spec), _category(spec), spec.target, spec.fqid)

    @staticmethod
    def _fail(run: PipelineRun, spec: ErrorSpec) -> None:
        # psrpcore has no public "fail": a Failed PipelineState carrying the ErrorRecord is
        # exactly what PowerShell sends for a terminating error.
        run.server._change_state(PSInvocationState.Failed, error=error_record(spec))
        run.done = True

    def _stop_run(self, run: PipelineRun) -> None:
        run.stop_event.set()
        if run.done:
            return
        if run.started and run.server.state in (PSInvocationState.Running, PSInvocationState.Stopping):
            run.server.stop()
        run.done = True

    # ---- WSMan actions --------------------------------------------------------------
    def _do_create(self, req: soap.WSManRequest, client_ip: str) -> str:
        body = req.body.find("rsp:Shell", soap.NS) if req.body is not None else None
        if body is None or not req.resource_uri.startswith("http://schemas.microsoft.com/powershell/"):
            raise soap.SoapError(soap.FAULT_INTERNAL,
                                 "The host simulator only creates PowerShell (PSRP) shells.",
                                 subcode="w:InvalidParameter", sender=True)
        shell_id = (body.get("ShellId") or str(uuid.uuid4())).upper()
        if shell_id in self.shells:
            raise soap.SoapError(soap.FAULT_INTERNAL, f"A shell with ShellId {shell_id} already exists.",
                                 subcode="w:AlreadyExists", sender=True)
        creation = body.find("pwsh:creationXml", soap.NS)
        if creation is None or not (creation.text or "").strip():
            raise soap.SoapError(soap.FAULT_INTERNAL, "The Create request carries no creationXml.",
                                 subcode="w:InvalidParameter", sender=True)
        shell = Shell(shell_id, req.resource_uri, self.state, self._owner, client_ip)
        self._feed(shell, base64.b64decode(creation.text), None)
        self.shells[shell_id] = shell
        self._on_pool_open()
        return soap.create_response(
            self._address(), req.resource_uri,
            soap.shell_xml(shell_id, req.resource_uri, self._owner, client_ip,
                           input_streams=(body.findtext("rsp:InputStreams", "stdin pr", soap.NS)),
                           output_streams=(body.findtext("rsp:OutputStreams", "stdout", soap.NS))),
            shell_id)

    def _do_command(self, req: soap.WSManRequest) -> str:
        shell = self._shell(req)
        line = req.body.find("rsp:CommandLine", soap.NS) if req.body is not None else None
        if line is None:
            raise soap.SoapError(soap.FAULT_INTERNAL, "The Command request has no CommandLine.",
                                 subcode="w:InvalidParameter", sender=True)
        data = base64.b64decode(line.findtext("rsp:Arguments", "", soap.NS))
        command_id = line.get("CommandId")
        if not command_id:
            # the pipeline id of the first PSRP message: 21-byte fragment header, then
            # destination (4) + message type (4) + RPID (16) + PID (16)
            command_id = str(uuid.UUID(bytes_le=data[21 + 24:21 + 40])).upper() if len(data) >= 61 else \
                str(uuid.uuid4()).upper()
        pid = uuid.UUID(command_id)
        if pid in shell.pipelines:
            raise soap.SoapError(soap.FAULT_INTERNAL, f"The command {command_id} already exists.",
                                 subcode="w:AlreadyExists", sender=True)
        # psrpcore needs the pipeline registered before it decodes CreatePipeline
        run = PipelineRun(pid, command_id, ServerPipeline(shell.pool, pid))
        shell.pipelines[pid] = run
        try:
            self._feed(shell, data, pid)
        except soap.SoapError:
            shell.pipelines.pop(pid, None)
            shell.pool.pipeline_table.pop(pid, None)
            raise
        return f"<rsp:CommandResponse><rsp:CommandId>{command_id}</rsp:CommandId></rsp:CommandResponse>"

    def _do_send(self, req: soap.WSManRequest) -> str:
        shell = self._shell(req)
        send = req.body.find("rsp:Send", soap.NS) if req.body is not None else None
        for stream in (send.findall("rsp:Stream", soap.NS) if send is not None else []):
            cid = stream.get("CommandId")
            target = None
            if cid:
                target = uuid.UUID(cid)
                if target not in shell.pipelines:
                    raise soap.command_not_found()
            kind = StreamType.prompt_response if stream.get("Name") == "pr" else StreamType.default
            self._feed(shell, base64.b64decode(stream.text or ""), target, kind)
        return "<rsp:SendResponse/>"

    def _do_signal(self, req: soap.WSManRequest) -> str:
        shell = self._shell(req)
        sig = req.body.find("rsp:Signal", soap.NS) if req.body is not None else None
        if sig is None:
            raise soap.SoapError(soap.FAULT_INTERNAL, "The Signal request has no Signal element.",
                                 subcode="w:InvalidParameter", sender=True)
        cid = sig.get("CommandId") or ""
        code = (sig.findtext("rsp:Code", "", soap.NS) or "").strip()
        try:
            run = shell.pipelines[uuid.UUID(cid)]
        except (ValueError, KeyError):
            raise soap.command_not_found() from None
        self._stop_run(run)
        if code.lower() == soap.SIGNAL_TERMINATE.lower():
            shell.pipelines.pop(run.id, None)
            shell.pool.pipeline_table.pop(run.id, None)
            shell.outbox.pop(run.id, None)
        return "<rsp:SignalResponse/>"

    def _do_delete(self, req: soap.WSManRequest) -> str:
        shell = self._shell(req)
        for run in shell.pipelines.values():
            self._stop_run(run)
        del self.shells[shell.id]
        return ""

    def _do_get(self, req: soap.WSManRequest) -> str:
        if req.resource_uri.rstrip("/").endswith("/wsman/1/config"):
            return soap.config_response(MAX_ENVELOPE_KB)
        shell = self._shell(req)
        return soap.shell_xml(shell.id, shell.resource_uri, shell.owner, shell.client_ip)

    def _do_receive(self, req: soap.WSManRequest) -> str:
        recv = req.body.find("rsp:Receive/rsp:DesiredStream", soap.NS) if req.body is not None else None
        cid = recv.get("CommandId") if recv is not None else None
        deadline = time.monotonic() + max(req.operation_timeout, 0.0)
        limit = max(req.max_envelope_size - soap.ENVELOPE_OVERHEAD - soap.STATE_OVERHEAD, 512)
        budget = max((limit - soap.STREAM_OVERHEAD) * 3 // 4, 64)
        with self.cond:
            while True:
                if self.stopping:
                    raise Aborted()
                if self.faults.active("hang"):
                    self.cond.wait()
                    continue
                shell = self._shell(req)
                run = None
                target = None
                if cid:
                    try:
                        target = uuid.UUID(cid)
                        run = shell.pipelines[target]
                    except (ValueError, KeyError):
                        raise soap.command_not_found() from None
                    if run.break_on_receive is not None and (run.done or not run.break_on_receive.get("ran", True)):
                        for r in shell.pipelines.values():
                            self._stop_run(r)
                        del self.shells[shell.id]
                        self.cond.notify_all()
                        raise soap.shell_not_found(shell.id)
                self._pump(shell, budget)
                queue = shell.outbox.get(target)
                chunks: list[str] = []
                size = 0
                while queue:
                    encoded = base64.b64encode(queue[0]).decode()
                    if chunks and size + len(encoded) + soap.STREAM_OVERHEAD > limit:
                        break
                    queue.popleft()
                    chunks.append(encoded)
                    size += len(encoded) + soap.STREAM_OVERHEAD
                done = run is not None and run.done and run.break_on_receive is None and not queue
                if done:
                    # everything the pipeline produced is delivered: release psrpcore's side;
                    # the small record stays so a later Signal (terminate) still finds it
                    shell.pool.pipeline_table.pop(run.id, None)
                    shell.outbox.pop(run.id, None)
                if chunks or done:
                    return soap.receive_response(chunks, cid, done)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise soap.operation_timeout()
                self.cond.wait(remaining)

    @staticmethod
    def _pump(shell: Shell, budget: int) -> None:
        """Move everything psrpcore has queued into per-target outboxes, cut to `budget`."""
        while True:
            payload = shell.pool.data_to_send(budget)
            if payload is None:
                return
            shell.outbox.setdefault(payload.pipeline_id, deque()).append(payload.data)


MAX_ENVELOPE_KB = 500   # Windows Server 2012+ default MaxEnvelopeSizekb
