"""The command lines a script written for a person carries in its comment help (`.EXAMPLE`):
one that shows what would change (`-Apply $false`), one that changes it. Values a runbook
gives are printed through the quoting filters; a mandatory parameter nobody gave reads
`<Name>`; a SecureString is read at the prompt (`Read-Host -AsSecureString`), never written.

Comment-based help sits at the top of a script and may be preceded only by comments and
blank lines; its keywords (.SYNOPSIS, .EXAMPLE, ...) each start a section
(about_Comment_Based_Help, Microsoft Learn)."""

from __future__ import annotations

from typing import Any

from ..secrets import Secret
from ..values import Unknown
from .param_block import ParamDecl
from .quoting import ps_bool, ps_int, ps_str


def _argument(decl: ParamDecl, value: Any) -> str | None:
    """` -Name value` for one parameter, or None when it is left to its default."""
    if decl.secure:
        return f" -{decl.name} (Read-Host -AsSecureString '{decl.name}')"
    if value is None or value == "" or isinstance(value, (Unknown, Secret)):
        return f" -{decl.name} <{decl.name}>" if decl.mandatory else None
    if isinstance(value, bool):
        return f" -{decl.name} {ps_bool(value)}"
    if isinstance(value, int):
        return f" -{decl.name} {ps_int(value)}"
    return f" -{decl.name} {ps_str(str(value))}"


def command_line(script: str, decls: list[ParamDecl], arguments: dict[str, Any], *, apply: bool) -> str:
    """`.\\script -Name 'value' ... -Apply $true|$false` (Apply only when the script takes it).
    A SecureString is asked for at the prompt when the script takes no UserName, or one was
    given: a password without its user name would go unused."""
    given = {k.lower(): v for k, v in arguments.items()}
    parts = []
    for decl in decls:
        if decl.name.lower() == "apply":
            continue
        if decl.secure and not given.get("username", True):
            continue                # no user name: the password would not be used
        arg = _argument(decl, given.get(decl.name.lower()))
        if arg:
            parts.append(arg)
    if any(d.name.lower() == "apply" for d in decls):
        parts.append(f" -Apply {ps_bool(apply)}")
    return f".\\{script}" + "".join(parts)


def examples(script: str, decls: list[ParamDecl], arguments: dict[str, Any], *,
             read_only: bool = False) -> list[tuple[str, str]]:
    """(command line, what it does): for a script that changes things, a look first and then
    the change; for one that only reads, the one line that runs it."""
    if read_only:
        line = command_line(script, [d for d in decls if d.name.lower() != "apply"], arguments, apply=False)
        return [(line, "Reads and reports; changes nothing.")]
    return [(command_line(script, decls, arguments, apply=False), "Shows what would change; changes nothing."),
            (command_line(script, decls, arguments, apply=True), "Changes what differs.")]


def with_examples(text: str, pairs: list[tuple[str, str]]) -> str:
    """`text` with an .EXAMPLE section per (command line, what it does) at the end of its
    comment help (a new block after the leading comments when it has none)."""
    help_text = "".join(f".EXAMPLE\n    {line}\n\n    {what}\n" for line, what in pairs)
    lines = text.splitlines(keepends=True)
    lead = 0                       # the comments and blank lines the help may follow
    while lead < len(lines) and (not lines[lead].strip() or lines[lead].lstrip().startswith("#")):
        lead += 1
    head, rest = "".join(lines[:lead]), "".join(lines[lead:])
    end = rest.find("#>")
    if rest.startswith("<#") and end > 0:
        return head + rest[:end] + help_text + rest[end:]
    return f"{head}<#\n{help_text}#>\n{rest}"
