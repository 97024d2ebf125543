"""Reading the portal's TOML files (configuration, policy, accounts): one way to say that a
file is missing or does not parse, naming the file and what it was given as."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import InputError
from ..runbook_loader import tomllib
from ..userfiles import read_text


def read_toml(path: str | Path, *, what: str, input: str, hint: str | None = None,
              missing_ok: bool = False) -> dict[str, Any]:
    """The file's tables; {} for a missing file when `missing_ok`; else an InputError. Read
    like every file a person names (userfiles): a directory, a FIFO, UTF-16 text or a huge
    file is refused by name rather than met as a traceback or a hang."""
    if not Path(path).expanduser().exists():
        if missing_ok:
            return {}
        raise InputError(f"{what} {path} does not exist", input=input, hint=hint)
    try:
        return tomllib.loads(read_text(path, what=what, input=input, hint=hint))
    except tomllib.TOMLDecodeError as e:
        raise InputError(f"{path}: not valid TOML: {e}", input=input) from None
