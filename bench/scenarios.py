"""What the sections share: the onboarding runbook and its offboarding twin against the
simulators, and one measured call.

The Graph scenarios run the onboarding without a Windows host (`host` left out: its host
stages are skipped), so a run's wall time is the Graph part alone; `host=True` gives the
whole runbook, host stages included.

Each scenario is a real `api` call through the real clients (msal, requests, pypsrp) over
loopback HTTPS; counts come from the simulators (what they received), round trips from the
tenant simulator's request lifetimes (`requests.round_trips`), which see concurrency only
when latency is armed, so every Graph figure that counts round trips arms some."""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner import api
from runner.graph.endpoints import ALLOW_ENV
from runner.results import RunResult
from runner.sim.demo import admin_follows_actions, sim_params, simulators

ONBOARD = "m365-backup-access"
OFFBOARD = "m365-backup-access-remove"

# CLI for Microsoft 365 11.11, measured against this tenant simulator doing the same
# onboarding (app, service principal, 46 consents, a secret): 50 requests fresh, 50 again on a
# re-run (it adds a second app), and 49 + one page per 100 service principals in the tenant.
# Each of its requests waits for the one before, so its wall time is modelled as requests x
# latency.
CLI_M365_REQUESTS = {"fresh": 50, "rerun": 50}
# What only the Windows host's stages and target read.
HOST_PARAMS = {"host", "host_port", "host_https", "host_auth", "host_user", "host_password", "host_ca_bundle",
               "spo_user", "spo_password", "pnp_client_id"}


@dataclass
class Measured:
    status: str
    requests: int            # Graph and sign-in requests the tenant received
    writes: int              # of them, Graph writes
    round_trips: int         # the longest chain of requests each waiting for the one before
    wsman: int               # WSMan requests the host received
    wall: float              # seconds the whole call took
    result: RunResult


class Sims:
    """Both simulators and the main runbook's parameters pointed at them."""

    def __init__(self, world: Any, tenant: Any, host: Any) -> None:
        self.world, self.tenant, self.host = world, tenant, host
        self.onboard = api.load_runbook(ONBOARD)
        self.offboard = api.load_runbook(OFFBOARD)
        self._n = 0

    def values(self, runbook: Any = None, *, host: bool = False, **given: Any) -> dict[str, Any]:
        """Resolved parameters for `runbook` (default: onboarding), `given` on top; without
        `host`, none of the Windows host's (a Graph-only run)."""
        rb = runbook or self.onboard
        base = {k: v for k, v in sim_params(self.tenant, self.host, self.world).items() if k in rb.params}
        if not host:
            base = {k: v for k, v in base.items() if k not in HOST_PARAMS}
        values, _ = api.resolve_params(rb, {**base, **given}, environ={})
        return values

    def new_app(self) -> str:
        """A unique name no run has used: a fresh onboarding each time."""
        self._n += 1
        return f"bench-{self._n}"

    def measure(self, call: Callable[[], RunResult], latency: float = 0.0) -> Measured:
        """Run `call` with `latency` seconds held on every tenant request, and count."""
        self.tenant.set_latency(latency)
        try:
            t0, h0 = self.tenant.requests.snapshot(), self.host.counter.snapshot()
            start = time.monotonic()
            result = call()
            wall = time.monotonic() - start
        finally:
            self.tenant.set_latency(0)
        t1, h1 = self.tenant.requests.snapshot(), self.host.counter.snapshot()
        return Measured(status=result.status.value, requests=t1["total"] - t0["total"],
                        writes=t1["writes"] - t0["writes"],
                        round_trips=self.tenant.requests.round_trips(since=t0["clock"]),
                        wsman=h1["requests"] - h0["requests"], wall=wall, result=result)

    # ---- the scenarios ----------------------------------------------------------------

    def fresh(self, state: Path, *, latency: float = 0.0, credential: str = "secret",
              host: bool = False) -> tuple[Measured, dict]:
        """A first onboarding of a new app; returns it measured and the values used."""
        values = self.values(credential=credential, app_unique_name=self.new_app(), host=host)
        return self.measure(lambda: api.run(self.onboard, values, state_dir=state), latency), values

    def converge(self, state: Path, values: dict[str, Any], first: RunResult) -> None:
        """What the admin does after a first run (the hand-off, the refused setting
        accepted), then one more run: afterwards the tenant and host are as the runbook says."""
        admin_follows_actions(first, self.world, values)
        api.run(self.onboard, values, state_dir=state)

    def rerun(self, state: Path, values: dict[str, Any], *, latency: float = 0.0) -> Measured:
        return self.measure(lambda: api.run(self.onboard, values, state_dir=state), latency)

    def check(self, state: Path, values: dict[str, Any], *, latency: float = 0.0) -> Measured:
        """`psrunner check` is a plan whose exit code says whether anything would change."""
        return self.measure(lambda: api.plan(self.onboard, values, state_dir=state), latency)

    def offboard_run(self, state: Path, values: dict[str, Any], *, latency: float = 0.0) -> Measured:
        off = self.values(self.offboard, app_unique_name=values["app_unique_name"])
        return self.measure(lambda: api.run(self.offboard, off, state_dir=state), latency)


@contextlib.contextmanager
def sims() -> Iterator[Sims]:
    """Both simulators, after one unmeasured plan: the first run in a process pays for
    importing msal, pypsrp and the rest, which no later run does."""
    os.environ.setdefault(ALLOW_ENV, "1")      # the tenant is a simulator on loopback
    with simulators() as (world, tenant, host):
        s = Sims(world, tenant, host)
        with state_dir() as state:
            api.plan(s.onboard, s.values(), state_dir=state)
        yield s


@contextlib.contextmanager
def state_dir() -> Iterator[Path]:
    """A state directory of its own: a machine psrunner has not run on."""
    with tempfile.TemporaryDirectory(prefix="psrunner-bench-") as d:
        yield Path(d)
