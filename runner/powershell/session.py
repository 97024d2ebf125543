"""PowerShell over PSRP with pypsrp 0.9.1: one RunspacePool per host per run, typed parameters,
SecureStrings for secrets, a deadline per invocation, explicit failure and classified errors.

Why not `pypsrp.client.Client.execute_ps`: it flattens output to text and opens a pool per
call. Here a `HostSession` opens ONE pool lazily (on the first invocation) and reuses it;
each `invoke()` is a `PowerShell` pipeline with `add_script` + `add_parameters`, driven by
`begin_invoke` / `poll_invoke` so a deadline and an interrupt can stop it (`stop()` sends the
PSRP ctrl_c signal to the remote pipeline).

Failure is decided here, not by pypsrp's `had_errors` (true only for terminating errors):
an invocation failed when the pipeline FAILED or was stopped, when any error record was
written, or when the template's result object says `status = 'failed'`. The result contract
is exactly one hashtable of primitives; anything else fails with a message that says so.

Transport problems raise `runner.errors.TransportError` with a `kind` (auth, connect, dns,
tls, timeout-before-start, timeout-mid-run, broken-pool, protocol), `retryable` (false once
the remote pipeline may have started) and a hint naming what the admin should check."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Iterator

from ..errors import Interrupted, InputError, TransportError
from ..secrets import Secret, redact
from ..values import as_secret

_log = logging.getLogger("psrunner.psrp")

AUTH_METHODS = ("negotiate", "kerberos", "ntlm", "credssp", "certificate", "basic")
ENCRYPTING_AUTH = ("negotiate", "kerberos", "ntlm", "credssp")
ENCRYPTION_MODES = ("auto", "always", "never")
DEFAULT_CONFIGURATION = "Microsoft.PowerShell"
POLL_SECONDS = 3          # long-poll length while a pipeline runs: bounds interrupt latency
STOP_SECONDS = 5          # time allowed for the stop signal and cleanup after a deadline

ERROR_CATEGORIES = (
    "NotSpecified", "OpenError", "CloseError", "DeviceError", "DeadlockDetected", "InvalidArgument",
    "InvalidData", "InvalidOperation", "InvalidResult", "InvalidType", "MetadataError",
    "NotImplemented", "NotInstalled", "ObjectNotFound", "OperationStopped", "OperationTimeout",
    "SyntaxError", "ParserError", "PermissionDenied", "ResourceBusy", "ResourceExists",
    "ResourceUnavailable", "ReadError", "WriteError", "FromStdErr", "SecurityError",
    "ProtocolError", "ConnectionError", "AuthenticationError", "LimitsExceeded", "QuotaExceeded",
    "NotEnabled",
)
RESULT_KEYS = {"changed", "before", "after", "data", "messages", "status", "action", "reason"}
RESULT_STATUSES = {"ok", "changed", "action-required", "failed"}

# WSMan fault codes that mean the shell (our runspace pool) is gone on the server.
_SHELL_GONE_CODES = {
    0x8033805B,   # ERROR_WSMAN_UNEXPECTED_SELECTORS: the ShellId is not known (any more)
    0x803381B2,   # ERROR_WSMAN_SHELL_NOT_INITIALIZED
}
_OPERATION_TIMEOUT = 0x80338029


# --------------------------------------------------------------------------- settings

@dataclass
class HostSettings:
    """How to reach one Windows host. Validated on construction: a bad combination raises
    InputError naming the setting, before anything touches the network."""
    host: str
    port: int | None = None
    ssl: bool = True
    cert_validation: bool | str = True      # True | path to a CA bundle (PEM) | False
    path: str = "wsman"
    auth: str = "negotiate"
    username: str | None = None
    password: Secret | None = None
    certificate_pem: str | None = None      # certificate auth: client certificate (PEM path)
    certificate_key_pem: str | None = None  # certificate auth: its private key (PEM path)
    encryption: str = "auto"
    configuration_name: str = DEFAULT_CONFIGURATION
    connection_timeout: int = 30
    read_timeout: int = 30
    operation_timeout: int = 20
    proxy: str | None = None
    no_proxy: bool = False
    label: str = "host"                     # how errors name the target ("targets.<name>")

    def __post_init__(self) -> None:
        self.password = as_secret(self.password, f"{self.label}.password", name="psrp password")
        self.validate()

    def _bad(self, setting: str, message: str, hint: str | None = None) -> InputError:
        return InputError(f"{self.label}.{setting}: {message}", input=f"{self.label}.{setting}", hint=hint)

    @property
    def effective_port(self) -> int:
        return self.port if self.port is not None else (5986 if self.ssl else 5985)

    @property
    def endpoint(self) -> str:
        return f"{'https' if self.ssl else 'http'}://{self.host}:{self.effective_port}/{self.path.lstrip('/')}"

    def validate(self) -> None:
        if not isinstance(self.host, str) or not self.host.strip() or any(c in self.host for c in "/ \t@?#"):
            raise self._bad("host", f"{self.host!r} is not a host name or address",
                            "give the name or IP only, e.g. host = \"win01.contoso.com\"")
        if self.port is not None and (isinstance(self.port, bool) or not isinstance(self.port, int)
                                      or not 0 < self.port < 65536):
            raise self._bad("port", f"{self.port!r} is not a TCP port", "use 5986 for HTTPS, 5985 for HTTP")
        if self.auth not in AUTH_METHODS:
            raise self._bad("auth", f"{self.auth!r} is not supported", "use one of: " + ", ".join(AUTH_METHODS))
        if self.encryption not in ENCRYPTION_MODES:
            raise self._bad("encryption", f"{self.encryption!r} is not supported",
                            "use one of: " + ", ".join(ENCRYPTION_MODES))
        if not self.ssl:
            if self.encryption == "never":
                raise self._bad("encryption", "plain HTTP without message encryption would send the session "
                                "(and every SecureString key) in clear",
                                "use HTTPS (port 5986), or keep encryption = \"auto\" with NTLM/Kerberos/CredSSP")
            if self.auth not in ENCRYPTING_AUTH:
                raise self._bad("auth", f"{self.auth} authentication works only over HTTPS",
                                "use HTTPS (scheme = \"https\", port 5986), or auth = \"negotiate\"/\"kerberos\"/"
                                "\"ntlm\"/\"credssp\" with message encryption over HTTP")
        elif self.encryption == "always" and self.auth not in ENCRYPTING_AUTH:
            raise self._bad("encryption", f"message encryption needs NTLM, Kerberos or CredSSP, not {self.auth}",
                            "set encryption = \"auto\" (HTTPS already encrypts)")
        if self.auth in ("basic", "ntlm", "credssp") and (not self.username or not self.password):
            raise self._bad("username" if not self.username else "password",
                            f"{self.auth} authentication needs a username and a password",
                            "set username and pass the password as a secret parameter")
        if self.auth == "certificate":
            for name in ("certificate_pem", "certificate_key_pem"):
                value = getattr(self, name)
                if not value or not os.path.isfile(value):
                    raise self._bad(name, f"certificate authentication needs {name} (a readable PEM file), "
                                    f"got {value!r}")
        if isinstance(self.cert_validation, str):
            if not os.path.exists(self.cert_validation):
                raise self._bad("ca_bundle", f"CA bundle {self.cert_validation!r} does not exist",
                                "give the PEM file of the CA that signed the host's WinRM HTTPS certificate")
        elif not isinstance(self.cert_validation, bool):
            raise self._bad("cert_validation", "must be true, false or a CA bundle path")
        for name in ("connection_timeout", "read_timeout", "operation_timeout"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise self._bad(name, f"{v!r} is not a positive whole number of seconds")
        if self.read_timeout <= self.operation_timeout:
            raise self._bad("read_timeout", f"must be longer than operation_timeout ({self.operation_timeout} s): "
                            f"the server answers a long poll only when the operation timeout ends")
        if not self.configuration_name or any(c in self.configuration_name for c in "/ \t"):
            raise self._bad("configuration_name", f"{self.configuration_name!r} is not a session configuration name",
                            "e.g. Microsoft.PowerShell, or the name of a JEA endpoint")


# --------------------------------------------------------------------------- results

@dataclass
class ErrorRecordInfo:
    """A PowerShell error record, kept with the fields an admin needs to act on it."""
    message: str
    exception_type: str | None = None
    category: str | None = None
    fqid: str | None = None
    target: str | None = None
    script_stack_trace: str | None = None
    terminating: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v not in (None, "")}

    def __str__(self) -> str:
        extra = ", ".join(x for x in (self.exception_type, self.fqid, self.category) if x)
        return f"{self.message} ({extra})" if extra else self.message


@dataclass
class Invocation:
    """What one pipeline did: its state, the one result object and every stream."""
    label: str
    state: str = "NotStarted"            # Completed | Failed | Stopped
    output: list[Any] = field(default_factory=list)
    result: dict[str, Any] | None = None
    errors: list[ErrorRecordInfo] = field(default_factory=list)
    streams: dict[str, list] = field(default_factory=dict)
    failed: bool = False
    failure: str | None = None
    duration: float = 0.0
    wsman_requests: int = 0
    pool_opened: bool = False

    @property
    def status(self) -> str | None:
        return (self.result or {}).get("status")


class _Cancelled(Exception):
    """Internal: the deadline passed or interrupt() was called."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


