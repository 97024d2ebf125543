"""`psrunner demo` and `psrunner sim serve`: the main runbook against the embedded simulators.

The demo starts a simulated tenant (Entra sign-in + Graph) and a simulated Windows host
(WinRM/PSRP) sharing one SharePoint tenant, then plans, runs, and runs again through the
real clients (msal, requests, pypsrp) over loopback HTTPS. The second run finds everything
in place: every stage `ok`, but the appinv.aspx grant, `skipped` as obsolete on SharePoint
Online with its reason. Between the runs it does what the first run's actions ask of a
person, as an admin would, should there be any (with -p appinv_manual_steps=true, or a
legacy setting the platform refuses)."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import click

from ..graph.endpoints import ALLOW_ENV
from ..results import RunResult, RunStatus, Status
from ..secrets import Secret

RUNBOOK = "m365-backup-access"
DEMO_PNP_CLIENT_ID = "5e3f2c1a-7b9d-4e8f-a6c5-0d1b2a3c4e5f"


@contextlib.contextmanager
def simulators() -> Iterator[tuple[Any, Any, Any]]:
    """Both simulators, sharing one world, with the demo host's modules in place."""
    from .host import HostSimulator
    from .tenant import TenantSimulator
    from .world import SimWorld

    world = SimWorld()
    tenant = TenantSimulator(world=world).start()
    try:
        host = HostSimulator(world=world).start()
        try:
            demo_host(host.state)
            yield world, tenant, host
        finally:
            host.stop()
    finally:
        tenant.stop()


def demo_host(state: Any) -> None:
    """The demo's Windows host: Windows PowerShell 5.1 at the endpoint and PowerShell 7 beside
    it, where PnP.PowerShell 3.x is installed (it runs nowhere else) and lets the appinv
    stage look for a grant made by hand."""
    if state.pwsh_version is None:
        state.pwsh_version = "7.4.6"
    state.pwsh_modules.setdefault("PnP.PowerShell", "3.1.0")


def sim_params(tenant: Any, host: Any, world: Any) -> dict[str, Any]:
    """Runbook parameters pointing at the simulators (secrets as Secret values)."""
    return {
        "tenant": world.tenant_domain,
        "graph_auth": "secret",
        "graph_client_id": tenant.operator.client_id,
        "graph_client_secret": Secret(tenant.operator.client_secret, "graph_client_secret"),
        "graph_ca_bundle": str(tenant.ca_bundle),
        "authority_host": tenant.base_url,
        "graph_endpoint": tenant.graph_endpoint,
        "credential": "both",
        "host": host.host,
        "host_port": host.port,
        "host_https": host.scheme == "https",
        "host_auth": host.auth,
        "host_user": host.username,
        "host_password": Secret(host.password, "host_password"),
        "host_ca_bundle": str(host.ca_bundle or ""),
        "spo_user": host.state.spo_admin_user,
        "spo_password": Secret(host.state.spo_admin_password, "spo_password"),
        # the admin's own Entra app for PnP PowerShell sign-in, used to look for an appinv grant
        "pnp_client_id": DEMO_PNP_CLIENT_ID,
    }


class SimCounters:
    """Per-run request counts, read from the simulators (what they really received)."""

    def __init__(self, tenant: Any, host: Any) -> None:
        self.tenant, self.host = tenant, host
        self.mark()

    def mark(self) -> None:
        self._t = self.tenant.requests.snapshot()
        self._h = self.host.counter.snapshot()

    def __call__(self) -> dict[str, int]:
        t, h = self.tenant.requests.snapshot(), self.host.counter.snapshot()
        return {
            "graph_requests": t["total"] - self._t["total"],
            "graph_writes": t["writes"] - self._t["writes"],
            "graph_token_requests": t.get("token", 0) - self._t.get("token", 0),
            "wsman_requests": h["requests"] - self._h["requests"],
            "psrp_pool_opens": h["pool_opens"] - self._h["pool_opens"],
        }


def complete_appinv_as_admin(world: Any, app_id: str, app_domain: str) -> None:
    """What the admin does by hand on appinv.aspx: look up the app id, enter the domain,
    paste the XML, press Create and Trust It. In the simulated tenant it registers the
    ACS principal that the appinv stage then finds."""
    from .world import ACSPrincipal
    with world.lock:
        world.sharepoint.acs_principals[app_id] = ACSPrincipal(
            app_id=app_id, display_name="Microsoft 365 backup access", app_domain=app_domain)


