"""`psrunner serve`: the portal on uvicorn.

With no configuration it listens on 127.0.0.1:8765 over plain HTTP and prints a one-time
sign-in link, as Jupyter does: whoever opens it first is signed in with the roles the
configuration gives the link (admin by default), and the link is spent. A team server has a
configuration file (config.py) with TLS or a TLS proxy, Entra ID and/or local accounts, and
a policy.

uvicorn's own access log is off: a sign-in link's token is in a query string, and the audit
log already says who did what. Its error log goes through the same redacting filter as
psrunner's."""

from __future__ import annotations

import logging
import socket
import threading
from pathlib import Path
from typing import Any, Callable, Sequence

from .app import HERE, Portal
from .config import PortalConfig, load_config, parse_listen
from .web import SecurityHeaders


def create_app(portal: Portal) -> Any:
    """The ASGI application: the routes of signin.py, pages.py and live.py, the package's
    static files, and the security headers on every answer."""
    from starlette.applications import Starlette
    from starlette.routing import Mount
    from starlette.staticfiles import StaticFiles

    from . import live, pages, signin
    routes = signin.routes(portal) + pages.routes(portal) + live.routes(portal)
    routes.append(Mount("/static", app=StaticFiles(directory=str(HERE / "static")), name="static"))
    app = Starlette(routes=routes)
    app.state.portal = portal
    return SecurityHeaders(app, portal.config.secure)


def serve(*, config_file: Path | None = None, listen: str | None = None, runbook_dirs: Sequence[Path] = (),
          state_dir: Path | None = None, say: Callable[[str], None] = print) -> None:
    """`psrunner serve`: the configuration file (or the defaults), with the command line's
    --listen, --runbooks and --state-dir over it; until Ctrl-C."""
    cfg = load_config(config_file) if config_file else PortalConfig()
    if listen:
        cfg.host, cfg.port = parse_listen(listen)
    cfg.runbook_dirs = tuple(runbook_dirs) + cfg.runbook_dirs
    cfg.state_dir = state_dir or cfg.state_dir
    PortalServer(cfg).run(say)


class PortalServer:
    """The portal on a socket of its own, served by uvicorn on a thread (start/stop), or in
    the foreground until Ctrl-C (run)."""

    def __init__(self, config: PortalConfig, *, portal: Portal | None = None) -> None:
        config.check_listen()
        self.config = config
        self.portal = portal or Portal(config)
        self.portal.check()
        family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((config.host, config.port))
        self.port = self.sock.getsockname()[1]
        self.portal.base_url = config.base_url(self.port)
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return self.portal.base_url

    @property
    def link(self) -> str | None:
        token = self.portal.link_token
        return f"{self.url}/signin/link?token={token}" if token else None

    def _uvicorn(self) -> Any:
        import uvicorn
        from ..secrets import RedactingFilter
        for name in ("uvicorn", "uvicorn.error"):
            logging.getLogger(name).addFilter(RedactingFilter())
        # uvicorn's access log would hold every query string, a sign-in link's token and an
        # authorization code among them; it decides whether to log by the logger's handlers alone
        logging.getLogger("uvicorn.access").disabled = True
        cfg = uvicorn.Config(create_app(self.portal), log_config=None, access_log=False, lifespan="off",
                             ssl_certfile=str(self.config.tls_cert) if self.config.tls_cert else None,
                             ssl_keyfile=str(self.config.tls_key) if self.config.tls_key else None,
                             timeout_graceful_shutdown=3, server_header=False)
        self._server = uvicorn.Server(cfg)
        return self._server

    def start(self) -> "PortalServer":
        server = self._uvicorn()
        self._thread = threading.Thread(target=server.run, kwargs={"sockets": [self.sock]},
                                        name="psrunner-portal", daemon=True)
        self._thread.start()
        import time
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline and self._thread.is_alive():
            time.sleep(0.02)
        if not server.started:
            raise RuntimeError("the portal did not start")
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.portal.executor.shutdown(wait=False)
        self.sock.close()

    def run(self, say: Callable[[str], None] = print) -> None:
        server = self._uvicorn()
        say(f"psrunner portal: {self.url}")
        if self.link:
            say(f"sign in (the link works once): {self.link}")
        say("Ctrl-C stops it")
        try:
            server.run(sockets=[self.sock])
        except KeyboardInterrupt:          # uvicorn stops gracefully, then passes Ctrl-C on
            say("stopped")
        finally:
            self.portal.executor.shutdown(wait=False)
            self.sock.close()

    def __enter__(self) -> "PortalServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
