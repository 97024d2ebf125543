"""The stage kind `sharepoint.read_settings`: the SharePoint Online tenant settings that
m365-backup-access sets (LegacyAuthProtocolsEnabled, DisableCustomAppAuthentication), read
and told in plain words, changing nothing.

It runs the same template as the setting stage, sharepoint/spo_tenant_settings, with no
desired value and Apply = $false, in plan and in run alike: the template then reads
Get-SPOTenant and never reaches Set-SPOTenant. A desired value given to this kind is refused
before anything is sent, so a runbook cannot turn the read into a write.

What each value means in late 2026 comes from the runbook's platform notices, named by id
(their dates and sources live once, in m365-backup-access's [[notices]]): neither setting
decides any more whether the backup application reaches SharePoint, and the stage says so.

inputs: admin_url; the sign-in: user_name + password, or client_id + tenant_id + thumbprint
(as spo_tenant_settings takes them); lead (optional): the sentence the headline continues,
such as the application check's.
outputs: settings {name: bool}, meanings {name: sentence}, headline"""

from __future__ import annotations

from typing import Any

from ..errors import InputError, stage_input
from ..powershell.result import outcome_from
from ..powershell.templates import render_template
from ..results import Outcome, Status
from ..values import is_unknown
from .base import StageContext, notice_of
from .powershell import invoke
from .sharepoint import _credential_params, _has_sign_in, _text

TEMPLATE = "sharepoint/spo_tenant_settings"
DESIRED = ("LegacyAuthProtocolsEnabled", "DisableCustomAppAuthentication")
IDCRL_NOTICE = "idcrl-blocked"       # the runbook's [[notices]] entries these meanings rest on
ACS_NOTICE = "custom-app-auth"


def _dated(ctx: StageContext, notice_id: str, word: str) -> str:
    """" WORD DATE" with the date of the runbook's notice `notice_id`, or nothing when it
    declares none."""
    n = notice_of(ctx, notice_id)
    return f" {word} {n['date']}" if n else ""


def meanings(ctx: StageContext, settings: dict[str, bool]) -> dict[str, str]:
    """What each value does for the backup application today, in a sentence each."""
    legacy = settings["LegacyAuthProtocolsEnabled"]
    custom = settings["DisableCustomAppAuthentication"]
    return {
        "LegacyAuthProtocolsEnabled": (
            f"LegacyAuthProtocolsEnabled is {legacy}: "
            + ("the tenant still says legacy sign-in is allowed, but " if legacy else "")
            + f"SharePoint Online refuses legacy (IDCRL) sign-in for good{_dated(ctx, IDCRL_NOTICE, 'since')}; "
            "the backup application signs in with modern authentication and does not need it."),
        "DisableCustomAppAuthentication": (
            f"DisableCustomAppAuthentication is {custom}: it only ever gated ACS app-only tokens, "
            f"retired{_dated(ctx, ACS_NOTICE, 'on')}; an application signing in with a certificate reaches "
            "SharePoint whatever it says."),
    }


def headline(ctx: StageContext, settings: dict[str, bool]) -> str:
    """The settings in one sentence a helpdesk can read out."""
    legacy = "on" if settings["LegacyAuthProtocolsEnabled"] else "off"
    custom = "disabled" if settings["DisableCustomAppAuthentication"] else "allowed"
    return (f"The SharePoint settings do not stand in the backup application's way: legacy sign-in is {legacy} "
            f"(refused for good{_dated(ctx, IDCRL_NOTICE, 'since')} whatever it says), custom app authentication is "
            f"{custom} (it only gated ACS app-only, retired{_dated(ctx, ACS_NOTICE, 'on')}).")


def read_settings(ctx: StageContext, inputs: dict[str, Any]) -> Outcome:
    """Read the tenant settings on the stage's host (see module docstring)."""
    wanted = [k for k in inputs if k in DESIRED]
    if wanted:
        raise InputError(f"{stage_input(wanted[0])}: sharepoint.read_settings only reads; it takes no value to set",
                         input=wanted[0], hint="set tenant settings with m365-backup-access")
    admin_url = _text(inputs, "admin_url")
    params, secure = _credential_params(inputs, client_id_name="ClientId")
    unknown = sorted(k for k, v in inputs.items() if is_unknown(v) and k != "lead")
    if unknown:
        return Outcome(changed=False, messages=[f"would read the SharePoint settings once {', '.join(unknown)} "
                                                f"is known"])
    if not admin_url or not _has_sign_in(params):
        raise InputError("reading the SharePoint settings needs the admin URL and a sign-in",
                         input="admin_url" if not admin_url else "user_name",
                         hint="give spo_user and spo_password, or spo_client_id and spo_thumbprint")
    rendered = render_template(TEMPLATE)
    ctx.record_script(rendered.text)
    inv = invoke(ctx, rendered.text, {"AdminUrl": admin_url, **params, "Apply": False}, secure=secure,
                 label=TEMPLATE)
    read = outcome_from(inv, label=TEMPLATE)
    if read.status == Status.FAILED:
        return read
    data = read.outputs if isinstance(read.outputs, dict) else {}
    if not data.get("module_installed", True):
        why = "Microsoft.Online.SharePoint.PowerShell is not installed on the host (m365-backup-access installs it)"
        return Outcome(changed=False, status=Status.FAILED, messages=[why],
                       error={"type": "AccessCheckFailed", "message": f"the SharePoint settings cannot be read: {why}",
                              "exit_code": 1})
    settings = {name: bool((read.after or {}).get(name)) for name in DESIRED}
    told = meanings(ctx, settings)
    lead = inputs.get("lead")
    line = headline(ctx, settings)
    line = f"{lead} {line}" if isinstance(lead, str) and lead else line
    return Outcome(changed=False, before=settings, after=settings,
                   outputs={"settings": settings, "meanings": told, "headline": line},
                   messages=[*((inv.result or {}).get("messages") or []), *told.values()], warnings=read.warnings,
                   streams=read.streams)
