"""The inventory: the targets of a fleet (tenants and/or hosts), their parameters, groups and
credential references, in one TOML file.

    [defaults]                                   # every target (optional)
    params = { graph_auth = "secret", host_auth = "basic" }
    secrets = { host_password = { env = "HOST_PASSWORD" } }
    deadline = "10m"                             # the most one target may take

    [groups.europe]                              # what the members of a group share (optional)
    params = { cloud = "global" }

    [targets.contoso]
    groups = ["europe", "prod"]
    params = { tenant = "contoso.onmicrosoft.com", host = "mgmt01.contoso.local" }
    secrets = { graph_client_secret = { keyring = "psrunner/contoso", username = "graph" } }

A target's parameters are the defaults, then each of its groups in the order it names them,
then its own (the last one wins); the same for secrets. A group need not have a table: naming
it on a target is enough. Secrets are credential references (runner.fleet.credentials); a
secret written out (a string under `secrets`, or a secret parameter under `params`) is
refused unless the file is readable by its owner alone.

`select` picks targets by name or group (`--limit`), `shard` one machine's share of them: a
target belongs to shard i of n by a hash of its name, so n machines cover a fleet exactly
once and adding a target moves no other."""

from __future__ import annotations

import hashlib
import math
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from ..errors import InputError, closest
from ..retention import parse_age
from ..values import clip
from .credentials import CredentialRef

DEFAULT_DEADLINE = 900.0
MAX_DEADLINE = 7 * 86400.0               # a week: beyond it a deadline is a typo, not a plan
TARGET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")   # shown in tables, logs and JUnit names
_TABLE_KEYS = {"params", "secrets", "deadline"}
INVENTORY_KEYS = frozenset(_TABLE_KEYS | {"groups", "env", "file", "keyring", "username"})   # what people write


@dataclass
class Target:
    name: str
    groups: tuple[str, ...] = ()
    params: dict[str, Any] = field(default_factory=dict)
    secrets: dict[str, CredentialRef] = field(default_factory=dict)
    deadline: float = DEFAULT_DEADLINE       # seconds


@dataclass
class Inventory:
    path: Path
    targets: dict[str, Target]
    private: bool                            # readable by its owner alone

    @property
    def groups(self) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for t in self.targets.values():
            for g in t.groups:
                found.setdefault(g, []).append(t.name)
        return found

    def select(self, limits: Iterable[str] = ()) -> list[Target]:
        """The targets named by `limits` (names or groups; a comma list counts as several),
        in inventory order; all of them when none is given."""
        wanted = [w.strip() for lim in limits for w in lim.split(",") if w.strip()]
        if not wanted:
            return list(self.targets.values())
        groups = self.groups
        chosen: set[str] = set()
        for w in wanted:
            if w in self.targets:
                chosen.add(w)
            elif w in groups:
                chosen.update(groups[w])
            else:
                guess = closest(w, list(self.targets) + list(groups))
                raise InputError(f"--limit {w!r} names no target or group of {self.path}", input="--limit",
                                 hint=f"did you mean {guess}?" if guess else
                                 "groups: " + (", ".join(sorted(groups)) or "(none)"))
        return [t for t in self.targets.values() if t.name in chosen]


def shard(targets: list[Target], spec: str | None) -> list[Target]:
    """Shard `i/n` of `targets` (all of them when `spec` is None)."""
    if not spec:
        return targets
    try:
        i, n = (int(x) for x in spec.split("/"))
        if not 1 <= i <= n:
            raise ValueError
    except ValueError:
        raise InputError(f"--shard {spec!r} is not i/n with 1 <= i <= n", input="--shard",
                         hint="e.g. --shard 1/3 on the first of three machines, 2/3 and 3/3 on the others") from None
    return [t for t in targets if int.from_bytes(hashlib.sha256(t.name.encode()).digest()[:8], "big") % n == i - 1]


