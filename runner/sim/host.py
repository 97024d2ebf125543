"""The Windows host simulator: a WSMan/PSRP endpoint on loopback that the real pypsrp client
talks to, with template twins standing in for the PowerShell engine.

    with HostSimulator() as sim:                  # HTTPS + Basic, throwaway CA
        wsman = WSMan(sim.host, port=sim.port, ssl=True, cert_validation=sim.ca_bundle,
                      auth="basic", username=sim.username, password=sim.password)
        with RunspacePool(wsman) as pool: ...

    HostSimulator(scheme="http", auth="ntlm")     # NTLM + WinRM message encryption
    HostSimulator(scheme="http", auth="kerberos", keytab=path, principals=["jdoe@CONTOSO.TEST"])
                                                  # Kerberos from a real KDC (the Samba DC's)

Pieces: wsman_server (HTTP(S), auth, encryption), wsman_soap (envelopes), psrp_shell
(psrpcore Runspace Pools, pipelines, twins, long-poll), ps_binding (param() binding).
This module holds the public face: the simulator, its switchable faults and its counters
(benchmarks read them), and `serve()` for `psrunner sim serve`."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..secrets import register
from .psrp_shell import ShellEngine, stop_requested, wait_or_stop
from .tls import TLSMaterial, make_tls
from .twin_types import HostState
from .world import SimWorld
from .wsman_auth import KEYTABS, NTLM_USERS
from .wsman_server import Listener

__all__ = ["FAULT_KINDS", "Counter", "Faults", "HostSimulator", "serve", "stop_requested", "wait_or_stop"]

FAULT_KINDS = ("wrong_password", "refuse", "slow", "hang", "break_pool",
               "terminating_error", "non_terminating_error")
ONE_SHOT_FAULTS = ("break_pool", "terminating_error", "non_terminating_error")
ACTIONS = ("Create", "Command", "Send", "Receive", "Signal", "Delete")
AUTHS = ("basic", "ntlm", "negotiate", "kerberos")


class Faults:
    """Switchable misbehaviour. Several kinds may be active at once.

    wrong_password        every authentication is rejected with 401
    refuse                the listener is closed (connection refused) until cleared
    slow(seconds=1.0)     every HTTP response is delayed by `seconds`
    hang                  Receive requests are accepted and never answered (until cleared)
    break_pool(ran=True)  the next pipeline's shell disappears: its Receive gets the WSMan
                          "shell not found" fault (ran=True: after the twin has run)
    terminating_error(message=, exception_type=, category=, fqid=, target=)
                          the next pipeline fails with that ErrorRecord (twin not run)
    non_terminating_error(...same...)
                          the next pipeline runs, writes that error record and completes
    The last three are used up by the next pipeline."""

    def __init__(self, sim: HostSimulator) -> None:
        self._sim = sim
        self._active: dict[str, dict[str, Any]] = {}

    def set(self, kind: str, **opts: Any) -> None:
        if kind not in FAULT_KINDS:
            raise InputError(f"Unknown host simulator fault {kind!r}.", input="fault",
                             hint="use one of: " + ", ".join(FAULT_KINDS))
        if kind == "slow":
            seconds = opts.setdefault("seconds", 1.0)
            if not isinstance(seconds, (int, float)) or seconds < 0:
                raise InputError("The 'slow' fault needs seconds >= 0.", input="seconds",
                                 hint="e.g. faults.set('slow', seconds=0.5)")
        with self._sim._cond:
            self._active[kind] = dict(opts)
            self._sim._cond.notify_all()
        if kind == "refuse":
            self._sim._refuse()

    def clear(self, kind: str | None = None) -> None:
        with self._sim._cond:
            cleared = list(self._active) if kind is None else [kind] if kind in self._active else []
            for k in cleared:
                del self._active[k]
            self._sim._cond.notify_all()
        if "refuse" in cleared:
            self._sim._accept()

    def active(self, kind: str) -> bool:
        return kind in self._active

    def options(self, kind: str) -> dict[str, Any] | None:
        opts = self._active.get(kind)
        return None if opts is None else dict(opts)

    def take(self, kind: str) -> dict[str, Any] | None:
        """Use up a one-shot fault (the engine calls this when a pipeline starts)."""
        with self._sim._cond:
            return self._active.pop(kind, None)

    def __contains__(self, kind: str) -> bool:
        return kind in self._active

    def __repr__(self) -> str:
        return f"Faults({sorted(self._active)})"

    def _delay(self) -> None:
        opts = self._active.get("slow")
        if opts:
            self._sim._stopped.wait(float(opts.get("seconds", 1.0)))


class Counter:
    """What the simulator served. `requests` counts WSMan envelopes (authentication legs and
    the empty request that sets up message encryption are in `http_requests` only);
    `encrypted` how many of them arrived sealed (NTLM message encryption); `largest_response`
    the biggest SOAP envelope answered, in bytes (bounded by the client's MaxEnvelopeSize)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.requests = 0
            self.http_requests = 0
            self.pool_opens = 0
            self.largest_response = 0
            self.encrypted = 0
            self._actions: dict[str, int] = {}

    def by_action(self) -> dict[str, int]:
        with self._lock:
            counts = {a: 0 for a in ACTIONS}
            counts.update(self._actions)
            return counts

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"requests": self.requests, "http_requests": self.http_requests,
                    "pool_opens": self.pool_opens, "largest_response": self.largest_response,
                    "encrypted": self.encrypted,
                    "by_action": {**{a: 0 for a in ACTIONS}, **self._actions}}

    def __repr__(self) -> str:
        return f"Counter({self.snapshot()})"

    def _http(self) -> None:
        with self._lock:
            self.http_requests += 1

    def _wsman(self, action: str, encrypted: bool) -> None:
        with self._lock:
            self.requests += 1
            self.encrypted += int(encrypted)
            self._actions[action] = self._actions.get(action, 0) + 1

    def _pool_open(self) -> None:
        with self._lock:
            self.pool_opens += 1

    def _response(self, size: int) -> None:
        with self._lock:
            self.largest_response = max(self.largest_response, size)


