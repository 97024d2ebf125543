"""A fleet of simulated targets for tests and benchmarks: one tenant simulator and one host
simulator per target (each its own tenant and host), and an inventory naming them, with
each target's secrets as credential references (0600 files and environment variables),
never as values in the inventory."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from runner.secrets import Secret, write_private
from runner.sim.demo import sim_params
from runner.sim.host import HostSimulator
from runner.sim.tenant import TenantSimulator
from runner.sim.tls import make_tls
from runner.sim.world import SharePointState, SimWorld


@dataclass
class SimTarget:
    name: str
    world: Any
    tenant: Any
    host: Any
    secrets: dict[str, str] = field(default_factory=dict)     # param -> value (to scan for leaks)


@dataclass
class FleetLab:
    inventory: Path
    targets: list[SimTarget]
    env: dict[str, str]                                        # the variables the env references name

    def target(self, name: str) -> SimTarget:
        return next(t for t in self.targets if t.name == name)


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    import json
    return json.dumps(str(value))


@contextlib.contextmanager
def fleet_lab(base: Path, n: int, *, deadline: float = 60, groups: dict[str, list[int]] | None = None,
              deadlines: dict[int, float] | None = None) -> Iterator[FleetLab]:
    """`n` simulated targets t01..tNN; `groups` puts target numbers in named groups;
    `deadlines` gives some target numbers a deadline of their own."""
    base.mkdir(parents=True, exist_ok=True)
    sims: list[SimTarget] = []
    env: dict[str, str] = {}
    lines = ["[defaults]", f"deadline = {deadline}", ""]
    try:
        for i in range(1, n + 1):
            name = f"t{i:02d}"
            world = SimWorld(tenant_id=f"8f7c1b2a-3d4e-4f50-9a6b-{i:012d}", tenant_domain=f"{name}.onmicrosoft.com",
                             sharepoint=SharePointState(tenant_name=name))
            tenant = TenantSimulator(world=world).start()
            # each host its own loopback address: two targets on one address would be one host
            # (its lock key is the machine, whatever the port)
            address = f"127.0.{1 + i // 250}.{1 + i % 250}"
            tls = make_tls(base / "tls" / name, ips=(address,))
            host = HostSimulator(world=world, host=address, tls=tls).start()
            st = SimTarget(name, world, tenant, host)
            sims.append(st)
            params = {**sim_params(tenant, host, world), "credential": "secret", "host": address}
            plain = {k: v for k, v in params.items() if not isinstance(v, Secret)}
            member = [g for g, nums in (groups or {}).items() if i in nums]
            lines += [f"[targets.{name}]", f"groups = [{', '.join(_toml(g) for g in member)}]",
                      "params = { " + ", ".join(f"{k} = {_toml(v)}" for k, v in plain.items()) + " }"]
            if i in (deadlines or {}):
                lines.append(f"deadline = {deadlines[i]}")
            refs = []
            for k, v in params.items():
                if not isinstance(v, Secret):
                    continue
                st.secrets[k] = v.reveal()
                if k == "host_password":              # one kind by environment, the others by file
                    var = f"FLEET_{name.upper()}_HOST_PASSWORD"
                    env[var] = v.reveal()
                    refs.append(f'{k} = {{ env = "{var}" }}')
                else:
                    path = write_private(base / "secrets" / f"{name}-{k}", v.reveal())
                    refs.append(f"{k} = {{ file = {_toml(path)} }}")
            lines += ["secrets = { " + ", ".join(refs) + " }", ""]
        inventory = base / "fleet.toml"
        inventory.write_text("\n".join(lines), encoding="utf-8")
        yield FleetLab(inventory, sims, env)
    finally:
        for st in sims:
            st.host.stop()
            st.tenant.stop()
