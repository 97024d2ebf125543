"""A Windows PowerShell 5.1 dialect lint over the tree-sitter parse tree.

The host's default endpoint (Microsoft.PowerShell) is Windows PowerShell 5.1, and the
tree-sitter grammar is not a 5.1 parser: it reads `&&`/`||` pipeline chains as valid and
PowerShell 7 cmdlet parameters are just words to it, while `??`, `?.` and ternaries end up in
ERROR nodes that say nothing about why. This lint walks the tokens of the tree (comments and
the text of string literals are not tokens here; `$(...)` inside a string is) and names each
construct that Windows PowerShell 5.1 refuses or does not have.

What arrived when (Microsoft Learn, "What's New in PowerShell 7.0" and "What's New in
PowerShell 7.3"; about_Functions_Advanced_Methods for `clean`; ConvertFrom-Json and
ForEach-Object reference pages, "-AsHashtable: introduced in PowerShell 6.0",
"-Parallel: introduced in PowerShell 7.0"):
  7.0  `&&` / `||` pipeline chains, ternary `a ? b : c`, `??` and `??=`,
       `?.` and `?[]` (null-conditional member and index access), ForEach-Object -Parallel
  6.0  ConvertFrom-Json -AsHashtable
  7.3  the `clean {}` block

A template runs under 5.1 unless it says otherwise in PowerShell's own words:
`#Requires -Version 7` (or higher) or `#Requires -PSEdition Core`."""

from __future__ import annotations

import re
from dataclasses import dataclass

import tree_sitter
import tree_sitter_powershell

PARSER = tree_sitter.Parser(tree_sitter.Language(tree_sitter_powershell.language()))   # the templates' tests share it

# ForEach-Object and its aliases; a parameter may be abbreviated to any unique prefix
# ("-Pa" is the shortest that ForEach-Object's -Process leaves to -Parallel).
FOREACH_NAMES = {"foreach-object", "foreach", "%"}
PARAMETERS_7 = (  # (commands, the parameter's full name, shortest prefix PowerShell accepts)
    (FOREACH_NAMES, "parallel", 2, "ForEach-Object -Parallel (PowerShell 7.0)"),
    ({"convertfrom-json"}, "ashashtable", 1, "ConvertFrom-Json -AsHashtable (PowerShell 6.0)"),
)
REQUIRES_7 = re.compile(r"(?im)^\s*#requires\s+.*(-version\s+([7-9]|\d\d)|-psedition\s+core)")


@dataclass(frozen=True)
class Finding:
    line: int          # 1-based, as an editor shows it
    construct: str
    text: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.construct}: {self.text}"


def runs_under_51(script: str) -> bool:
    """False when the script itself requires PowerShell 7 (or the Core edition)."""
    return not REQUIRES_7.search(script)


def _leaves(node):
    if not node.children:
        yield node
    for c in node.children:
        yield from _leaves(c)


def _nodes(node, type_: str):
    if node.type == type_:
        yield node
    for c in node.children:
        yield from _nodes(c, type_)


def _is_clean_block(src: bytes, leaf) -> bool:
    """`clean {`: 5.1 reads it as a command named clean (script level) or fails to parse it
    (in a function); 7.3 runs it as a block."""
    word = src[leaf.start_byte:leaf.end_byte].decode("utf-8", "replace").strip().lower()
    return word == "clean" and src[leaf.end_byte:].lstrip().startswith(b"{")


def lint_51(script: str) -> list[Finding]:
    """Every construct in `script` that Windows PowerShell 5.1 does not parse or run."""
    src = script.encode("utf-8")
    tree = PARSER.parse(src)
    found: list[Finding] = []

    def add(node, construct: str) -> None:
        raw = src[node.start_byte:node.end_byte]     # an ERROR token may begin with the whitespace before it
        start = node.start_byte + len(raw) - len(raw.lstrip())
        line = src.count(b"\n", 0, start)
        text = src.splitlines()[line].decode("utf-8", "replace").strip()
        found.append(Finding(line + 1, construct, text[:100]))

    for leaf in _leaves(tree.root_node):
        if "comment" in leaf.type or leaf.type == "command_name":   # `?` alone is Where-Object
            if leaf.type == "command_name" and _is_clean_block(src, leaf):
                add(leaf, "'clean {}' block (PowerShell 7.3)")
            continue
        token = src[leaf.start_byte:leaf.end_byte].decode("utf-8", "replace").strip()
        after = src[leaf.end_byte:leaf.end_byte + 1]
        if token in ("&&", "||"):
            add(leaf, f"'{token}' pipeline chain (PowerShell 7.0)")
        elif token.startswith("??"):
            add(leaf, "'??' null-coalescing operator (PowerShell 7.0)")
        elif token in ("?.", "?[") or (token == "?" and after in (b".", b"[")):
            add(leaf, "'?.' / '?[]' null-conditional access (PowerShell 7.0)")
        elif token == "?":
            add(leaf, "ternary operator 'a ? b : c' (PowerShell 7.0)")
        elif _is_clean_block(src, leaf):
            add(leaf, "'clean {}' block (PowerShell 7.3)")

    for command in _nodes(tree.root_node, "command"):
        name = next((c for c in command.children if c.type == "command_name"), None)
        if name is None:
            continue
        cmd = src[name.start_byte:name.end_byte].decode("utf-8", "replace").lower()
        for p in _nodes(command, "command_parameter"):
            if p.parent.parent != command:     # a parameter of a nested command
                continue
            word = src[p.start_byte:p.end_byte].decode("utf-8", "replace").lstrip("-").rstrip(":").lower()
            for commands, full, shortest, construct in PARAMETERS_7:
                if cmd in commands and len(word) >= shortest and full.startswith(word):
                    add(p, construct)
    return sorted(found, key=lambda f: f.line)