class HostSimulator:
    """A simulated Windows host reachable over WSMan (see module docstring)."""

    path = "wsman"
    default_envelope_size = 153600   # what a client that sends no MaxEnvelopeSize gets

    def __init__(self, world: SimWorld | None = None, state: HostState | None = None, *,
                 tls: TLSMaterial | None = None, scheme: str = "https", auth: str = "basic",
                 username: str = "psrunner-admin", password: str = "Sim-Host-Pa55!",
                 host: str = "127.0.0.1", port: int = 0, keytab: str | Path | None = None,
                 principals: Iterable[str] = ()) -> None:
        if scheme not in ("http", "https"):
            raise InputError(f"Host simulator scheme must be 'http' or 'https', not {scheme!r}.",
                             input="scheme", hint="use https (Basic) or http (NTLM with encryption)")
        if auth not in AUTHS:
            raise InputError(f"Host simulator auth must be one of {', '.join(AUTHS)}, not {auth!r}.",
                             input="auth", hint="use basic over https or ntlm over http")
        if not username or not password:
            raise InputError("The host simulator needs a username and a password.", input="username/password",
                             hint="keep the defaults or pass both")
        if auth == "kerberos" and not (keytab and Path(keytab).is_file()):
            raise InputError("A Kerberos host simulator needs the keytab of its HTTP/ service principal.",
                             input="keytab", hint="export it from the KDC (runner.sim.directory.kerberos)")
        register(password)  # redact() scrubs it should it ever reach a log
        self.world = world if world is not None else SimWorld()
        self.state = state if state is not None else HostState()
        self.scheme = scheme
        self.auth = auth
        self.username = username
        self.password = password
        self.bind_host = host
        self.host = "localhost"
        self.port = port
        # Kerberos: the keytab, and who may sign in (user@REALM, as the ticket names them);
        # `signed_in` records (principal, mechanism) of each authenticated connection
        self.keytab = str(keytab) if keytab else None
        self.principals = {p.lower() for p in principals}
        self.signed_in: list[tuple[str, str]] = []
        self._tls = tls
        self._own_tls = False
        self._cond = threading.Condition(threading.RLock())
        self._stopped = threading.Event()
        self._started = False
        self._listener: Listener | None = None
        self.faults = Faults(self)
        self.counter = Counter()
        self.engine = ShellEngine(state=self.state, world=self.world, cond=self._cond, faults=self.faults,
                                  on_pool_open=self.counter._pool_open, address=lambda: self.endpoint,
                                  owner=username)

    # ---- lifecycle --------------------------------------------------------------------
    def start(self) -> HostSimulator:
        if self._started:
            raise RuntimeError("HostSimulator.start() was already called; make a new simulator")
        self._started = True
        ctx = None
        if self.scheme == "https":
            if self._tls is None:
                self._tls = make_tls()
                self._own_tls = True
            ctx = self._tls.server_context()
        if self.auth == "kerberos":
            KEYTABS.register(id(self), self.keytab)
        elif self.auth != "basic":
            NTLM_USERS.register(id(self), self.username, self.password, self.state.computer_name)
        self._listener = Listener(self, self.bind_host, self.port, ctx)
        try:
            self._listener.open()
        except OSError as exc:
            self.stop()
            raise InputError(f"The host simulator cannot listen on {self.bind_host}:{self.port}: {exc}",
                             input="port", hint="choose a free port, or 0 for any") from None
        self.port = self._listener.port
        if self.faults.active("refuse"):
            self._refuse()
        return self

    def stop(self) -> None:
        """Stop serving: long-polls end, connections drop, the temp files go. Prompt."""
        self._stopped.set()
        self.engine.stop()
        if self._listener is not None:
            self._listener.close()
            self._listener.drop_connections()
        if self.auth == "kerberos":
            KEYTABS.unregister(id(self))
        elif self.auth != "basic":
            NTLM_USERS.unregister(id(self))
        if self._own_tls and self._tls is not None:
            shutil.rmtree(self._tls.directory, ignore_errors=True)
            self._own_tls = False

    def __enter__(self) -> HostSimulator:  # noqa: PYI034 - typing.Self needs 3.11
        return self.start() if not self._started else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- what clients need ------------------------------------------------------------
    @property
    def ca_bundle(self) -> str | None:
        return str(self._tls.ca_bundle) if self.scheme == "https" and self._tls is not None else None

    @property
    def endpoint(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}/{self.path}"

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `pypsrp.wsman.WSMan` that reach this simulator."""
        kw: dict[str, Any] = {"server": self.host, "port": self.port, "ssl": self.scheme == "https",
                              "path": self.path, "auth": self.auth, "username": self.username,
                              "password": self.password}
        if self.scheme == "https":
            kw["cert_validation"] = self.ca_bundle
        return kw

    @property
    def shells(self) -> int:
        """How many shells (Runspace Pools) are open now."""
        with self._cond:
            return len(self.engine.shells)

    def __repr__(self) -> str:
        return f"HostSimulator({self.endpoint}, auth={self.auth})"

    # ---- fault plumbing ---------------------------------------------------------------
    def _refuse(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener.drop_connections()

    def _accept(self) -> None:
        if self._listener is not None and not self._stopped.is_set() and not self._listener.is_open:
            self._listener.port = self.port
            self._listener.open()


def serve(*, scheme: str = "https", auth: str = "basic", host: str = "127.0.0.1", port: int | None = None,
          username: str = "psrunner-admin", password: str = "Sim-Host-Pa55!",
          world: SimWorld | None = None, state: HostState | None = None,
          echo: Callable[[str], None] = print, ready: threading.Event | None = None,
          stop: threading.Event | None = None) -> None:
    """Run a host simulator in the foreground until Ctrl-C (`psrunner sim serve`), or until
    `stop` is set. Port None means the WinRM default for the scheme (5986 https, 5985 http).
    The throwaway password is printed: a person trying the simulator needs it."""
    if port is None:
        port = 5986 if scheme == "https" else 5985
    sim = HostSimulator(world, state, scheme=scheme, auth=auth, username=username, password=password,
                        host=host, port=port).start()
    try:
        echo(f"Simulated Windows host listening on {sim.endpoint} (auth: {sim.auth})")
        echo(f"  username: {sim.username}")
        echo(f"  password: {sim.password}")
        if sim.ca_bundle:
            echo(f"  CA bundle: {sim.ca_bundle}")
        echo("Press Ctrl-C to stop.")
        if ready is not None:
            ready.set()
        (stop or sim._stopped).wait()
    except KeyboardInterrupt:
        echo("Stopping.")
    finally:
        sim.stop()
