"""References: the `${...}` syntax of runbooks, and resolving it in stage inputs, target
settings and parameter defaults.

    ${params.NAME}  ${stages.ID.outputs.KEY}  ${stages.ID.status}  ${stages.ID.diff.before}
    ${run.id}  ${run.dir}  ${params.tenant|spo_admin_url}   (piped through a derivation)

A string that is exactly one reference keeps the value's type; references inside a longer
string are interpolated as text. A reference to an output not known yet (plan mode) gives
the engine's Unknown."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from .errors import InputError
from .values import Unknown

REF_RE = re.compile(r"\$\{\s*([^}|\s]+)\s*(?:\|\s*([a-z_]+)\s*)?\}")


def iter_refs(value: Any) -> Iterator[tuple[str, str | None]]:
    """(reference, derivation or None) for every `${...}` in a str, list or dict."""
    if isinstance(value, str):
        for m in REF_RE.finditer(value):
            yield m.group(1), m.group(2)
    elif isinstance(value, dict):
        for v in value.values():
            yield from iter_refs(v)
    elif isinstance(value, list):
        for v in value:
            yield from iter_refs(v)


def lookup(ref: str, scope: dict[str, Any]) -> Any:
    parts = ref.split(".")
    cur: Any = scope
    for part in parts:
        if isinstance(cur, Unknown):
            return cur
        if not isinstance(cur, dict) or part not in cur:
            if parts[0] == "params":
                return None   # optional parameter not given
            # a stage not run yet, or run without this output: the engine's `_missing` says
            # what that means (Unknown while planning, None while applying)
            missing = scope.get("_missing")
            return missing(ref) if missing else None
        cur = cur[part]
    return cur


def resolve_value(value: Any, scope: dict[str, Any], *, where: str = "") -> Any:
    """Replace references in `value` (str, list, dict) from `scope`."""
    if isinstance(value, str):
        m = REF_RE.fullmatch(value.strip())
        if m:
            return _derived(lookup(m.group(1), scope), m.group(2), where)
        if not REF_RE.search(value):
            return value

        def sub(mm):
            v = _derived(lookup(mm.group(1), scope), mm.group(2), where)
            if isinstance(v, Unknown):
                raise _UnknownInside(v)
            return "" if v is None else str(v)
        try:
            return REF_RE.sub(sub, value)
        except _UnknownInside as u:
            return u.value
    if isinstance(value, dict):
        return {k: resolve_value(v, scope, where=f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_value(v, scope, where=where) for v in value]
    return value


class _UnknownInside(Exception):
    def __init__(self, value: Unknown) -> None:
        self.value = value


def _derived(value: Any, derive: str | None, where: str) -> Any:
    if derive is None or value is None or isinstance(value, Unknown):
        return value
    from .derive import DERIVATIONS
    try:
        return DERIVATIONS[derive](value)
    except InputError:
        raise
    except Exception as e:  # pragma: no cover - derivations raise InputError themselves
        raise InputError(f"{where}: cannot derive {derive} from {value!r}: {e}", input=where) from None