# --------------------------------------------------------------------------- the session

def _wsman_class():
    from pypsrp.wsman import WSMan, WSManAction

    class CountingWSMan(WSMan):
        """WSMan that counts requests and does not replay a Receive on a read timeout by itself
        (pypsrp retries five times with growing sleeps, which ignores our deadline; the poll
        loop here retries within the deadline instead)."""

        requests = 0

        def invoke(self, *args: Any, **kwargs: Any):
            self.requests += 1
            return super().invoke(*args, **kwargs)

        def receive(self, resource_uri, resource, option_set=None, selector_set=None, timeout=None):
            from pypsrp.wsman import NAMESPACES

            res = self.invoke(WSManAction.RECEIVE, resource_uri, resource, option_set, selector_set, timeout,
                              retries_on_read_timeout=0)
            return res.find("s:Body", namespaces=NAMESPACES)

    return CountingWSMan


class HostSession:
    """One host, one runspace pool per run (opened on first use), many invocations."""

    def __init__(self, settings: HostSettings, log: logging.Logger | None = None) -> None:
        self.settings = settings
        self.log = log or _log
        self.pool_opens = 0
        self.invocations = 0
        self._requests_closed = 0
        self._wsman: Any = None
        self._pool: Any = None
        self._keys_exchanged = False
        self._lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._active = False
        self._cancel = threading.Event()
        self._cancel_why = "interrupted"
        if settings.cert_validation is False:  # every run: each run makes its own session
            self.log.warning("TLS certificate validation is OFF for %s: anyone on the network path can pose as "
                        "the host and read the session. Pass the CA bundle (--ca-bundle / ca_bundle) instead.",
                        settings.endpoint)

    # -- counters ----------------------------------------------------------------
    @property
    def wsman_requests(self) -> int:
        return self._requests_closed + (self._wsman.requests if self._wsman is not None else 0)

    def metrics(self) -> dict[str, int]:
        return {"psrp_pool_opens": self.pool_opens, "psrp_invocations": self.invocations,
                "psrp_wsman_requests": self.wsman_requests}

    # -- lifecycle ---------------------------------------------------------------
    def _new_wsman(self):
        s = self.settings
        kwargs: dict[str, Any] = dict(
            server=s.host, port=s.effective_port, username=s.username,
            password=s.password.reveal() if s.password else None, ssl=s.ssl, path=s.path, auth=s.auth,
            cert_validation=s.cert_validation, connection_timeout=s.connection_timeout,
            read_timeout=s.read_timeout, operation_timeout=s.operation_timeout, encryption=s.encryption,
            proxy=s.proxy, no_proxy=s.no_proxy, reconnection_retries=0, reconnection_backoff=0.5,
        )
        if s.auth == "certificate":
            kwargs.update(certificate_pem=s.certificate_pem, certificate_key_pem=s.certificate_key_pem)
        try:
            return _wsman_class()(**kwargs)
        except ValueError as e:  # pypsrp's own combination checks
            raise InputError(f"{s.label}: {e}", input=s.label) from None

    def _open_pool(self, deadline: float | None) -> None:
        from pypsrp.powershell import RunspacePool

        if self._wsman is None:
            self._wsman = self._new_wsman()
        pool = RunspacePool(self._wsman, configuration_name=self.settings.configuration_name,
                            min_runspaces=1, max_runspaces=1)
        self.pool_opens += 1
        self.log.info("opening a runspace pool on %s (configuration %s)", self.settings.endpoint,
                 self.settings.configuration_name)
        with self._bounded(deadline):
            pool.open()
        self._pool = pool
        self._keys_exchanged = False

    def _drop_pool(self, *, close: bool) -> None:
        """Forget the pool (after a break or an uncertain timeout); close it best-effort."""
        pool, self._pool = self._pool, None
        self._keys_exchanged = False
        if pool is not None and close:
            with contextlib.suppress(Exception), self._bounded(time.monotonic() + STOP_SECONDS):
                pool.close()
        if self._wsman is not None:
            self._requests_closed += self._wsman.requests
            with contextlib.suppress(Exception):
                self._wsman.close()
            self._wsman = None

    def close(self) -> None:
        """Delete the pool on the host. If an invocation is still winding down (an interrupt
        being honoured), wait for it a little, then let the host's idle timeout reap the pool."""
        if self._lock.acquire(timeout=POLL_SECONDS + STOP_SECONDS):
            try:
                self._drop_pool(close=True)
            finally:
                self._lock.release()
        else:
            self.log.warning("the session to %s is still busy; leaving its pool to the host's idle timeout",
                             self.settings.host)

    def __enter__(self) -> HostSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def interrupt(self) -> None:
        """Stop the running pipeline (Ctrl-C). Safe from another thread: the invoking thread
        notices within one poll (POLL_SECONDS) and sends the stop signal itself, so the
        session's HTTP connection and message encryption are never used by two threads."""
        with self._state_lock:
            if self._active:
                self._cancel_why = "interrupted"
                self._cancel.set()

    # -- timeouts ------------------------------------------------------------------
    @contextlib.contextmanager
    def _bounded(self, deadline: float | None) -> Iterator[None]:
        """Shorten the HTTP and WSMan timeouts so no single request outlives the deadline."""
        w = self._wsman
        if w is None or deadline is None:
            yield
            return
        t = w.transport
        saved = (t.connection_timeout, t.read_timeout, w.operation_timeout)
        remaining = max(1.0, deadline - time.monotonic())
        t.connection_timeout = min(saved[0], remaining)
        t.read_timeout = min(saved[1], remaining + 1)
        w.operation_timeout = max(1, min(saved[2], int(remaining)))
        try:
            yield
        finally:
            t.connection_timeout, t.read_timeout, w.operation_timeout = saved

    def _check_cancel(self, deadline: float | None) -> None:
        if self._cancel.is_set():
            raise _Cancelled(self._cancel_why)
        if deadline is not None and time.monotonic() >= deadline:
            raise _Cancelled("deadline")

    # -- invoke --------------------------------------------------------------------
    def invoke(self, script: str, parameters: dict[str, Any] | None = None, *,
               secure: set[str] | frozenset[str] = frozenset(), deadline: float | None = None,
               label: str | None = None) -> Invocation:
        """Run `script` with `parameters` bound by its param() block. Secrets (Secret values and
        names in `secure`) travel as SecureStrings. `deadline` is a time.monotonic() value.

        Returns an Invocation (failed or not); raises TransportError when the host could not
        be reached or the session broke, Interrupted when interrupt() stopped it."""
        label = label or "script"
        with self._lock:
            with self._state_lock:
                self._active = True
                self._cancel.clear()
            try:
                return self._invoke(script, dict(parameters or {}), set(secure), deadline, label)
            finally:
                with self._state_lock:
                    self._active = False

    def _invoke(self, script: str, parameters: dict[str, Any], secure: set[str], deadline: float | None,
                label: str) -> Invocation:
        from pypsrp.powershell import PowerShell

        inv = Invocation(label)
        start = time.monotonic()
        requests_before = self.wsman_requests
        started = False        # True once the Command request may have reached the host
        ps = None
        try:
            self._check_cancel(deadline)
            if self._pool is None:
                self._open_pool(deadline)
                inv.pool_opened = True
            values, needs_keys = _serialize_parameters(parameters, secure)
            if needs_keys and not self._keys_exchanged:
                self._pool.session_key_timeout_ms = int(1000 * max(1.0, (deadline or start + 60) - time.monotonic()))
                with self._bounded(deadline):
                    self._pool.exchange_keys()
                self._keys_exchanged = True
            self._check_cancel(deadline)
            ps = PowerShell(self._pool)
            ps.add_script(script)
            if values:
                ps.add_parameters(values)
            self.invocations += 1
            secret_names = sorted(n for n in parameters if n in secure or isinstance(parameters[n], Secret))
            self.log.info("invoking %s on %s with parameters %s (secure: %s)", label, self.settings.host,
                          sorted(parameters), secret_names)
            started = True
            with self._bounded(deadline):
                ps.begin_invoke()
            self._poll(ps, deadline)
        except _Cancelled as c:
            self._stop(ps)
            inv.duration = time.monotonic() - start
            if c.why == "interrupted":
                raise Interrupted(f"{label} on {self.settings.host} was interrupted; the remote pipeline was "
                                  f"sent a stop signal", host=self.settings.host,
                                  started=started) from None
            kind = "timeout-mid-run" if started else "timeout-before-start"
            raise TransportError(
                f"{label} on {self.settings.host} did not finish before the stage deadline "
                f"({'the remote pipeline was stopped' if started else 'it had not started'})",
                host=self.settings.host, kind=kind, retryable=not started, hint=_hint(kind, self.settings)) from None
        except KeyboardInterrupt:
            self._stop(ps)
            raise
        except TransportError:
            raise
        except InputError:
            raise
        except Exception as e:
            err = self._classify(e, started)
            if err.kind in ("broken-pool", "timeout-mid-run", "timeout-before-start", "connect", "protocol"):
                self._drop_pool(close=False)
            raise err from None
        finally:
            inv.wsman_requests = self.wsman_requests - requests_before
        inv.duration = time.monotonic() - start
        self._collect(ps, inv)
        with contextlib.suppress(Exception), self._bounded(time.monotonic() + STOP_SECONDS):
            ps.close()    # TERMINATE signal: frees the pipeline on the server
        inv.wsman_requests = self.wsman_requests - requests_before
        return inv

    def _poll(self, ps: Any, deadline: float | None) -> None:
        import requests
        from pypsrp.complex_objects import PSInvocationState

        stalled_since: float | None = None
        while ps.state == PSInvocationState.RUNNING:
            self._check_cancel(deadline)
            wait = POLL_SECONDS if deadline is None else max(1, min(POLL_SECONDS, int(deadline - time.monotonic())))
            try:
                with self._bounded(deadline):
                    ps.poll_invoke(timeout=wait)
                stalled_since = None
            except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectTimeout):
                # The host did not answer a long poll in time. A Receive may be replayed (the
                # host resends what it had), so poll again while the deadline allows; without a
                # deadline, give up once the host has been silent for read_timeout seconds.
                now = time.monotonic()
                stalled_since = stalled_since or now
                if deadline is not None and now >= deadline:
                    raise _Cancelled("deadline") from None
                if deadline is None and now - stalled_since >= self.settings.read_timeout:
                    raise
        self._check_interrupt_only()

    def _check_interrupt_only(self) -> None:
        if self._cancel.is_set() and self._cancel_why == "interrupted":
            # The pipeline ended on its own just as interrupt() came: nothing left to stop.
            self._cancel.clear()

    def _stop(self, ps: Any) -> None:
        """Send the stop signal to a running pipeline, best-effort and time-bounded. The pool
        is kept only when the stop got through (otherwise the host's state is unknown)."""
        from pypsrp.complex_objects import PSInvocationState

        if ps is None or ps.state != PSInvocationState.RUNNING:
            return
        try:
            with self._bounded(time.monotonic() + STOP_SECONDS):
                ps.stop()
        except Exception as e:
            self.log.warning("could not stop the remote pipeline on %s: %s", self.settings.host, redact(str(e)))
            self._drop_pool(close=False)

    # -- classification ------------------------------------------------------------
    def _classify(self, e: BaseException, started: bool) -> TransportError:
        host = self.settings.host
        where = f"{self.settings.endpoint}"
        kind, detail = classify_exception(e, started)
        msg = {
            "auth": f"{where}: authentication failed for {self.settings.username or '(current user)'} "
                    f"with {self.settings.auth}",
            "connect": f"{where}: connection failed: {detail}",
            "dns": f"{where}: the host name {host!r} does not resolve",
            "tls": f"{where}: TLS handshake failed: {detail}",
            "timeout-before-start": f"{where}: timed out before the command started: {detail}",
            "timeout-mid-run": f"{where}: timed out while the command was running (it may have run; "
                               f"not replayed): {detail}",
            "broken-pool": f"{where}: the PowerShell session broke: {detail}",
            "protocol": f"{where}: WinRM refused the request: {detail}",
        }[kind]
        retryable = kind in ("timeout-before-start",) or (kind in ("connect", "broken-pool") and not started)
        return TransportError(redact(msg), host=host, kind=kind, retryable=retryable, hint=_hint(kind, self.settings))

    # -- streams and the result ----------------------------------------------------
    def _collect(self, ps: Any, inv: Invocation) -> None:
        from pypsrp.complex_objects import PSInvocationState

        state = ps.state
        inv.state = {PSInvocationState.COMPLETED: "Completed", PSInvocationState.FAILED: "Failed",
                     PSInvocationState.STOPPED: "Stopped"}.get(state, str(state))
        inv.output = [_plain(o) for o in ps.output]
        inv.errors = [error_record(r) for r in ps.streams.error]
        if state == PSInvocationState.FAILED and inv.errors:
            inv.errors[-1].terminating = True
        inv.streams = {
            "error": [r.to_dict() for r in inv.errors],
            "warning": [redact(_record_message(r)) for r in ps.streams.warning],
            "verbose": [redact(_record_message(r)) for r in ps.streams.verbose],
            "information": [redact(_information_message(r)) for r in ps.streams.information],
            "progress": [_progress(r) for r in ps.streams.progress],
            "debug": [redact(_record_message(r)) for r in ps.streams.debug],
        }
        inv.streams = {k: v for k, v in inv.streams.items() if v}
        result, problem = check_result(ps.output)
        inv.result = result
        if state == PSInvocationState.FAILED:
            inv.failed = True
            inv.failure = ("the script stopped with a terminating error: " + str(inv.errors[-1])
                           if inv.errors else "the pipeline failed")
        elif state == PSInvocationState.STOPPED:
            inv.failed, inv.failure = True, "the pipeline was stopped before it finished"
        elif inv.errors:
            inv.failed = True
            inv.failure = (f"the script wrote {len(inv.errors)} error record(s): "
                           + "; ".join(str(e) for e in inv.errors[:3]))
        elif problem:
            inv.failed, inv.failure = True, problem
        elif result is not None and result.get("status") == "failed":
            inv.failed = True
            inv.failure = str(result.get("reason") or "the script reported status 'failed'")
        if inv.failure:
            inv.failure = redact(inv.failure)


