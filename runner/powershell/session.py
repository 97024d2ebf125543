"""PowerShell over PSRP with pypsrp 0.9.1: one RunspacePool per host per run, typed parameters,
SecureStrings for secrets, a deadline per invocation, explicit failure and classified errors.

Why not `pypsrp.client.Client.execute_ps`: it flattens output to text and opens a pool per
call. Here a `HostSession` opens ONE pool lazily (on the first invocation) and reuses it;
each `invoke()` is a `PowerShell` pipeline with `add_script` + `add_parameters`, driven by
`begin_invoke` / `poll_invoke` so a deadline and an interrupt can stop it (`stop()` sends the
PSRP ctrl_c signal to the remote pipeline).

A finished pipeline is not sent pypsrp's TERMINATE signal (one request each) at once: the
pool's Delete releases it with the pool. MS-PSRP defines a pipeline's Signal only to stop one
that runs (3.1.5.3.9, code powershell/signal/crtl_c) and forbids messages to a pipeline once it
is Completed, Stopped or Failed (3.1.1.3.2); the Delete closes the pool "and any active
pipelines in the RunspacePool" (3.2.5.3.12), and MS-WSMV 3.1.4.4.1 frees all of a shell's
resources with it. The held commands stay far below the host's quota (MS-WSMV 3.1.4.1.34.3.4:
MaxConcurrentCommandsPerShell 1000 for microsoft.powershell): past HELD_PIPELINES the oldest is
released with its Signal after all.

Its neighbours, along pypsrp's seams: settings.py (how to reach the host), serialize.py
(values across the PSRP boundary), result.py (the template result contract and when an
invocation failed), failures.py (error records, and transport problems as a
`runner.errors.TransportError` with a kind, `retryable` and a hint)."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import Any, Iterator

from ..errors import InputError, Interrupted, TransportError
from ..secrets import Secret, redact
from .failures import error_record, hint_for, transport_error
from .result import Invocation, check_result, decide_failure
from .serialize import from_psrp, information_message, progress_record, record_message, to_psrp_parameters
from .settings import HostSettings

_log = logging.getLogger("psrunner.psrp")

POLL_SECONDS = 3          # long-poll length while a pipeline runs: bounds interrupt latency
STOP_SECONDS = 5          # time allowed for the stop signal and cleanup after a deadline
HELD_PIPELINES = 16       # finished pipelines left for the pool's Delete to release (see above)


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
        self._held: list[Any] = []      # finished pipelines the pool's Delete releases
        self._lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._active = False
        self._cancel = threading.Event()
        self._cancel_why = "interrupted"
        if settings.cert_validation is False:  # every run: each run makes its own session
            self.log.warning("TLS certificate validation is OFF for %s: anyone on the network path can pose as "
                        "the host and read the session. Give the CA bundle (ca_bundle) instead.",
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
        if s.spn_host:
            kwargs["negotiate_hostname_override"] = s.spn_host
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
        self._held = []
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
            values, needs_keys = to_psrp_parameters(parameters, secure)
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
                host=self.settings.host, kind=kind, retryable=not started, hint=hint_for(kind, self.settings)) from None
        except KeyboardInterrupt:
            self._stop(ps)
            raise
        except TransportError:
            raise
        except InputError:
            raise
        except Exception as e:
            err = transport_error(e, started, self.settings)
            if err.kind in ("broken-pool", "timeout-mid-run", "timeout-before-start", "connect", "protocol"):
                self._drop_pool(close=False)
            raise err from None
        finally:
            inv.wsman_requests = self.wsman_requests - requests_before
        inv.duration = time.monotonic() - start
        self._collect(ps, inv)
        self._hold(ps)
        inv.wsman_requests = self.wsman_requests - requests_before
        return inv

    def _hold(self, ps: Any) -> None:
        """Leave a finished pipeline to the pool's Delete (module docstring); past
        HELD_PIPELINES, release the oldest with its TERMINATE signal."""
        self._pool.pipelines.pop(ps.id, None)     # pypsrp routes nothing more to it
        self._held.append(ps)
        while len(self._held) > HELD_PIPELINES:
            with contextlib.suppress(Exception), self._bounded(time.monotonic() + STOP_SECONDS):
                self._held.pop(0).close()

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

    # -- streams and the result ----------------------------------------------------
    def _collect(self, ps: Any, inv: Invocation) -> None:
        from pypsrp.complex_objects import PSInvocationState

        state = ps.state
        inv.state = {PSInvocationState.COMPLETED: "Completed", PSInvocationState.FAILED: "Failed",
                     PSInvocationState.STOPPED: "Stopped"}.get(state, str(state))
        inv.output = [from_psrp(o) for o in ps.output]
        inv.errors = [error_record(r) for r in ps.streams.error]
        if state == PSInvocationState.FAILED and inv.errors:
            inv.errors[-1].terminating = True
        inv.streams = {
            "error": [r.to_dict() for r in inv.errors],
            "warning": [redact(record_message(r)) for r in ps.streams.warning],
            "verbose": [redact(record_message(r)) for r in ps.streams.verbose],
            "information": [redact(information_message(r)) for r in ps.streams.information],
            "progress": [progress_record(r) for r in ps.streams.progress],
            "debug": [redact(record_message(r)) for r in ps.streams.debug],
        }
        inv.streams = {k: v for k, v in inv.streams.items() if v}
        inv.result, problem = check_result(ps.output)
        decide_failure(inv, problem)


__all__ = ["HostSession"]
