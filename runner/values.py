"""The ground floor for values: what a value may be on its way to a stage, and the one way
each kind of value is read from text, TOML or a caller.

A value arrives as text (`-p key=value`, the environment, a file), as a TOML value (a params
file, a default, a stage input), or from a library caller (a `Secret`). Every reader here
answers the same way: the value in its type, or an `InputError` that names the input as the
user spelled it (`where`) and says what would fit. Parameters (`coerce`), stage inputs and
target settings all use these readers, so "yes", 1 and true mean the same everywhere.

`Unknown` is the value of a reference to an earlier stage's output while planning, before
that stage has applied: falsy, so "not there yet" and "known after apply" share one path.

This module imports only runner.errors and runner.secrets, which import nothing of the
project: any module may use it (see docs/architecture.md)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Protocol

from .errors import InputError, ParamError
from .secrets import Secret
from .userfiles import check_regular

TRUE = frozenset({"true", "yes", "on", "1"})
FALSE = frozenset({"false", "no", "off", "0"})
# The longest parameter value taken: a host name is 253 characters, a path a few hundred; a
# value far beyond that is a mistake (a file pasted into -p) and would fill run.json and
# every message that names it.
MAX_TEXT = 4096
MAX_SECRET = 8192


def clip(text: str, limit: int = 80) -> str:
    """`text` shortened for a message: a value that is too long is shown by its start and its
    length, never in full."""
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text):,} characters)"


def shown(value: Any) -> str:
    """A value as a message quotes it: repr, clipped."""
    return clip(repr(value))


class Unknown:
    """A value that is known only after an earlier stage applies (plan mode)."""

    __slots__ = ("source",)

    def __init__(self, source: str) -> None:
        self.source = source

    def __repr__(self) -> str:
        return f"(known after apply: {self.source})"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return False

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Unknown) and other.source == self.source

    def __hash__(self) -> int:
        return hash(("Unknown", self.source))


def is_unknown(value: Any) -> bool:
    return isinstance(value, Unknown)


def known_or_none(value: Any) -> Any:
    """None for an Unknown (plan mode: the object it names does not exist yet), else the value."""
    return None if isinstance(value, Unknown) else value


def text_bool(value: Any) -> bool | None:
    """A bool, or yes/no text as a bool; None when the value is neither."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in TRUE | FALSE:
        return value.strip().lower() in TRUE
    return None


# ---------------------------------------------------------------------------- readers

def as_bool(value: Any, where: str) -> bool:
    """true/false, yes/no, on/off, 1/0 (text or TOML)."""
    b = text_bool(value)
    if b is None:
        raise InputError(f"{where}: {shown(value)} is not true or false", input=where, hint="use true or false")
    return b


def as_int(value: Any, where: str, *, lo: int | None = None, hi: int | None = None) -> int:
    """A whole number (text or TOML; never a bool), within [lo, hi] when given."""
    n: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        n = value
    elif isinstance(value, str):
        try:
            n = int(value.strip())
        except ValueError:
            n = None
    if n is None:
        raise InputError(f"{where}: {shown(value)} is not a whole number", input=where)
    if lo is not None and n < lo:
        raise InputError(f"{where}: {n} is below the minimum {lo}", input=where)
    if hi is not None and n > hi:
        raise InputError(f"{where}: {n} is above the maximum {hi}", input=where)
    return n


def as_number(value: Any, where: str, *, lo: float | None = None) -> float:
    """A number (seconds, a budget): int, float or their text; never a bool."""
    f: float | None = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        f = float(value)
    elif isinstance(value, str):
        try:
            f = float(value.strip())
        except ValueError:
            f = None
    if f is None or f != f or f in (float("inf"), float("-inf")):   # NaN and infinity are no seconds
        raise InputError(f"{where}: {shown(value)} is not a number", input=where,
                         hint="give a finite number" if f is not None else None)
    if lo is not None and f < lo:
        raise InputError(f"{where}: {shown(value)} is below the minimum {lo:g}", input=where)
    return f


def as_text(value: Any, where: str, *, required: bool = False) -> Any:
    """Text; None when empty or absent (an InputError when `required`). An Unknown passes
    through unchanged: it is a text known after apply."""
    if value is None or value == "":
        if required:
            raise InputError(f"{where}: required", input=where)
        return None
    if isinstance(value, Unknown):
        return value
    if not isinstance(value, str):
        raise InputError(f"{where}: {shown(value)} is not text", input=where)
    return value


def as_secret(value: Any, where: str, *, name: str | None = None) -> Secret | None:
    """A Secret; None when empty or absent. Text becomes a Secret named `name` (default
    `where`), so it is masked and redacted from here on."""
    if value is None or value == "" or (isinstance(value, Secret) and not value):
        return None
    if isinstance(value, Secret):
        return value
    if isinstance(value, str):
        return Secret(value, name or where)
    raise InputError(f"{where}: must be a secret (text from the environment, a file or a prompt)",
                     input=where)


