"""Reading the portal's TOML files (configuration, policy, accounts): one way to say that a
file is missing or does not parse, naming the file and what it was given as."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import InputError
from ..runbook_loader import tomllib


def read_toml(path: str | Path, *, what: str, input: str, hint: str | None = None,
              missing_ok: bool = False) -> dict[str, Any]:
    """The file's tables; {} for a missing file when `missing_ok`; else an InputError."""
    try:
        return tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        if missing_ok:
            return {}
        raise InputError(f"{what} {path} does not exist", input=input, hint=hint) from None
    except tomllib.TOMLDecodeError as e:
        raise InputError(f"{path}: not valid TOML: {e}", input=input) from None
