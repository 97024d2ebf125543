"""Stage kinds that act on the local machine only (no network)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..results import Outcome
from .base import StageContext


def _path(inputs: dict[str, Any], key: str = "path") -> Path:
    raw = inputs.get(key)
    if not raw or not isinstance(raw, str):
        raise InputError(f"input {key!r} must be a file path", input=key)
    return Path(raw).expanduser()


def _ensure_text(ctx: StageContext, path: Path, text: str) -> Outcome:
    current = path.read_text(encoding="utf-8") if path.is_file() else None
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    outputs = {"path": str(path), "sha256": digest}
    if current == text:
        return Outcome(changed=False, outputs=outputs, messages=[f"{path} is up to date"])
    verb = "create" if current is None else "update"
    before = None if current is None else {"sha256": hashlib.sha256(current.encode()).hexdigest()[:16]}
    if ctx.apply:
        from ..rundir import atomic_write
        atomic_write(path, text)
        msg = f"{verb}d {path}"
    else:
        msg = f"would {verb} {path}"
    return Outcome(changed=True, outputs=outputs, before=before, after={"sha256": digest}, messages=[msg])


def ensure_file(ctx: StageContext, inputs: dict[str, Any]) -> Outcome:
    """inputs: path, content (text)."""
    content = inputs.get("content", "")
    if not isinstance(content, str):
        raise InputError("input 'content' must be text", input="content")
    return _ensure_text(ctx, _path(inputs), content)


def ensure_script_file(ctx: StageContext, inputs: dict[str, Any]) -> Outcome:
    """inputs: path (where to write), template and vars (from the stage). The script holds
    no values: a person runs it with its parameters (see the param() block at its top)."""
    from ..powershell.templates import render_template
    rendered = render_template(inputs["template"], inputs.get("vars") or {})
    out = _ensure_text(ctx, _path(inputs), rendered.text)
    out.outputs["template"] = inputs["template"]
    return out


def notices(ctx: StageContext, inputs: dict[str, Any]) -> Outcome:
    """Report the runbook's platform notices that apply to this run, as warnings, so they
    stand in the stage table and not only at the end."""
    items = list(ctx.notices)
    return Outcome(changed=False, outputs={"notices": [n["id"] for n in items]},
                   messages=[f"{len(items)} platform notice(s) apply to this run"] if items else
                   ["no platform notices apply"],
                   warnings=[f"{n['date']}: {n['title']}" for n in items])