# ---------------------------------------------------------------------------- typed parameters

class ValueSpec(Protocol):
    """What `coerce` needs of a runbook parameter (runner.runbook.Param)."""
    name: str
    type: str                        # str | int | bool | choice | secret | list | file
    choices: tuple[str, ...]
    pattern: str | None
    min: int | None
    max: int | None
    help: str
    example: str | None
    separator: str                   # lists given as text: between items


def spec_hint(spec: ValueSpec) -> str:
    """How to give a good value of this parameter, in the user's terms."""
    if spec.type == "choice":
        return "choose one of: " + ", ".join(spec.choices)
    if spec.type == "int" and (spec.min is not None or spec.max is not None):
        bounds = (f"from {spec.min} to {spec.max}" if spec.min is not None and spec.max is not None
                  else f"of at least {spec.min}" if spec.min is not None else f"of at most {spec.max}")
        # the bounds are the fix; the help says what the number means (it cannot repeat them)
        return f"give -p {spec.name}=N, a whole number {bounds}" + (f" ({spec.help})" if spec.help else "")
    ex = f" (for example {spec.example})" if spec.example else ""
    return (spec.help or f"give -p {spec.name}=VALUE") + ex


def coerce(spec: ValueSpec, value: Any) -> Any:
    """Turn `value` into the parameter's type, or raise ParamError naming the parameter."""
    where = f"parameter {spec.name!r}"

    def bad(what: str, hint: str | None = None) -> ParamError:
        return ParamError(f"{where}: {what}", param=spec.name, hint=hint or spec_hint(spec))

    try:
        if spec.type == "secret":
            if isinstance(value, Secret):
                return value
            if not isinstance(value, str) or not value:
                raise bad("an empty secret is not allowed")
            if len(value) > MAX_SECRET:
                raise bad(f"the secret is {len(value):,} characters long; the limit is {MAX_SECRET:,}",
                          "check that the file or variable holds the secret alone")
            return as_secret(value, where, name=spec.name)
        if spec.type == "bool":
            return as_bool(value, where)
        if spec.type == "int":
            return as_int(value, where, lo=spec.min, hi=spec.max)
    except ParamError:
        raise
    except InputError as e:
        raise ParamError(e.message, param=spec.name, hint=e.hint or spec_hint(spec)) from None
    size = len(value) if isinstance(value, str) else \
        sum(len(x) for x in value if isinstance(x, str)) if isinstance(value, list) else 0
    if size > MAX_TEXT:
        raise bad(f"the value is {size:,} characters long; the limit is {MAX_TEXT:,}",
                  "check what was given: a value this long is a mistake (a file pasted whole?)")
    if spec.type == "list":
        if isinstance(value, list):
            items = value
        elif isinstance(value, str):
            items = [x.strip() for x in value.split(spec.separator) if x.strip()]
        else:
            raise bad(f"{shown(value)} is not a list")
        if not all(isinstance(x, str) for x in items):
            raise bad("list items must be strings")
        if spec.pattern:
            for x in items:
                if not re.fullmatch(spec.pattern, x):
                    raise bad(f"item {shown(x)} does not match the expected form")
        return items
    # str, choice and file
    if not isinstance(value, str):
        raise bad(f"{shown(value)} is not text")
    if spec.type == "choice" and value not in spec.choices:
        raise bad(f"{shown(value)} is not one of the choices", "choose one of: " + ", ".join(spec.choices))
    if spec.pattern and not re.fullmatch(spec.pattern, value):
        raise bad(f"{shown(value)} does not match the expected form")
    if "\x00" in value:
        raise bad("NUL characters are not allowed")
    if spec.type == "file" and value:
        hint = (spec.help + ": " if spec.help else "") + f"give the path of an existing file with -p {spec.name}=PATH"
        if not Path(value).expanduser().exists():
            raise bad(f"no such file: {clip(value, 300)}", hint)
        try:
            check_regular(value, what="file", input=spec.name, hint=hint)
        except InputError as e:
            raise bad(e.message, hint) from None
    return value


def inputs_digest(kind: str, template: str | None, inputs: dict[str, Any]) -> str:
    """What a stage was asked to do, as a short hash (resume repeats a stage whose inputs
    changed): secrets by name, values known after apply by reference, never a secret value."""
    import hashlib
    import json

    def norm(v: Any) -> Any:
        if isinstance(v, Secret):
            return f"secret:{v.name}"
        if isinstance(v, Unknown):
            return repr(v)
        if isinstance(v, dict):
            return {str(k): norm(x) for k, x in sorted(v.items())}
        if isinstance(v, (list, tuple)):
            return [norm(x) for x in v]
        return v
    blob = json.dumps({"kind": kind, "template": template, "inputs": norm(inputs)}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