def admin_follows_actions(result: RunResult, world: Any, values: dict[str, Any]) -> list[str]:
    """Do what the run's "Action required" list asks of a person, as an admin would:
    accept the tenant's value for a setting the platform refuses, and complete the
    appinv.aspx hand-off. Returns what was done, in words."""
    done = []
    if any(r.item == "LegacyAuthProtocolsEnabled" for _, r in result.refusals):
        values["legacy_auth"] = False
        done.append("== the admin accepts that the platform refuses LegacyAuthProtocolsEnabled = True "
                    "(IDCRL is blocked for good) and runs from now on with -p legacy_auth=false")
    app_id = (result.stage("application").outputs if result.stage("application") else {}).get("app_id")
    grant = result.stage("appinv-grant")
    if app_id and grant is not None and grant.status == Status.ACTION_REQUIRED:
        complete_appinv_as_admin(world, app_id, str(values.get("app_domain", "localhost")))
        done.append("== the admin completes the appinv.aspx hand-off by hand (here: in the simulated tenant)")
    return done


def run_demo(*, state_dir: Path | None, output: str, quiet: bool,
             progress: Callable | None, color: bool, width: int | None = None) -> int:
    from .. import api, render_text

    t0 = time.monotonic()
    os.environ.setdefault(ALLOW_ENV, "1")      # the demo's tenant is a simulator on loopback
    state = Path(state_dir) if state_dir else Path(tempfile.mkdtemp(prefix="psrunner-demo-"))
    say = (lambda text: None) if output == "json" else (lambda text: click.echo(text))
    rb = api.load_runbook(RUNBOOK)
    with simulators() as (world, tenant, host):
        given = sim_params(tenant, host, world)
        values, _ = api.resolve_params(rb, given, environ={})
        counters = SimCounters(tenant, host)
        common = dict(state_dir=state, on_event=progress, extra_metrics=counters,
                      secret_sources={k: "demo" for k in values if isinstance(values[k], Secret)})
        say(f"Simulated tenant {world.tenant_domain} at {tenant.base_url}; "
            f"simulated Windows host at {host.scheme}://{host.host}:{host.port}/wsman\n")

        say("== 1. plan: what would change (nothing is changed)")
        counters.mark()
        plan = api.plan(rb, values, **common)
        say(render_text.result(plan, color=color, width=width) + "\n")

        say("== 2. run: apply")
        counters.mark()
        first = api.run(rb, values, **common)
        say(render_text.result(first, color=color, width=width) + "\n")

        for step in admin_follows_actions(first, world, values):
            say(step)
        say("")

        say("== 3. run again: everything is in place, nothing to do")
        counters.mark()
        second = api.run(rb, values, **common)
        say(render_text.result(second, color=color, width=width) + "\n")

    elapsed = time.monotonic() - t0
    if output == "json":
        from ..rundir import dumps
        click.echo(dumps({"plan": plan.to_dict(), "first": first.to_dict(),
                          "second": second.to_dict()}, indent=2))
    else:
        say(summary_table(plan, first, second))
        say(f"demo finished in {elapsed:.1f} s; runs, events and the hand-off are in {state}")
    ok = (first.status in (RunStatus.SUCCEEDED, RunStatus.ACTION_REQUIRED)
          and second.status == RunStatus.SUCCEEDED
          and all(s.status in (Status.OK, Status.SKIPPED) for s in second.stages))
    if not ok:
        click.echo("demo: the second run did not converge; see the report above", err=True)
    return 0 if ok else 1


def summary_table(plan: RunResult, first: RunResult, second: RunResult) -> str:
    from ..render_text import label
    rows = [("stage", "plan", "run", "re-run")]
    for s in plan.stages:
        f, g = first.stage(s.id), second.stage(s.id)
        rows.append((s.id, label("plan", s.status), label("run", f.status) if f else "-",
                     label("run", g.status) if g else "-"))
    for key in ("graph_requests", "graph_writes", "wsman_requests", "psrp_pool_opens"):
        rows.append((key.replace("_", " "), str(plan.metrics.get(key, 0)),
                     str(first.metrics.get(key, 0)), str(second.metrics.get(key, 0))))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines) + "\n"


