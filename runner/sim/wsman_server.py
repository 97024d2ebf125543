"""HTTP(S) transport of the host simulator: a loopback listener, one thread per connection,
keep-alive HTTP/1.1, TLS, authentication and WinRM message encryption in front of the
WSMan engine.

Written on the standard library (socket + http.server's request parser) rather than
`ThreadingHTTPServer` so the simulator controls the listening socket (the "refuse" fault
closes it and reopens the same port) and can drop every live connection on stop(), which
keeps stop() prompt even while clients sit in a long-poll. Every socket has a timeout so a
dead client cannot pin a thread."""

from __future__ import annotations

import base64
import logging
import socket
import ssl
import struct
import threading
import contextlib
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING

from spnego.exceptions import SpnegoError

from . import wsman_soap as soap
from .listen import LISTEN_BACKLOG
from .psrp_shell import Aborted
from .wsman_auth import AuthFailed, NegotiateState, check_basic

if TYPE_CHECKING:  # pragma: no cover
    from .host import HostSimulator

log = logging.getLogger(__name__)

IDLE_TIMEOUT = 300.0        # seconds a keep-alive connection may sit idle between requests
HANDSHAKE_TIMEOUT = 10.0
MAX_BODY = 32 * 1024 * 1024


class Listener:
    """The listening socket and the live connections of one simulator."""

    def __init__(self, sim: HostSimulator, bind_host: str, port: int,
                 ssl_context: ssl.SSLContext | None) -> None:
        self.sim = sim
        self.bind_host = bind_host
        self.port = port
        self.ssl_context = ssl_context
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()

    def open(self) -> None:
        sock = socket.create_server((self.bind_host, self.port), backlog=LISTEN_BACKLOG)
        self.port = sock.getsockname()[1]
        self._sock = sock
        self._thread = threading.Thread(target=self._accept_loop, args=(sock,), daemon=True,
                                        name=f"sim-host-accept-{self.port}")
        self._thread.start()

    @property
    def is_open(self) -> bool:
        return self._sock is not None

    def close(self) -> None:
        """Close the listening socket (new connections are refused)."""
        sock, self._sock = self._sock, None
        if sock is None:
            return
        try:
            sock.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
        except OSError:
            pass
        sock.close()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2)

    def drop_connections(self) -> None:
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                conn.close()
            except OSError:
                pass

    def _accept_loop(self, sock: socket.socket) -> None:
        while True:
            try:
                conn, addr = sock.accept()
            except OSError:
                return
            conn.settimeout(HANDSHAKE_TIMEOUT)
            with self._lock:
                self._conns.add(conn)
            threading.Thread(target=self._serve, args=(conn, addr), daemon=True,
                             name=f"sim-host-conn-{addr[1]}").start()

    def _serve(self, conn: socket.socket, addr) -> None:
        try:
            if self.ssl_context is not None:
                raw = conn
                conn = self.ssl_context.wrap_socket(raw, server_side=True)
                with self._lock:
                    self._conns.discard(raw)
                    self._conns.add(conn)
            _Handler(conn, addr, self)
        except (OSError, ssl.SSLError) as exc:
            log.debug("connection from %s ended: %s", addr, type(exc).__name__)
        finally:
            with self._lock:
                self._conns.discard(conn)
            try:
                conn.close()
            except OSError:
                pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "Microsoft-HTTPAPI/2.0"
    sys_version = ""
    timeout = IDLE_TIMEOUT

    def setup(self) -> None:
        super().setup()
        # headers and body go out as separate writes: without TCP_NODELAY, Nagle's algorithm
        # and the client's delayed ACK stall every response by ~40 ms
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.nego = NegotiateState()
        self.sim = self.server.sim

    def log_message(self, format: str, *args) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        self._reply(405, b"", "text/plain")

    def do_POST(self) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY:
            self.close_connection = True
            self._reply(413, b"", "text/plain")
            return
        body = self.rfile.read(length) if length else b""
        self.sim.counter._http()
        if self.path.split("?", 1)[0].rstrip("/").lower() != "/" + self.sim.path.lower():
            self._reply(404, b"", "text/plain")
            return

        token_header = self._authenticate()
        if token_header is False:
            return
        encrypted = False
        content_type = self.headers.get("Content-Type", "")
        if content_type.startswith(("multipart/encrypted", "multipart/x-multi-encrypted")):
            if not self.nego.complete:
                self._unauthorized()
                return
            try:
                body = self.nego.unwrap(body, content_type)
            except (AuthFailed, SpnegoError, struct.error, ValueError):
                log.debug("could not decrypt a request body")
                self._unauthorized()
                return
            encrypted = True
        elif body and self.sim.scheme == "http" and self.sim.auth != "basic":
            # AllowUnencrypted=false: over HTTP the service only takes sealed messages
            self._unauthorized()
            return
        if not body:
            self._reply(200, b"", "application/soap+xml;charset=UTF-8", token_header)
            return

        status, xml = 200, b""
        req = None
        try:
            req = soap.parse_request(body, self.sim.default_envelope_size)
            self.sim.counter._wsman(req.action, encrypted)
            xml = soap.envelope(req.action_uri + "Response", req.message_id,
                                self.sim.engine.handle(req, self.client_address[0]))
        except soap.SoapError as err:
            status = 500
            xml = soap.fault(req.message_id if req else "", err, self.sim.state.computer_name)
        except Aborted:
            self.close_connection = True
            return
        except Exception as exc:  # a simulator bug: answer like a failing plugin, keep serving
            log.exception("host simulator failed on %s", req.action if req else "a request")
            status = 500
            xml = soap.fault(req.message_id if req else "", soap.SoapError(
                soap.FAULT_INTERNAL, f"The host simulator failed: {type(exc).__name__}"),
                self.sim.state.computer_name)
        self.sim.counter._response(len(xml))
        if encrypted:
            content_type, payload = self.nego.wrap(xml)
        else:
            content_type, payload = "application/soap+xml;charset=UTF-8", xml
        self._reply(status, payload, content_type, token_header)

    # ---- auth -------------------------------------------------------------------------
    def _authenticate(self):
        """None/str when the request may proceed (str: a final token header to send back);
        False when a 401 has been sent."""
        sim = self.sim
        header = self.headers.get("Authorization")
        if sim.auth == "basic":
            if sim.scheme == "http" or sim.faults.active("wrong_password") or \
                    not check_basic(header, sim.username, sim.password):
                self._reply(401, b"", "text/plain", www='Basic realm="WSMAN"')
                return False
            return None
        if header and not header.lower().startswith("basic "):
            try:
                out = self.nego.step(header)
            except AuthFailed as exc:
                log.debug("negotiate authentication rejected: %s", exc)
                self._unauthorized()
                return False
            if not self.nego.complete:
                self._unauthorized(out)
                return False
            if sim.faults.active("wrong_password") or not self._admitted():
                self.nego = NegotiateState()
                self._unauthorized()
                return False
            return f"{self.nego.scheme} " + base64.b64encode(out).decode() if out else None
        if not self.nego.complete:
            self._unauthorized()
            return False
        return None

    def _admitted(self) -> bool:
        """A Kerberos host takes a Kerberos sign-in of one of its principals only (an NTLM
        fallback, or another user of the realm, gets 401, as an account the host does not
        allow would); the others take whom the NTLM user store knows."""
        sim = self.sim
        principal, mechanism = self.nego.principal or "", self.nego.mechanism or ""
        if sim.auth == "kerberos" and (mechanism != "kerberos" or principal.lower() not in sim.principals):
            log.debug("kerberos sign-in of %r (%s) not admitted", principal, mechanism)
            return False
        sim.signed_in.append((principal, mechanism))
        return True

    def _unauthorized(self, token: bytes | None = None) -> None:
        www = "Negotiate" if token is None else "Negotiate " + base64.b64encode(token).decode()
        self._reply(401, b"", "text/plain", www=www)

    # ---- output -----------------------------------------------------------------------
    def _reply(self, status: int, payload: bytes, content_type: str,
               token_header: str | None = None, www: str | None = None) -> None:
        self.sim.faults._delay()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        if www:
            self.send_header("WWW-Authenticate", www)
        if token_header:
            self.send_header("WWW-Authenticate", token_header)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if payload:
            self.wfile.write(payload)
        self.wfile.flush()
