"""Parameter binding for the host simulator, close to what PowerShell's binder does.

No PowerShell engine exists here, so the simulator reads the script's `param()` block with a
small scanner (comments and string literals blanked, nesting tracked) and binds the PSRP
parameters the client sent the way PowerShell would for a script block:

- names match case-insensitively, and a unique prefix is accepted (`-Ten` for `-TenantName`);
- an *advanced* script (`[CmdletBinding()]` or any `[Parameter()]` attribute) rejects unknown
  names (NamedParameterNotFound) and extra positional values (PositionalParameterNotFound),
  accepts the common parameters, and fails when a Mandatory parameter is missing;
- a simple script puts unknown arguments in `$args`, so they bind to nothing and no error
  is raised;
- a `[switch]` sent without a value (pypsrp sends Nil) is present, i.e. True.

Binding errors carry the message, exception type, category and FullyQualifiedErrorId that
PowerShell writes, so a template bug surfaces in the simulator as it would on a real host."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .twin_types import TwinError

COMMON_PARAMETERS = (
    "Verbose", "Debug", "ErrorAction", "WarningAction", "InformationAction", "ErrorVariable",
    "WarningVariable", "InformationVariable", "OutVariable", "OutBuffer", "PipelineVariable",
)
SHOULD_PROCESS_PARAMETERS = ("WhatIf", "Confirm")

_PARAM_KEYWORD = re.compile(r"\bparam\s*\(", re.IGNORECASE)
_VARIABLE = re.compile(r"\$(?:\{(?P<braced>[^}]+)\}|(?P<plain>[A-Za-z_][A-Za-z0-9_]*))")
_MANDATORY = re.compile(r"\bMandatory\b(?!\s*=\s*\$false)", re.IGNORECASE)
_SWITCH = re.compile(r"\[\s*switch\s*\]", re.IGNORECASE)
_BINDING_EXCEPTION = "System.Management.Automation.ParameterBindingException"


@dataclass(frozen=True)
class ParamSpec:
    name: str
    mandatory: bool = False
    switch: bool = False


@dataclass
class ScriptSignature:
    """What the binder needs to know about a script's `param()` block."""
    params: list[ParamSpec] = field(default_factory=list)
    advanced: bool = False
    should_process: bool = False

    def names(self) -> list[str]:
        names = [p.name for p in self.params]
        if self.advanced:
            names += [c for c in COMMON_PARAMETERS if c.lower() not in {n.lower() for n in names}]
            if self.should_process:
                names += list(SHOULD_PROCESS_PARAMETERS)
        return names


def _blank_comments_and_strings(text: str) -> str:
    """Replace comments and string literal contents with spaces (same length), so brackets
    and `$names` inside them do not count. Here-strings and escapes handled roughly: enough
    for param blocks, which rarely hold anything fancier than a default string."""
    out = list(text)
    i, n = 0, len(text)

    def blank(a: int, b: int) -> None:
        for k in range(a, min(b, n)):
            if out[k] != "\n":
                out[k] = " "

    while i < n:
        c = text[i]
        if text.startswith("<#", i):
            j = text.find("#>", i + 2)
            j = n if j < 0 else j + 2
            blank(i, j)
            i = j
        elif c == "#":
            j = text.find("\n", i)
            j = n if j < 0 else j
            blank(i, j)
            i = j
        elif text.startswith("@'", i) or text.startswith('@"', i):
            close = "\n" + text[i + 1] + "@"
            j = text.find(close, i + 2)
            j = n if j < 0 else j + len(close)
            blank(i + 2, j - 2)
            i = j
        elif c == "'":
            j = i + 1
            while j < n:
                if text[j] == "'" and j + 1 < n and text[j + 1] == "'":
                    j += 2
                    continue
                if text[j] == "'":
                    break
                j += 1
            blank(i + 1, j)
            i = j + 1
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "`" else 1
            blank(i + 1, j)
            i = j + 1
        else:
            i += 1
    return "".join(out)


def _param_block(clean: str) -> tuple[str, str] | None:
    """(text before the block, text inside `param( ... )`) of the script's top-level param
    block, or None when it has none."""
    depth = 0
    i = 0
    while i < len(clean):
        c = clean[i]
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif depth == 0 and c.lower() == "p":
            m = _PARAM_KEYWORD.match(clean, i)
            if m and (i == 0 or not (clean[i - 1].isalnum() or clean[i - 1] in "_-$")):
                start = m.end()
                level = 1
                j = start
                while j < len(clean) and level:
                    if clean[j] in "([{":
                        level += 1
                    elif clean[j] in ")]}":
                        level -= 1
                    j += 1
                return clean[:i], clean[start:j - 1]
        i += 1
    return None


