"""README's troubleshooting table quotes messages psrunner really prints: each quoted text
is found in the strings of runner/ (its simulators' answers carry Microsoft's own messages),
where a message may continue after a value the code computes, so a reworded message cannot
leave the table behind."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from runner.graph.auth import _AADSTS_HINTS

ROOT = Path(__file__).resolve().parents[1]
SEP = "\0"          # where an f-string computes a value: no quoted text spans it


def _strings(tree: ast.AST) -> str:
    """Every string constant of a module, f-strings with their values replaced by SEP."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            out.append("".join(v.value if isinstance(v, ast.Constant) else SEP for v in node.values))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            out.append(node.value)
    return SEP.join(out)


STRINGS = SEP.join(_strings(ast.parse(p.read_text(encoding="utf-8"))) for p in sorted((ROOT / "runner").rglob("*.py")))


def _quoted_messages() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    table = text.split("## Troubleshooting by message", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    return [q for row in rows for q in re.findall(r"`([^`]+)`", row.split(" | ")[0])]


QUOTED = _quoted_messages()


def _fragments(quoted: str) -> list[str]:
    """The literal parts of a quoted message: `...` and WORDS IN CAPITALS stand for values."""
    parts = re.split(r"\.\.\.|(?<![\w.-])[A-Z][A-Z_]+(?![\w.-])", quoted)
    return [p.strip() for p in parts if p.strip()]


def test_the_table_was_read():
    assert len(QUOTED) >= 20
    assert "cannot reach the sign-in service HOST" in QUOTED


@pytest.mark.parametrize("quoted", QUOTED)
def test_each_quoted_message_is_in_the_code(quoted):
    code = re.fullmatch(r"AADSTS(\d+)", quoted)
    if code:                        # Entra's own error code: one psrunner has a fix line for
        assert int(code.group(1)) in _AADSTS_HINTS
        return
    fragments = _fragments(quoted)
    assert fragments, quoted
    missing = [f for f in fragments if not _found(f)]
    assert missing == [], f"{quoted!r}: not in the code"


def _found(text: str, begins: bool = False) -> bool:
    """`text` is in a string of the code (at its beginning when `begins`), or it is the end of
    a string's text before a computed value (`to continue: {command}`), followed by what a
    string that begins after it holds (pieces of 4 characters at least: a plural's `s` between
    two values is no evidence)."""
    lead = SEP if begins else ""
    if lead + text in STRINGS:
        return True
    return any(lead + text[:i] + SEP in STRINGS and _found(text[i:], begins=True) for i in range(4, len(text)))
