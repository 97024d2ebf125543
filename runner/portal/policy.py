"""Who may do what in the portal: roles, the runbooks each role may run, and the bounds a
role puts on a runbook's parameters. JEA's idea for runbooks: the helper may do this much
and no more, and the server holds the credentials.

    [roles.helpdesk]
    title = "Helpdesk"
    runbooks = ["ad-user-status", "ad-unlock-account"]

    # the parameters helpdesk may give for this runbook, and within which bounds; every other
    # parameter keeps the server's value or the runbook's default, and a posted one is refused
    [roles.helpdesk.params.ad-unlock-account]
    identity = {}                                          # what the runbook accepts
    allowed_ous = { value = ["OU=Staff,DC=contoso,DC=com"] }   # fixed: shown, not editable

    [roles.admin]
    runbooks = ["*"]                  # every runbook; no params table: any parameter
    can = ["audit", "all-runs"]       # read the audit log; see everyone's runs

A bound is one of `value` (fixed), `choices` (a subset), `pattern` (a regular expression the
whole value must match, besides the runbook's own) or `under` (distinguished names: the
value, or each item of a list, must be one of them or lie beneath one). Bounds are checked
on the server on every plan, run and approval, on the values as the runbook reads them.

When several of a person's roles grant a runbook, the widest grant applies: one without a
params table beats one with; between two with, the first in the file."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from ..errors import InputError
from ..runbook import Param, Runbook
from ..runbook_loader import ROLE_RE
from ..values import coerce
from .tomlfile import read_toml

CAPABILITIES = ("audit", "all-runs")
LIMIT_KEYS = {"value", "choices", "pattern", "under"}
ROLE_KEYS = {"title", "runbooks", "params", "can"}


class Refused(InputError):
    """A request the policy does not allow: the person may not run this, or not with these
    values. Shown as 403 and written to the audit log."""


@dataclass(frozen=True)
class Limit:
    """The bounds one role puts on one parameter (all optional; empty = what the runbook accepts)."""
    fixed: bool = False
    value: Any = None
    choices: tuple[str, ...] | None = None
    pattern: str | None = None
    under: tuple[str, ...] = ()

    def describe(self) -> str:
        """In words, for the form."""
        if self.fixed:
            return "set by your role"
        parts = []
        if self.choices is not None:
            parts.append("one of " + ", ".join(self.choices))
        if self.pattern:
            parts.append("of the form your role allows")
        if self.under:
            parts.append("under " + " or ".join(self.under))
        return "; ".join(parts)

    def check(self, param: Param, value: Any) -> None:
        """Refused unless `value` (as the runbook reads it) lies within these bounds."""
        name = param.name
        items = value if isinstance(value, list) else [value]
        if self.fixed and value != coerce(param, self.value):
            raise Refused(f"parameter {name!r} is set by your role; it cannot be changed", input=name)
        for item in items:
            text = "" if item is None else str(item)
            if self.choices is not None and text not in self.choices:
                raise Refused(f"parameter {name!r}: {text!r} is not among the values your role may use",
                              input=name, hint="one of: " + ", ".join(self.choices))
            if self.pattern and not re.fullmatch(self.pattern, text):
                raise Refused(f"parameter {name!r}: {text!r} is outside what your role may ask for", input=name)
            if self.under and not any(dn_under(text, base) for base in self.under):
                raise Refused(f"parameter {name!r}: {text!r} is not under " + " or ".join(self.under)
                              + ", which is as far as your role reaches", input=name)


def dn_under(dn: str, base: str) -> bool:
    """True when distinguished name `dn` is `base` or lies beneath it (compared RDN by RDN,
    case-insensitively, spaces around '=' and ',' ignored: AD compares DNs that way)."""
    def rdns(text: str) -> list[str]:
        parts = re.split(r"(?<!\\),", text.strip())
        return [re.sub(r"\s*=\s*", "=", p.strip()).lower() for p in parts if p.strip()]
    d, b = rdns(dn), rdns(base)
    return bool(b) and len(d) >= len(b) and d[len(d) - len(b):] == b


@dataclass(frozen=True)
class Grant:
    """What one role lets a person do with one runbook."""
    role: str
    limits: dict[str, Limit] | None     # None: any parameter the server does not set

    def may_give(self, param: str) -> bool:
        return self.limits is None or (param in self.limits and not self.limits[param].fixed)

    def fixed(self) -> dict[str, Any]:
        return {k: lim.value for k, lim in (self.limits or {}).items() if lim.fixed}

    def check(self, rb: Runbook, values: dict[str, Any]) -> None:
        """Every bound of this grant holds for `values` (the runbook's checked parameters)."""
        for name, lim in (self.limits or {}).items():
            if name in values or lim.fixed:
                lim.check(rb.params[name], values.get(name))


@dataclass(frozen=True)
class Role:
    name: str
    title: str
    runbooks: tuple[str, ...]
    limits: dict[str, dict[str, Limit]] = field(default_factory=dict)
    can: frozenset[str] = frozenset()

    def grants(self, runbook: str) -> bool:
        return "*" in self.runbooks or runbook in self.runbooks


@dataclass
class Policy:
    roles: dict[str, Role]
    source: str = "<built-in>"

    def grant(self, roles: Iterable[str], runbook: str) -> Grant | None:
        """The widest grant of `runbook` among `roles`; None when none grants it."""
        found = [self.roles[r] for r in self.roles if r in set(roles) and self.roles[r].grants(runbook)]
        for role in found:
            if runbook not in role.limits:
                return Grant(role.name, None)
        return Grant(found[0].name, found[0].limits[runbook]) if found else None

    def can(self, roles: Iterable[str], capability: str) -> bool:
        return any(capability in self.roles[r].can for r in roles if r in self.roles)

    def check_runbooks(self, load: Any, names: Iterable[str]) -> None:
        """Every runbook and parameter the policy names exists, and every fixed value fits
        its parameter; `load(name)` loads a runbook by name (an InputError when there is none)."""
        known = set(names)
        for role in self.roles.values():
            for i, name in enumerate(role.runbooks):
                if name != "*" and name not in known:
                    raise self._error(f"roles.{role.name}.runbooks[{i}]", f"no runbook named {name!r}",
                                      "`psrunner list` shows the runbooks the portal can reach")
            for rb_name, limits in role.limits.items():
                if not role.grants(rb_name):
                    raise self._error(f"roles.{role.name}.params.{rb_name}", "the role does not grant this runbook",
                                      f"add {rb_name!r} to roles.{role.name}.runbooks")
                rb: Runbook = load(rb_name)
                for pname, lim in limits.items():
                    where = f"roles.{role.name}.params.{rb_name}.{pname}"
                    if pname not in rb.params:
                        raise self._error(where, f"runbook {rb_name} has no parameter {pname!r}",
                                          "its parameters: " + ", ".join(rb.params))
                    if lim.fixed:
                        try:
                            coerce(rb.params[pname], lim.value)
                        except InputError as e:
                            raise self._error(where + ".value", e.message, e.hint) from None

    def _error(self, key: str, message: str, hint: str | None) -> InputError:
        return InputError(f"{self.source}: {key}: {message}", input=key, hint=hint)


def default_policy() -> Policy:
    """Without a policy file: one role, admin, that may run everything and read everything
    (the portal on this machine for the person who started it)."""
    return Policy({"admin": Role("admin", "Administrator", ("*",), can=frozenset(CAPABILITIES))})


def load_policy(path: str | Path) -> Policy:
    data = read_toml(path, what="policy file", input="policy",
                     hint="give the path of a TOML file with [roles.NAME] tables (docs/portal.md)")
    return parse_policy(data, str(path))


def parse_policy(data: dict[str, Any], source: str) -> Policy:
    policy = Policy({}, source)
    extra = set(data) - {"roles"}
    if extra:
        raise policy._error(sorted(extra)[0], "unknown key", "a policy file holds [roles.NAME] tables")
    roles = data.get("roles")
    if not isinstance(roles, dict) or not roles:
        raise policy._error("roles", "no roles", "add a [roles.NAME] table with runbooks = [...]")
    for name, spec in roles.items():
        where = f"roles.{name}"
        if not ROLE_RE.match(name):
            raise policy._error(where, f"{name!r} is not a role name", "letters, digits, _ . -; starting with a letter")
        if not isinstance(spec, dict):
            raise policy._error(where, "must be a table", None)
        for k in spec:
            if k not in ROLE_KEYS:
                raise policy._error(f"{where}.{k}", "unknown key", "allowed: " + ", ".join(sorted(ROLE_KEYS)))
        runbooks = spec.get("runbooks", [])
        if not isinstance(runbooks, list) or not all(isinstance(r, str) for r in runbooks):
            raise policy._error(f"{where}.runbooks", "must be a list of runbook names (\"*\" for all)", None)
        can = spec.get("can", [])
        if not isinstance(can, list) or any(c not in CAPABILITIES for c in can):
            raise policy._error(f"{where}.can", f"{can!r} is not allowed", "a list of: " + ", ".join(CAPABILITIES))
        params = spec.get("params", {})
        if not isinstance(params, dict):
            raise policy._error(f"{where}.params", "must be a table of runbook names", None)
        limits = {rb: _limits(policy, f"{where}.params.{rb}", table) for rb, table in params.items()}
        policy.roles[name] = Role(name, str(spec.get("title") or name), tuple(runbooks), limits, frozenset(can))
    return policy


def _limits(policy: Policy, where: str, table: Any) -> dict[str, Limit]:
    if not isinstance(table, dict):
        raise policy._error(where, "must be a table of parameter names", None)
    out = {}
    for pname, spec in table.items():
        at = f"{where}.{pname}"
        if not isinstance(spec, dict):
            raise policy._error(at, "must be a table ({} for what the runbook accepts)", None)
        for k in spec:
            if k not in LIMIT_KEYS:
                raise policy._error(f"{at}.{k}", "unknown key", "allowed: " + ", ".join(sorted(LIMIT_KEYS)))
        choices = spec.get("choices")
        if choices is not None and (not isinstance(choices, list) or not all(isinstance(c, str) for c in choices)):
            raise policy._error(f"{at}.choices", "must be a list of strings", None)
        pattern = spec.get("pattern")
        if pattern is not None:
            try:
                re.compile(pattern)
            except (re.error, TypeError) as e:
                raise policy._error(f"{at}.pattern", f"not a valid regular expression: {e}", None) from None
        under = spec.get("under", [])
        under = [under] if isinstance(under, str) else under
        if not isinstance(under, list) or not all(isinstance(u, str) and u.strip() for u in under):
            raise policy._error(f"{at}.under", "must be a distinguished name or a list of them", None)
        if "value" in spec and len(spec) > 1:
            raise policy._error(at, "a fixed value takes no other bound", "keep value, or drop it")
        out[pname] = Limit(fixed="value" in spec, value=spec.get("value"),
                           choices=tuple(choices) if choices is not None else None, pattern=pattern,
                           under=tuple(under))
    return out