def _split_top_level(inner: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for i, c in enumerate(inner):
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif c == "," and depth == 0:
            parts.append(inner[start:i])
            start = i + 1
    parts.append(inner[start:])
    return [p for p in parts if p.strip()]


def _first_variable_at_depth0(segment: str) -> str | None:
    depth = 0
    for i, c in enumerate(segment):
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif c == "$" and depth == 0:
            m = _VARIABLE.match(segment, i)
            if m:
                return m.group("braced") or m.group("plain")
    return None


def parse_signature(script: str) -> ScriptSignature:
    """Read the parameters a script declares (see module docstring)."""
    clean = _blank_comments_and_strings(script)
    found = _param_block(clean)
    if found is None:
        return ScriptSignature(advanced=bool(re.search(r"\[\s*CmdletBinding\b", clean, re.IGNORECASE)))
    before, inner = found
    sig = ScriptSignature()
    sig.advanced = bool(re.search(r"\[\s*CmdletBinding\b", before, re.IGNORECASE)) or bool(
        re.search(r"\[\s*Parameter\s*\(", inner, re.IGNORECASE))
    sig.should_process = bool(re.search(r"SupportsShouldProcess(?!\s*=\s*\$false)", before, re.IGNORECASE))
    for segment in _split_top_level(inner):
        name = _first_variable_at_depth0(segment)
        if not name:
            continue
        head = segment[: segment.find("$" + name)] if ("$" + name) in segment else segment
        sig.params.append(ParamSpec(name=name, mandatory=bool(_MANDATORY.search(head)),
                                    switch=bool(_SWITCH.search(head))))
    return sig


def _binding_error(message: str, fqid: str, target: str | None = None) -> TwinError:
    return TwinError(message, exception_type=_BINDING_EXCEPTION, category="InvalidArgument",
                     fqid=fqid, target=target)


def bind(script: str, arguments: list[tuple[str | None, Any]]) -> dict[str, Any]:
    """Bind PSRP arguments (name or None for positional, value) to the script's parameters.
    Returns {declared name: value}. Raises TwinError as PowerShell's binder would."""
    sig = parse_signature(script)
    declared = sig.names()
    by_lower = {n.lower(): n for n in declared}
    specs = {p.name: p for p in sig.params}
    bound: dict[str, Any] = {}
    positional: list[Any] = []

    for raw_name, value in arguments:
        if raw_name is None:
            positional.append(value)
            continue
        name = raw_name.lstrip("-").rstrip(":")
        target = by_lower.get(name.lower())
        if target is None:
            candidates = [n for n in declared if n.lower().startswith(name.lower())]
            if len(candidates) > 1:
                raise _binding_error(
                    f"Parameter cannot be processed because the parameter name '{name}' is ambiguous. "
                    f"Possible matches include: {' '.join('-' + c for c in candidates)}.",
                    "AmbiguousParameter", name)
            target = candidates[0] if candidates else None
        if target is None:
            if sig.advanced:
                raise _binding_error(
                    f"A parameter cannot be found that matches parameter name '{name}'.",
                    "NamedParameterNotFound", name)
            continue  # simple script: the argument lands in $args
        if target in bound:
            raise _binding_error(
                f"Cannot bind parameter because parameter '{target}' is specified more than once. "
                f"To provide multiple values to parameters that can accept multiple values, use the "
                f"array syntax. For example, \"-parameter value1,value2,value3\".",
                "ParameterAlreadyBound", target)
        spec = specs.get(target)
        if value is None and (spec is None or spec.switch):
            value = True  # a switch (or common switch like -Verbose) given without a value
        bound[target] = value

    free = [p.name for p in sig.params if p.name not in bound]
    for value in positional:
        if not free:
            if sig.advanced:
                raise _binding_error(
                    f"A positional parameter cannot be found that accepts argument '{value}'.",
                    "PositionalParameterNotFound", str(value))
            continue
        bound[free.pop(0)] = value

    missing = [p.name for p in sig.params if p.mandatory and p.name not in bound]
    if missing and sig.advanced:
        raise _binding_error(
            "Cannot process command because of one or more missing mandatory parameters: "
            f"{' '.join(missing)}.", "MissingMandatoryParameter")
    return bound
