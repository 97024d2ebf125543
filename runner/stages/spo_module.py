"""The `sharepoint.module` stage kind: Microsoft.Online.SharePoint.PowerShell at the release the
SharePoint sign-in needs, decided from the host's facts when they already say so.

The template (sharepoint/spo_module) reads the installed release, installs a newer one when
it is missing or too old, and imports it. A runbook's host-facts stage has already read the
installed release (windows/host_facts, `Get-Module -ListAvailable` at the same endpoint): given
those facts (`host_facts = "${stages.host-facts.outputs}"`) and a release at or above the
minimum, this stage says so, names the stage that read it, and sends nothing to the host (a
pipeline fewer). In every other case (older, missing, facts not known) the template runs as a
`powershell.template` stage, in a plan as in a run, so a plan still shows what would be
installed. What the shortcut leaves out is the template's Import-Module: spo-settings imports
the module before it signs in, and a module that does not load fails there, by name.

The minimum per sign-in is runner.powershell.modules.spo_module_minimum, the same rule the
template applies (tests/unit/test_ps_modules.py holds them together)."""

from __future__ import annotations

from typing import Any

from ..powershell.modules import SPO_MODULE, spo_module_minimum, text, version_tuple
from ..refs import REF_RE
from ..results import Outcome
from ..values import is_unknown
from .base import StageContext
from .powershell import template

FACTS_INPUT = "host_facts"      # the outputs of the stage that ran windows/host_facts


def ensure_module(ctx: StageContext, inputs: dict[str, Any]) -> Outcome:
    """Decide from the host's facts when they show the module is recent enough; else run the
    template."""
    inputs = dict(inputs)
    facts = inputs.pop(FACTS_INPUT, None)
    decided = _from_facts(ctx, inputs, facts)
    return decided if decided is not None else template(ctx, inputs)


def facts_stage(ctx: StageContext) -> str:
    """The id of the stage whose outputs `host_facts` names in the runbook ('host facts' when
    the input is not one reference)."""
    raw = ctx.stage.inputs.get(FACTS_INPUT) if isinstance(ctx.stage.inputs, dict) else None
    m = REF_RE.fullmatch(str(raw or "").strip())
    parts = m.group(1).split(".") if m else []
    return parts[1] if len(parts) > 1 and parts[0] == "stages" else "host facts"


def _from_facts(ctx: StageContext, inputs: dict[str, Any], facts: Any) -> Outcome | None:
    modules = facts.get("modules") if isinstance(facts, dict) else None
    sign_in = inputs.get("SignIn") or "credential"
    minimum = inputs.get("MinimumVersion") or ""
    if not isinstance(modules, dict) or is_unknown(sign_in) or is_unknown(minimum):
        return None
    installed = version_tuple(modules.get(SPO_MODULE))
    needed = spo_module_minimum(str(sign_in), "")
    wanted = spo_module_minimum(str(sign_in), str(minimum))
    if installed is None or needed is None or wanted is None or installed < wanted:
        return None
    version = str(modules[SPO_MODULE])
    source = facts_stage(ctx)
    messages = []
    if wanted == needed and minimum and version_tuple(str(minimum)) != needed:
        messages.append(f"MinimumVersion {minimum} is older than {sign_in} sign-in needs: ensuring {text(needed)}.")
    messages += [f"{SPO_MODULE} {version} is installed, as the {source} stage read it: at or above "
                 f"{text(wanted)}, which {sign_in} sign-in needs; nothing sent to the host.",
                 "Not imported here: spo-settings imports it before it signs in."]
    outputs = {"module": SPO_MODULE, "version": version, "minimum_version": text(wanted), "sign_in": sign_in,
               "source": "installed", "scope": inputs.get("Scope") or "CurrentUser",
               "ps_edition": facts.get("ps_edition"), "imported": False, "read_by": source}
    return Outcome(changed=False, outputs=outputs, before={"version": version}, after={"version": version},
                   messages=messages)


__all__ = ["ensure_module", "facts_stage", "FACTS_INPUT"]
