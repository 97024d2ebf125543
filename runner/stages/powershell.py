"""The `powershell.template` stage kind, and what every kind that runs PowerShell shares.

`powershell.template` renders the stage's template (Jinja2 `vars` choose structure only),
records the script, and runs it on the stage's host with the stage inputs as PowerShell
parameters bound by the template's param() block (`Apply` = run mode; secrets as
SecureStrings). The template's one result hashtable becomes the Outcome
(runner.powershell.result): changed, before/after, outputs = data, messages, streams.

In plan mode an input that is not known yet (an earlier stage's output) means the script
would run once it is: nothing is sent."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import InputError
from ..powershell.result import outcome_from
from ..refs import REF_RE
from ..results import Outcome
from ..secrets import Secret
from ..values import is_unknown
from .base import HostTarget, StageContext

if TYPE_CHECKING:
    from ..powershell.result import Invocation


def invoke(ctx: StageContext, script: str, parameters: dict[str, Any], *,
           secure: set[str] | frozenset[str] = frozenset(), label: str) -> Invocation:
    """Run `script` on the stage's host within the stage's deadline, and count its requests."""
    conn: HostTarget = ctx.target(ctx.stage.target)
    inv = conn.invoke(script, parameters, secure=secure, deadline=ctx.deadline, label=label)
    ctx.count("psrp_stage_wsman_requests", inv.wsman_requests)
    return inv


def _unknowns(values: dict[str, Any]) -> list[str]:
    return sorted(k for k, v in values.items() if is_unknown(v))


def template_parameters(template_id: str, inputs: dict[str, Any]) -> tuple[dict[str, Any], set[str]]:
    """Stage inputs -> PowerShell parameters, checked against the template's param() block:
    unknown names, a missing Mandatory, a secret aimed at a non-SecureString parameter all
    raise InputError before anything is sent."""
    from ..powershell.templates import template_params

    decls = {d.name.lower(): d for d in template_params(template_id)}
    params: dict[str, Any] = {}
    secure: set[str] = set()
    for key, value in inputs.items():
        decl = decls.get(key.lower())
        if decl is None or decl.name == "Apply":
            allowed = ", ".join(d.name for d in decls.values() if d.name != "Apply")
            why = "is set by the run mode (plan/run)" if decl is not None else "is not a parameter of the template"
            raise InputError(f"input {key!r} {why} {template_id}", input=key,
                             hint=f"inputs of {template_id}: {allowed or '(none)'}")
        if value is None or (isinstance(value, Secret) and not value):
            continue
        if isinstance(value, Secret) and not decl.secure:
            raise InputError(f"input {key!r} is a secret but {template_id} declares [{decl.type}]${decl.name}",
                             input=key, hint="secrets go only to [SecureString] parameters")
        if decl.secure:
            if not isinstance(value, (Secret, str)):
                raise InputError(f"input {key!r} must be a secret string", input=key)
            if value == "":
                continue
            secure.add(decl.name)
        params[decl.name] = value
    for decl in decls.values():
        if decl.mandatory and decl.name not in params:
            raise InputError(f"{template_id} needs input {decl.name!r}", input=decl.name,
                             hint=f"add {decl.name} = ... to the stage's inputs")
    return params, secure


def template(ctx: StageContext, inputs: dict[str, Any]) -> Outcome:
    """Run a PowerShell template on the stage's host."""
    from ..powershell.templates import render_template

    inputs = dict(inputs)
    template_id = inputs.pop("template", None)
    tvars = inputs.pop("vars", None) or {}
    if not isinstance(template_id, str) or not template_id:
        raise InputError("powershell.template needs a template id", input="template",
                         hint="e.g. template = \"sharepoint/spo_module\"")
    rendered = render_template(template_id, tvars)
    ctx.record_script(rendered.text)

    unknown = _unknowns(inputs)
    if unknown:
        if ctx.apply:
            raise InputError(f"inputs {', '.join(unknown)} are still unknown while applying", input=unknown[0])
        return Outcome(changed=True, messages=[
            f"{template_id} would run; {', '.join(unknown)} known after an earlier stage applies "
            f"({', '.join(str(inputs[k]) for k in unknown)})"])
    params, secure = template_parameters(template_id, inputs)
    params["Apply"] = bool(ctx.apply)
    inv = invoke(ctx, rendered.text, params, secure=secure, label=template_id)
    out = outcome_from(inv, label=template_id)
    _name_params_of_refusals(ctx, out)
    return out


def _name_params_of_refusals(ctx: StageContext, out: Outcome) -> None:
    """A refusal stops coming back once the runbook stops asking for the refused value: say
    which runbook parameter asks for it and what the platform keeps, so nobody has to read
    the runbook."""
    raw = ctx.stage.inputs
    after = out.after if isinstance(out.after, dict) else {}
    if not isinstance(raw, dict):
        return
    for r in out.refusals:
        m = REF_RE.fullmatch(str(raw.get(r.item, "")).strip())
        if m and m.group(1).startswith("params.") and r.item in after:
            value = after[r.item]
            shown = str(value).lower() if isinstance(value, bool) else value
            r.fix = f"to stop asking, accept the value the platform keeps: -p {m.group(1)[len('params.'):]}={shown}"


__all__ = ["invoke", "template", "template_parameters"]