# --------------------------------------------------------------------------- helpers

def _serialize_parameters(parameters: dict[str, Any], secure: set[str]) -> tuple[dict[str, Any], bool]:
    """PSRP values for the parameters: secrets as SecureString, ints and floats with the right
    width, None left out (the parameter keeps its default)."""
    from pypsrp.serializer import TaggedValue

    out: dict[str, Any] = {}
    needs_keys = False
    secure_lower = {n.lower() for n in secure}

    def value(v: Any, name: str) -> Any:
        if isinstance(v, Secret):
            raise InputError(f"parameter {name}: a secret inside a list or table cannot travel as a SecureString",
                             input=name, hint="pass the secret as its own [SecureString] parameter")
        if isinstance(v, bool) or isinstance(v, str) or v is None:
            return v
        if isinstance(v, int):
            return v if -2**31 <= v < 2**31 else TaggedValue("I64", v)
        if isinstance(v, float):
            return TaggedValue("Db", v)
        if isinstance(v, (list, tuple)):
            return [value(x, name) for x in v]
        if isinstance(v, dict):
            return {str(k): value(x, name) for k, x in v.items()}
        raise InputError(f"parameter {name}: a {type(v).__name__} cannot be sent to PowerShell", input=name,
                         hint="use strings, numbers, booleans, lists or tables")

    for name, v in parameters.items():
        if v is None:
            continue
        if isinstance(v, Secret) or name.lower() in secure_lower:
            text = v.reveal() if isinstance(v, Secret) else v
            if not isinstance(text, str):
                raise InputError(f"parameter {name} is declared secure but is not a string", input=name)
            out[name] = TaggedValue("SS", text)
            needs_keys = True
        else:
            out[name] = value(v, name)
    return out, needs_keys