def load_inventory(path: str | Path) -> Inventory:
    """Read and check an inventory file (InputError naming the key on any mistake)."""
    from ..runbook_loader import tomllib
    from ..userfiles import MiB, read_text
    p = Path(path)
    hint = "give the path of a TOML inventory file"
    text = read_text(p, what="inventory", input="--inventory", hint=hint, limit=16 * MiB)   # ~100,000 targets
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise InputError(f"inventory {p}: {e}", input="--inventory", hint="fix the TOML syntax") from None
    except RecursionError:
        raise InputError(f"inventory {p}: tables or arrays are nested too deeply", input="--inventory",
                         hint="an inventory needs three levels of tables at most") from None
    unknown = sorted(set(data) - {"defaults", "groups", "targets"})
    if unknown:
        raise InputError(f"inventory {p}: unknown table {unknown[0]!r}", input=unknown[0],
                         hint="an inventory has [defaults], [groups.NAME] and [targets.NAME]")
    private = sys.platform == "win32" or not (os.stat(p).st_mode & 0o077)
    defaults = _layer(data.get("defaults", {}), "defaults", p)
    groups = {name: _layer(g, f"groups.{name}", p) for name, g in _table(data, "groups", p).items()}
    targets: dict[str, Target] = {}
    for name, raw in _table(data, "targets", p).items():
        if not TARGET_NAME.fullmatch(name):
            raise InputError(f"inventory {p}: target name {clip(name, 60)!r} is not a plain name",
                             input=f"targets.{clip(name, 60)}",
                             hint="name a target with letters, digits, '.', '_' and '-' (at most 100)")
        raw = _table({"t": raw}, "t", p, where=f"targets.{name}")
        member_of = raw.get("groups", [])
        if not isinstance(member_of, list) or not all(isinstance(g, str) for g in member_of):
            raise InputError(f"inventory {p}: targets.{name}.groups must be a list of group names",
                             input=f"targets.{name}.groups")
        own = _layer({k: v for k, v in raw.items() if k != "groups"}, f"targets.{name}", p)
        t = Target(name=name, groups=tuple(member_of))
        for layer in [defaults, *(groups.get(g, {}) for g in member_of), own]:
            t.params.update(layer.get("params", {}))
            t.secrets.update(layer.get("secrets", {}))
            if "deadline" in layer:
                t.deadline = layer["deadline"]
        targets[name] = t
    if not targets:
        raise InputError(f"inventory {p} has no targets", input="--inventory",
                         hint="add a [targets.NAME] table with its params")
    inv = Inventory(p, targets, private)
    for t in targets.values():
        for pname, ref in t.secrets.items():
            if ref.kind == "literal" and not private:
                raise literal_secret_refused(inv, f"targets.{t.name}.secrets.{pname}")
    return inv


def literal_secret_refused(inv: Inventory, key: str) -> InputError:
    return InputError(f"inventory {inv.path}: {key} is a secret written out in a file others can read",
                      input=key, hint=f"name it instead ({{ env = ... }}, {{ file = ... }}, {{ keyring = ... }}), "
                                      f"or chmod 600 {inv.path}")


def _table(data: dict[str, Any], key: str, p: Path, where: str | None = None) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise InputError(f"inventory {p}: {where or key} must be a table", input=where or key)
    return value


def _layer(raw: Any, where: str, p: Path) -> dict[str, Any]:
    """One table of params, secrets and a deadline, checked."""
    if not isinstance(raw, dict):
        raise InputError(f"inventory {p}: {where} must be a table", input=where)
    unknown = sorted(set(raw) - _TABLE_KEYS)
    if unknown:
        raise InputError(f"inventory {p}: unknown key {where}.{unknown[0]}", input=f"{where}.{unknown[0]}",
                         hint="a target, group or [defaults] takes params, secrets and deadline "
                              "(and a target its groups)")
    out: dict[str, Any] = {"params": _table(raw, "params", p, f"{where}.params")}
    out["secrets"] = {name: CredentialRef.parse(ref, f"{where}.secrets.{name}")
                      for name, ref in _table(raw, "secrets", p, f"{where}.secrets").items()}
    if "deadline" in raw:
        d = raw["deadline"]
        seconds = float(d) if isinstance(d, (int, float)) and not isinstance(d, bool) else \
            parse_age(str(d), f"{where}.deadline").total_seconds()
        if not (math.isfinite(seconds) and 0 < seconds <= MAX_DEADLINE):
            raise InputError(f"inventory {p}: {where}.deadline must be more than 0 and at most a week",
                             input=f"{where}.deadline", hint='write seconds or a duration: 600, "10m", "2h"')
        out["deadline"] = seconds
    return out


__all__ = ["DEFAULT_DEADLINE", "INVENTORY_KEYS", "Inventory", "Target", "literal_secret_refused", "load_inventory", "shard"]
