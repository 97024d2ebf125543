"""The param() block of a PowerShell script, read: names, types, Mandatory, SecureString.

A small parser on purpose: tree-sitter is a test dependency, and the runbook loader needs
this at load time (stage inputs are checked against the template's parameters). Template
param() blocks are static PowerShell (no Jinja inside); the template tests cross-check this
parser against tree-sitter-powershell."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .quoting import SINGLE_QUOTES


@dataclass(frozen=True)
class ParamDecl:
    name: str
    type: str            # as written, lower-cased, without brackets: "string", "bool", "securestring"
    mandatory: bool
    secure: bool


_SECURE_TYPES = {"securestring", "system.security.securestring"}


def _strip_comments(src: str) -> str:
    """Remove Jinja comments, PowerShell block comments and line comments (outside strings)."""
    src = re.sub(r"\{#.*?#\}", "", src, flags=re.S)
    out, i, n = [], 0, len(src)
    while i < n:
        c = src[i]
        if src.startswith("<#", i):
            j = src.find("#>", i + 2)
            i = n if j < 0 else j + 2
            continue
        if c == "#":
            j = src.find("\n", i)
            i = n if j < 0 else j
            continue
        if c in SINGLE_QUOTES:
            j = i + 1
            while j < n:
                if src[j] in SINGLE_QUOTES:
                    if j + 1 < n and src[j + 1] in SINGLE_QUOTES:
                        j += 2
                        continue
                    break
                j += 1
            out.append(src[i:j + 1])
            i = j + 1
            continue
        if c == '"':
            j = i + 1
            while j < n and src[j] != '"':
                j += 2 if src[j] == "`" else 1
            out.append(src[i:j + 1])
            i = j + 1
            continue
        out.append(c)
        i += 1
    return "".join(out)


def _balanced(src: str, start: int) -> int:
    """Index just past the bracket that closes src[start] ('(' or '[')."""
    pairs = {"(": ")", "[": "]", "{": "}"}
    stack = []
    i = start
    while i < len(src):
        c = src[i]
        if c in pairs:
            stack.append(pairs[c])
        elif stack and c == stack[-1]:
            stack.pop()
            if not stack:
                return i + 1
        elif c in SINGLE_QUOTES or c == '"':
            q = c
            i += 1
            while i < len(src) and not (src[i] == q or (q != '"' and src[i] in SINGLE_QUOTES)):
                i += 1
        i += 1
    raise ValueError("unbalanced brackets")


def _split_top(src: str) -> list[str]:
    parts, depth, cur, i = [], 0, [], 0
    while i < len(src):
        c = src[i]
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif c in SINGLE_QUOTES or c == '"':
            j = i + 1
            while j < len(src) and not (src[j] == c or (c != '"' and src[j] in SINGLE_QUOTES)):
                j += 1
            cur.append(src[i:j + 1])
            i = j + 1
            continue
        if c == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(c)
        i += 1
    if "".join(cur).strip():
        parts.append("".join(cur))
    return parts


_PARAM_KW = re.compile(r"(?i)(?<![\w$-])param\s*\(")
_VAR = re.compile(r"\$(?P<name>[A-Za-z_]\w*)")


def _declaration(chunk: str) -> ParamDecl:
    """One `[attr(...)] [type] $Name = default` declaration."""
    i, attrs = 0, []
    while i < len(chunk):
        c = chunk[i]
        if c == "[":
            end = _balanced(chunk, i)
            attrs.append(chunk[i + 1:end - 1].strip())
            i = end
        elif c == "$":
            break
        else:
            i += 1
    var = _VAR.match(chunk, i)
    if not var:
        raise ValueError(f"cannot read parameter declaration: {chunk.strip()[:60]!r}")
    ptype, mandatory = "object", False
    for a in attrs:
        paren = a.find("(")
        if paren < 0:
            ptype = re.sub(r"\s+", "", a).lower()
        elif a[:paren].strip().lower() == "parameter":
            args = a[paren:].lower()
            if re.search(r"\bmandatory\b(?!\s*=\s*\$false)", args):
                mandatory = True
    return ParamDecl(var.group("name"), ptype, mandatory, ptype in _SECURE_TYPES)


def parse_param_block(source: str) -> list[ParamDecl]:
    """Read the script-level param() block: names, types, Mandatory, SecureString.

    A small parser on purpose: tree-sitter is a test dependency, and the runbook loader needs
    this at load time. Template param() blocks are static PowerShell (no Jinja inside); the
    template tests cross-check this parser against tree-sitter-powershell."""
    src = _strip_comments(source)
    m = _PARAM_KW.search(src)
    if not m:
        return []
    open_at = m.end() - 1
    body = src[open_at + 1:_balanced(src, open_at) - 1]
    return [_declaration(chunk) for chunk in _split_top(body) if chunk.strip()]