def _plain(obj: Any, depth: int = 0) -> Any:
    """pypsrp's deserialized output as plain Python (dicts, lists, primitives); complex
    objects are kept as _Complex markers so check_result can name them."""
    if depth > 20:
        return _Complex("(nested too deep)")
    if obj is None or isinstance(obj, (bool, int, float, str, _Complex)):
        return obj
    if isinstance(obj, dict):
        return {str(k): _plain(v, depth + 1) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v, depth + 1) for v in obj]
    if isinstance(obj, bytes):
        return _Complex("byte[]")
    types = getattr(obj, "types", None) or getattr(obj, "_types", None) or [type(obj).__name__]
    return _Complex(str(types[0]).replace("Deserialized.", ""))


class _Complex:
    def __init__(self, type_name: str) -> None:
        self.type_name = type_name

    def __repr__(self) -> str:
        return f"<{self.type_name}>"


def check_result(output: list[Any]) -> tuple[dict[str, Any] | None, str | None]:
    """The result contract: exactly one hashtable of primitives with the known keys."""
    items = [_plain(o) for o in output]
    if not items:
        return None, ("the script emitted no result object "
                      "(expected one hashtable: changed, before, after, data, messages)")
    if len(items) > 1:
        kinds = ", ".join(_describe(i) for i in items[:5])
        return None, (f"the script emitted {len(items)} objects ({kinds}); exactly one result hashtable is expected "
                      f"(send other output to Out-Null)")
    result = items[0]
    if not isinstance(result, dict):
        return None, f"the script emitted {_describe(result)} instead of a result hashtable"
    bad = _first_complex(result, "result")
    if bad:
        return None, f"the result holds {bad}; only strings, numbers, booleans, lists and hashtables are allowed"
    if "changed" not in result or not isinstance(result["changed"], bool):
        return None, "the result hashtable has no boolean 'changed'"
    unknown = sorted(set(result) - RESULT_KEYS)
    if unknown:
        return None, f"the result hashtable has unknown keys: {', '.join(unknown)}"
    status = result.get("status")
    if status is not None and status not in RESULT_STATUSES:
        return None, f"the result status {status!r} is not one of {', '.join(sorted(RESULT_STATUSES))}"
    msgs = result.get("messages")
    if msgs is None:
        result["messages"] = []
    elif isinstance(msgs, str):
        result["messages"] = [msgs]
    elif not isinstance(msgs, list):
        return None, "the result 'messages' must be a list of strings"
    result["messages"] = [redact(str(m)) for m in result["messages"]]
    return result, None


