"""Stage kinds that act on the local machine only (no network)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from ..errors import InputError, closest, stage_input
from ..results import Outcome
from ..values import as_bool
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


def check_script_inputs(inputs: dict[str, Any]) -> dict[str, Any]:
    """The values to show in the script's example command lines (`arguments`), each one a
    parameter of the template (not Apply: the examples set it)."""
    from ..powershell.templates import template_params
    arguments = inputs.get("arguments") or {}
    if not isinstance(arguments, dict):
        raise InputError(f"{stage_input('arguments')}: must be a table of the script's parameters",
                         input="arguments", hint="e.g. arguments = { AdminUrl = \"${params.admin_url}\" }")
    declared = {d.name.lower(): d.name for d in template_params(inputs["template"]) if d.name.lower() != "apply"}
    for name in arguments:
        if name.lower() not in declared:
            guess = closest(name, declared.values())
            raise InputError(f"{stage_input('arguments')}: template {inputs['template']} has no parameter {name!r}",
                             input="arguments", hint=(f"did you mean {guess}? " if guess else "")
                             + "its parameters: " + ", ".join(declared.values()))
    as_bool(inputs.get("read_only", False), "read_only")
    return arguments


def ensure_script_file(ctx: StageContext, inputs: dict[str, Any]) -> Outcome:
    """inputs: path (where to write), template and vars (from the stage), arguments (values
    for the script's parameters, shown in its .EXAMPLE command lines), read_only (a script
    that only reads: one example, no Apply). The script holds no values: a person runs it
    with the command line its help shows."""
    from ..powershell.script_help import examples, with_examples
    from ..powershell.templates import render_template, template_params
    arguments = check_script_inputs(inputs)
    path = _path(inputs)
    lines = examples(path.name, template_params(inputs["template"]), arguments,
                     read_only=as_bool(inputs.get("read_only", False), "read_only"))
    rendered = render_template(inputs["template"], inputs.get("vars") or {})
    out = _ensure_text(ctx, path, with_examples(rendered.text, lines))
    out.outputs.update(template=inputs["template"], command=lines[-1][0])
    out.messages.append(f"on the host, from its folder: {lines[-1][0]}")
    return out


def notices(ctx: StageContext, inputs: dict[str, Any]) -> Outcome:
    """Report the runbook's platform notices that apply to this run, as warnings, so they
    stand in the stage table and not only at the end."""
    items = list(ctx.notices)
    return Outcome(changed=False, outputs={"notices": [n["id"] for n in items]},
                   messages=[f"{len(items)} platform notice(s) apply to this run"] if items else
                   ["no platform notices apply"],
                   warnings=[f"{n['date']}: {n['title']}" for n in items])
