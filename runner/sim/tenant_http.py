"""The HTTPS server under the tenant simulator: a ThreadingHTTPServer whose TLS handshake
happens in the connection's own thread (so a client that connects and stalls cannot block
the accept loop), with a timeout on every socket read, keep-alive connections tracked so
stop() can close them at once, and a "drop" fault that closes a connection without
answering."""

from __future__ import annotations

import logging
import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from .listen import LISTEN_BACKLOG
if TYPE_CHECKING:  # pragma: no cover
    from .tenant import TenantSimulator

log = logging.getLogger("runner.sim.tenant")
MAX_BODY = 16 * 1024 * 1024
QUIET_ERRORS = (ConnectionError, TimeoutError, socket.timeout, ssl.SSLError, BrokenPipeError)


class TenantHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False
    request_queue_size = LISTEN_BACKLOG

    def __init__(self, address: tuple[str, int], sim: TenantSimulator, ssl_ctx: ssl.SSLContext,
                 io_timeout: float) -> None:
        self.sim, self.ssl_ctx, self.io_timeout = sim, ssl_ctx, io_timeout
        self._conns: set[Any] = set()
        self._conns_lock = threading.Lock()
        handler = type("BoundTenantHandler", (TenantHandler,), {"timeout": io_timeout})
        super().__init__(address, handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = self.socket.accept()
        sock.settimeout(self.io_timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no 40 ms Nagle/delayed-ACK stalls
        return sock, addr

    def finish_request(self, request: Any, client_address: Any) -> None:
        try:
            conn = self.ssl_ctx.wrap_socket(request, server_side=True)  # handshake, bounded by io_timeout
        except (OSError, ssl.SSLError):
            try:
                request.close()
            except OSError:
                pass
            return
        with self._conns_lock:
            self._conns.add(conn)
        try:
            self.RequestHandlerClass(conn, client_address, self)
        finally:
            with self._conns_lock:
                self._conns.discard(conn)
            try:
                conn.close()
            except OSError:
                pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys
        exc = sys.exc_info()[1]
        if isinstance(exc, QUIET_ERRORS):
            return
        log.exception("tenant simulator: error serving %s", client_address)

    def close_connections(self) -> None:
        with self._conns_lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class TenantHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "psrunner-sim"
    sys_version = ""
    server: TenantHTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("tenant simulator: " + format, *args)

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PATCH = do_DELETE = do_PUT = do_GET

    def _read_body(self) -> bytes | None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks, total = [], 0
            while True:
                size_line = self.rfile.readline(1024)
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                total += size
                if total > MAX_BODY:
                    return None
                chunks.append(self.rfile.read(size))
                self.rfile.readline(1024)
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            return None
        return self.rfile.read(length) if length else b""

    def _serve(self) -> None:
        split = urlsplit(self.path)
        path = unquote(split.path)
        sim = self.server.sim
        started = time.monotonic()
        counted = not sim.is_control(path)
        if counted:
            sim.requests.begin()

        def finished() -> None:
            # A request's lifetime ends just before its answer leaves (or its connection
            # drops), so a client reading the counters right after the answer sees it.
            nonlocal counted
            if counted:
                counted = False
                sim.requests.record_lifetime(started, time.monotonic())

        try:
            self._answer(sim, split, path, finished)
        finally:
            finished()           # a client gone mid-request ends its lifetime too

    def _answer(self, sim: Any, split: Any, path: str, finished: Any) -> None:
        body = self._read_body()
        if body is None:
            finished()
            self.send_error(413)
            return
        headers = {k.lower(): v for k, v in self.headers.items()}
        resp = sim.dispatch(self.command, path, split.query, headers, body)
        finished()
        if resp.drop:
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        payload = resp.payload()
        self.send_response(resp.status)
        for k, v in resp.headers.items():
            self.send_header(k, v)
        if payload:
            self.send_header("Content-Type", resp.content_type)
        self.send_header("Content-Length", str(len(payload)))
        # Status line, headers and body leave in one write (one TLS record where it fits).
        self._headers_buffer.append(b"\r\n")
        if payload and self.command != "HEAD":
            self._headers_buffer.append(payload)
        self.wfile.write(b"".join(self._headers_buffer))
        self._headers_buffer = []