def _describe(v: Any) -> str:
    if isinstance(v, _Complex):
        return f"a {v.type_name} object"
    if isinstance(v, dict):
        return "a hashtable"
    if isinstance(v, list):
        return "a list"
    return f"a {type(v).__name__} value {str(v)[:40]!r}"


def _first_complex(v: Any, path: str) -> str | None:
    if isinstance(v, _Complex):
        return f"a {v.type_name} object at {path}"
    if isinstance(v, dict):
        for k, x in v.items():
            found = _first_complex(x, f"{path}.{k}")
            if found:
                return found
    if isinstance(v, list):
        for i, x in enumerate(v):
            found = _first_complex(x, f"{path}[{i}]")
            if found:
                return found
    return None


def _text(v: Any) -> str | None:
    if v is None:
        return None
    s = str(v)
    return s if s and s != "None" else None


def error_record(rec: Any) -> ErrorRecordInfo:
    """Fields of a pypsrp ErrorRecord(Message)."""
    exc = getattr(rec, "exception", None)
    exc_type = None
    exc_message = None
    if exc is not None:
        types = getattr(exc, "types", None) or []
        if types:
            exc_type = str(types[0]).replace("Deserialized.", "")
        props = dict(getattr(exc, "adapted_properties", {}) or {})
        props.update(getattr(exc, "extended_properties", {}) or {})
        exc_message = _text(props.get("Message")) or _text(exc)
    message = _text(getattr(rec, "details_message", None)) or exc_message or _text(rec) or "(no message)"
    cat = getattr(rec, "category", None)
    category = ERROR_CATEGORIES[cat] if isinstance(cat, int) and 0 <= cat < len(ERROR_CATEGORIES) else _text(cat)
    target = _text(getattr(rec, "target_name", None))
    if not target:
        tobj = getattr(rec, "target_object", None)
        target = _text(tobj) if isinstance(tobj, (str, int)) else None
    return ErrorRecordInfo(
        message=redact(message), exception_type=exc_type, category=category,
        fqid=_text(getattr(rec, "fq_error", None)), target=redact(target) if target else None,
        script_stack_trace=redact(_text(getattr(rec, "script_stacktrace", None)) or "") or None)