def write_sim_params(base: Path, tenant: Any, host: Any, world: Any) -> tuple[Path, dict[str, Path]]:
    """A params file (TOML) and one 0600 file per secret that point psrunner at the
    simulators. Returns (params file, {secret name: file})."""
    from ..secrets import write_private
    lines, files = [], {}
    for k, v in sim_params(tenant, host, world).items():
        if isinstance(v, Secret):
            files[k] = write_private(base / f"{k}.secret", v.reveal())
        elif isinstance(v, bool):
            lines.append(f"{k} = {'true' if v else 'false'}")
        elif isinstance(v, int):
            lines.append(f"{k} = {v}")
        else:
            lines.append(f"{k} = {json.dumps(str(v))}")
    pf = base / "params.toml"
    pf.parent.mkdir(parents=True, exist_ok=True)
    pf.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return pf, files


def serve_sims(*, tenant_port: int, host_port: int, state_dir: Path | None, faults: Sequence[str] = (),
               public_names: Sequence[str] = ()) -> None:
    """Serve both simulators until Ctrl-C; write a params file and 0600 secret files that
    point psrunner at them, and print the commands to try. `faults` are armed on the tenant
    before anyone connects (one KIND[=VALUE]:METHOD:PATH[:COUNT] each, as `--fault` takes
    them); a malformed one stops everything before a port is opened (exit 2)."""
    from ..errors import InputError
    from ..rundir import default_state_dir
    from .host import HostSimulator
    from .tenant import TenantSimulator
    from .tenant_faults import SPEC_FORM, SPEC_KINDS, parse_fault_spec
    from .world import SimWorld

    armed = []
    for spec in faults:
        try:
            armed.append(parse_fault_spec(spec))
        except ValueError as e:
            raise InputError(f"--fault {spec!r}: {e}", input="--fault",
                             hint=f"write it as {SPEC_FORM}, e.g. 429=2:GET:/v1\\.0/applications:3; "
                                  f"KIND is one of {', '.join(SPEC_KINDS)}") from None
    base = (Path(state_dir) if state_dir else default_state_dir()) / "sim"
    world = SimWorld()
    tenant = TenantSimulator(world=world, port=tenant_port, public_names=public_names).start()
    host = HostSimulator(world=world, port=host_port).start()
    demo_host(host.state)
    tenant.control.sources["wsman"] = host.counter.snapshot
    try:
        for args in armed:
            tenant.faults.add(**args)
        pf, files = write_sim_params(base, tenant, host, world)
        click.echo(f"tenant simulator: {tenant.base_url} (tenant {world.tenant_domain})")
        for name in tenant.public_names:
            click.echo(f"  also as:        {tenant.public_url(name)} (once {name} resolves to 127.0.0.1)")
        click.echo(f"host simulator:   {host.scheme}://{host.host}:{host.port}/wsman")
        click.echo(f"CA bundle:        {tenant.ca_bundle}")
        for f in tenant.faults.rules:
            times = "every time" if f.count is None else f"{f.count} time(s)"
            click.echo(f"fault armed:      {f.kind} {f.method or '*'} {f.path.pattern} ({times})")
        control = f"curl --cacert {tenant.ca_bundle} {tenant.base_url}/_sim"
        click.echo("try:")
        click.echo(f"  export {ALLOW_ENV}=1    (psrunner sends tokens to Microsoft's own hosts only, unless set)")
        args = " ".join(f"--secret-file {k}={v}" for k, v in files.items())
        click.echo(f"  psrunner plan {RUNBOOK} --params-file {pf} {args}")
        click.echo(f"  psrunner run {RUNBOOK} --params-file {pf} {args}")
        click.echo(f"  {control}/faults --data '503=5:*:/v1\\.0/.*:*'    (an outage; DELETE to end it)")
        click.echo(f"  {control}/requests                               (what the simulators received)")
        click.echo("Ctrl-C stops the simulators.")
        sys.stdout.flush()
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        click.echo("stopping", err=True)
    finally:
        host.stop()
        tenant.stop()
        sys.stdout.flush()
