"""`psrunner serve --demo`: the portal on the embedded simulators, for a newcomer to click
through (and for the browser tests).

The simulated tenant registers the portal as a web app with two app roles, `helpdesk` and
`admin`, and three people: Helen Desk (helpdesk), Ada Admin and Alan Admin (admin). They
sign in on the simulated Entra sign-in page by picking their account (no password). The
simulated Windows host answers for the demo domain contoso.test, where jdoe is locked out.
The server holds the host's and the tenant's credentials (0600 files under the state
folder); helpdesk may touch accounts under OU=Staff only. The one-time link printed at start
signs in the person at the terminal as an admin."""

from __future__ import annotations

import contextlib
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from ..secrets import Secret, write_private
from .config import EntraSetup, PortalConfig, RunbookSetup, parse_listen
from .policy import parse_policy

STAFF = "OU=Staff,DC=contoso,DC=test"
DOMAIN = "DC=contoso,DC=test"
AD_RUNBOOKS = ("ad-user-status", "ad-unlock-account", "ad-reset-password")
PEOPLE = (("helen", "Helen Desk", "helpdesk"), ("ada", "Ada Admin", "admin"), ("alan", "Alan Admin", "admin"))

POLICY = {"roles": {
    "helpdesk": {"title": "Helpdesk", "runbooks": list(AD_RUNBOOKS), "params": {
        "ad-user-status": {"identity": {}, "allowed_ous": {"value": STAFF}},
        "ad-unlock-account": {"identity": {}, "allowed_ous": {"value": STAFF}},
        "ad-reset-password": {"identity": {}, "unlock": {}, "must_change": {}, "new_password": {},
                              "allowed_ous": {"value": STAFF}}}},
    "admin": {"title": "Administrators", "runbooks": ["*"], "can": ["audit", "all-runs"]},
}}


@dataclass
class DemoPeople:
    """Who can sign in on the simulated Entra page: upn by short name."""
    upns: dict[str, str]


def _setups(tenant: Any, host: Any, world: Any, private: Path) -> dict[str, RunbookSetup]:
    from ..sim.demo import sim_params

    def split(values: dict[str, Any]) -> RunbookSetup:
        setup = RunbookSetup()
        for k, v in values.items():
            if isinstance(v, Secret):
                setup.secret_files[k] = str(write_private(private / f"{k}.secret", v.reveal()))
            else:
                setup.params[k] = v
        return setup

    host_only = {"host": host.host, "host_port": host.port, "host_https": host.scheme == "https", "host_auth": host.auth,
                 "host_user": host.username, "host_password": Secret(host.password, "host_password"),
                 "host_ca_bundle": str(host.ca_bundle or ""), "allowed_ous": DOMAIN}
    setups = {name: split(host_only) for name in AD_RUNBOOKS}
    m365 = sim_params(tenant, host, world)
    setups["m365-backup-access"] = split(m365)
    setups["m365-backup-access-remove"] = split({k: v for k, v in m365.items() if k in (
        "tenant", "graph_auth", "graph_client_id", "graph_client_secret", "graph_ca_bundle", "authority_host",
        "graph_endpoint")})
    setups["sharepoint-scripts"] = split({"dest": str(private.parent / "sharepoint-scripts")})
    return setups


@contextlib.contextmanager
def demo_portal(state_dir: Path | None = None, *, listen: str | None = None,
                runbook_dirs: Sequence[Path] = ()) -> Iterator[tuple[Any, Any, Any, DemoPeople]]:
    """(portal server, tenant simulator, host simulator, people), all running; stopped after."""
    from ..sim.demo import simulators
    from .server import PortalServer

    import os

    from ..graph.endpoints import ALLOW_ENV
    os.environ.setdefault(ALLOW_ENV, "1")      # the demo's tenant is a simulator on loopback
    state = Path(state_dir) if state_dir else Path(tempfile.mkdtemp(prefix="psrunner-portal-demo-"))
    host_port = parse_listen(listen) if listen else ("127.0.0.1", 0)
    with simulators() as (world, tenant, host):
        cfg = PortalConfig(host=host_port[0], port=host_port[1], state_dir=state, runbook_dirs=tuple(runbook_dirs),
                           policy=parse_policy(POLICY, "<demo policy>"), link_roles=("admin",),
                           runbooks=_setups(tenant, host, world, state / "portal-demo"), source="<demo>")
        server = PortalServer(cfg)
        web = tenant.add_web_app("psrunner portal (demo)", [server.url + "/auth/callback"],
                                 app_roles=["helpdesk", "admin"], assignment_required=True)
        upns = {}
        for short, name, role in PEOPLE:
            user = tenant.add_user(f"{short}@{world.tenant_domain}", name)
            tenant.assign_app_role(user, web, role)
            upns[short] = user["userPrincipalName"]
        cfg.entra = EntraSetup(tenant=tenant.tenant_id, client_id=web.client_id,
                               client_secret=Secret(web.client_secret or "", "portal client secret"),
                               authority_host=tenant.base_url, ca_bundle=str(tenant.ca_bundle))
        server.start()
        try:
            yield server, tenant, host, DemoPeople(upns)
        finally:
            server.stop()


def serve_demo(*, listen: str | None, state_dir: Path | None, runbook_dirs: Sequence[Path] = (),
               say: Callable[[str], None] = print) -> None:
    import time
    with demo_portal(state_dir, listen=listen, runbook_dirs=runbook_dirs) as (server, tenant, host, people):
        say(f"psrunner portal (demo): {server.url}")
        say(f"  simulated tenant {tenant.base_url}; simulated Windows host {host.scheme}://{host.host}:{host.port}")
        say("  sign in with Entra ID (simulated) and pick one of:")
        for short, name, role in PEOPLE:
            say(f"    {people.upns[short]:<40} {name} ({role})")
        say(f"  or, as an admin at this machine, open once: {server.link}")
        say("  try: Unlock a locked-out Active Directory account, identity jdoe (locked out); adm-jb is protected")
        say(f"  runs and the audit log: {server.portal.state_dir}")
        say("Ctrl-C stops it")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            say("stopped")