def _record_message(rec: Any) -> str:
    return _text(getattr(rec, "message", None)) or _text(rec) or ""


def _information_message(rec: Any) -> str:
    data = getattr(rec, "message_data", None)
    if data is not None and not isinstance(data, (str, int, float, bool)):
        return _text(data) or ""
    return _text(data) or _record_message(rec)


def _progress(rec: Any) -> dict[str, Any]:
    return {"activity": _text(getattr(rec, "activity", None)), "status": _text(getattr(rec, "description", None)),
            "percent": getattr(rec, "percent_complete", None)}


def classify_exception(e: BaseException, started: bool) -> tuple[str, str]:
    """(kind, detail) for an exception from pypsrp / requests."""
    import requests
    from pypsrp.exceptions import (AuthenticationError, InvalidPSRPOperation, InvalidRunspacePoolStateError,
                                   WinRMTransportError, WSManFaultError)

    detail = redact(_short(e))
    if isinstance(e, AuthenticationError):
        return "auth", detail
    if isinstance(e, requests.exceptions.SSLError):
        return "tls", detail
    if isinstance(e, requests.exceptions.ConnectTimeout):
        return "timeout-before-start", detail
    if isinstance(e, requests.exceptions.ReadTimeout):
        return ("timeout-mid-run" if started else "timeout-before-start"), detail
    if isinstance(e, requests.exceptions.ConnectionError):
        if _caused_by(e, socket.gaierror) or "Name or service not known" in str(e) \
                or "NameResolutionError" in str(e) or "nodename nor servname" in str(e) \
                or "getaddrinfo failed" in str(e):
            return "dns", detail
        if _caused_by(e, ConnectionRefusedError) or "Connection refused" in str(e) \
                or "actively refused" in str(e):
            return "connect", detail
        return ("broken-pool" if started else "connect"), detail
    if isinstance(e, WSManFaultError):
        code = e.code if isinstance(e.code, int) else 0
        reason = e.reason or str(e)
        if code in _SHELL_GONE_CODES or "shell was not found" in str(reason).lower() \
                or "shellid" in str(reason).lower():
            return "broken-pool", redact(str(reason))
        if code == 5 or "access is denied" in str(reason).lower():
            return "auth", redact(str(reason))
        if code == _OPERATION_TIMEOUT:
            return ("timeout-mid-run" if started else "timeout-before-start"), redact(str(reason))
        return "protocol", redact(str(reason))
    if isinstance(e, (InvalidRunspacePoolStateError, InvalidPSRPOperation)):
        return "broken-pool", detail
    if isinstance(e, WinRMTransportError):
        if e.code == 401:
            return "auth", detail
        return "protocol", redact(f"HTTP {e.code}: {str(e.response_text)[:300]}")
    return "protocol", detail


