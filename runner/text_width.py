"""Fitting text to the terminal a person reads it on.

The width is the terminal's: `COLUMNS` when set, else the width of stdout when it is a
terminal, else of stderr when that is one (`psrunner plan | tee plan.txt` is read on the
terminal stderr goes to). Without any terminal (a scheduler, a log file) text is not wrapped,
so each message stays one line to search for. Words are never broken: a URL, a path or a
command line stays whole even when it is wider than the terminal."""

from __future__ import annotations

import os
import sys
import textwrap
from typing import TextIO


def terminal_width(*streams: TextIO) -> int | None:
    """Columns to wrap at, or None (no terminal: do not wrap). Never below 40."""
    cols = os.environ.get("COLUMNS", "")
    if cols.isdigit() and int(cols) > 0:
        return max(40, int(cols))
    for stream in streams or (sys.stdout, sys.stderr):
        try:
            if stream.isatty():
                return max(40, os.get_terminal_size(stream.fileno()).columns)
        except (AttributeError, ValueError, OSError):
            continue
    return None


def fill(text: str, width: int | None, indent: str = "", hang: str = "") -> list[str]:
    """`text` as lines of at most `width` columns: the first starts with `indent`, the
    others with `indent + hang`. Unwrapped (one line) when `width` is None."""
    if width is None or not text:
        return [f"{indent}{text}".rstrip()]
    return textwrap.wrap(text, width=width, initial_indent=indent, subsequent_indent=indent + hang,
                         break_long_words=False, break_on_hyphens=False) or [indent.rstrip()]


def fill_after(prefix: str, prefix_width: int, text: str, width: int | None, hang: str = "") -> list[str]:
    """`prefix` (which may hold colour codes; `prefix_width` columns when shown) then `text`,
    wrapped so that continuation lines start under the text."""
    lines = fill(text, width, " " * prefix_width, hang)
    return [prefix + lines[0][prefix_width:]] + lines[1:]