def _short(e: BaseException) -> str:
    text = str(e) or type(e).__name__
    # urllib3 wraps the real reason several layers deep; the last "(...)" part reads best.
    if "Caused by" in text:
        text = text.split("Caused by", 1)[1].strip(" ()")
    return text[:400]


def _caused_by(e: BaseException, cls: type) -> bool:
    seen = set()
    stack: list[Any] = [e]
    while stack:
        x = stack.pop()
        if x is None or id(x) in seen:
            continue
        seen.add(id(x))
        if isinstance(x, cls):
            return True
        stack.extend([getattr(x, "__cause__", None), getattr(x, "__context__", None),
                      getattr(x, "reason", None)])
        stack.extend(a for a in getattr(x, "args", ()) if isinstance(a, BaseException))
    return False


_HINTS = {
    "auth": "check the user name and password and that the WinRM service allows this auth method "
            "(`winrm get winrm/config/service/auth`); for Kerberos check the SPN (`setspn -L <host>`) and "
            "that you used the host's DNS name; for a JEA endpoint check the role capability grants this user",
    "connect": "check the WinRM listener on the host (`winrm enumerate winrm/config/listener`), that the "
               "service runs (`Get-Service WinRM`), and that the firewall allows TCP {port} "
               "(`Test-NetConnection <host> -Port {port}`)",
    "dns": "check the host name (DNS, hosts file) or use the IP address; with Kerberos the SPN must match the name",
    "tls": "check the CA: pass --ca-bundle with the PEM of the CA that signed the host's WinRM HTTPS certificate "
           "(ca_bundle in the target), and that the certificate names this host; do not turn validation off",
    "timeout-before-start": "the command did not start, so a retry is safe; check the host is responsive and "
                            "the network path (proxy, firewall on TCP {port}); raise the stage timeout if it is slow",
    "timeout-mid-run": "the command may have run on the host and was not replayed: check the host's state "
                       "before running again, and raise the stage timeout if the work is slow",
    "broken-pool": "the host closed the PowerShell session (WinRM restarted, MaxShellsPerUser/idle timeout, or "
                   "memory limit: `winrm get winrm/config/winrs`); running again opens a new session",
    "protocol": "check the session configuration name (`Get-PSSessionConfiguration` on the host) and the WinRM "
                "logs (Event Viewer: Microsoft-Windows-WinRM/Operational)",
}


def _hint(kind: str, settings: HostSettings) -> str:
    return _HINTS[kind].replace("{port}", str(settings.effective_port))


__all__ = ["ErrorRecordInfo", "HostSession", "HostSettings", "Invocation", "check_result",
           "classify_exception", "error_record"]
