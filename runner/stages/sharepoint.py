"""The SharePoint stage kind `sharepoint.appinv_grant` (the generic `powershell.template`
kind is in powershell.py).

`sharepoint.appinv_grant` makes the appinv.aspx grant of the vendor procedure (steps 15-16):
- backend "server" (SharePoint Server, on-premises/hybrid): done for real with
  Register-SPAppPrincipal / Set-SPAppPrincipalPermission (template appinv_server_grant);
- backend "online": the grant gives Azure ACS app-only access, which SharePoint Online stopped
  honouring on 2026-04-02 (the runbook's `acs-retired` notice holds the date and its source).
  The stage is SKIPPED as obsolete, in one sentence that names what replaced it; the
  permission request XML is still rendered, validated and kept in the run directory. With
  `manual_steps` (for a vendor that insists) a person gets the exact appinv.aspx steps and
  the stage is ACTION_REQUIRED until the grant is there. Where PnP.PowerShell 2.1.0 or later
  can run on the host (PowerShell 7: the endpoint, or pwsh.exe beside Windows PowerShell, as
  host facts say) it reads the ACS principals (appinv_verify), else it says what the host
  lacks: a grant found is reported as present but without effect, and the stage stays
  SKIPPED, never OK (it gives no access).

appinv_grant inputs: backend, app_id, app_domain, admin_url, scope, right, app_only (default
true), manual_steps (default false); server: site_url, display_name; verification sign-in:
user_name + password, or thumbprint + tenant_id, with pnp_client_id (an Entra app of your
own for PnP PowerShell); host_facts: the outputs of a stage that ran windows/host_facts,
whose PowerShell 7 facts then decide where PnP.PowerShell can run without reading them
again (a pipeline fewer; the messages name that stage)."""

from __future__ import annotations

from typing import Any

from ..errors import InputError, TransportError, stage_input
from ..powershell.modules import PNP_MODULE, pnp_verdict
from ..powershell.result import outcome_from
from ..powershell.templates import ALLOWED_RIGHTS, ALLOWED_SCOPES, render_permission_xml, render_template
from ..results import Outcome, Status
from ..values import as_bool, as_secret, as_text, is_unknown
from .base import StageContext, notice_line, notice_of
from .powershell import invoke
from .spo_module import FACTS_INPUT, facts_stage

SERVER_SCOPE = {"http://sharepoint/content/tenant": "SiteSubscription",
                "http://sharepoint/content/sitecollection": "SiteCollection",
                "http://sharepoint/content/sitecollection/web": "Site"}
ACS_NOTICE = "acs-retired"         # the runbook's [[notices]] entry that says what replaced the grant
REPLACED_BY = ("app-only access now comes from the application's Sites.FullControl.All permission with "
               "certificate sign-in, which this runbook grants")


# --------------------------------------------------------------------------- sharepoint.appinv_grant

def _text(inputs: dict[str, Any], key: str, default: str = "") -> Any:
    """A text input, stripped; `default` when empty; an Unknown as it is (known after apply)."""
    v = as_text(inputs.get(key), key)
    if v is None:
        return default
    return v if is_unknown(v) else v.strip()


def _credential_params(inputs: dict[str, Any], *, client_id_name: str) -> tuple[dict[str, Any], set[str]]:
    """SPO sign-in inputs -> template parameters (UserName/Password or certificate app-only)."""
    params: dict[str, Any] = {}
    secure: set[str] = set()
    user = _text(inputs, "user_name") or _text(inputs, "username")
    password = inputs.get("password")
    if user:
        params["UserName"] = user
        password = as_secret(password, "password", name="spo password")
        if password is not None:
            params["Password"] = password
            secure.add("Password")
    keys = (("pnp_client_id" if client_id_name == "PnPClientId" else "client_id", client_id_name),
            ("tenant_id", "TenantId"), ("thumbprint", "Thumbprint"))
    for key, name in keys:
        value = _text(inputs, key)
        if value:
            params[name] = value
    return params, secure


def _has_sign_in(params: dict[str, Any]) -> bool:
    return bool(params.get("Thumbprint") or (params.get("UserName") and params.get("Password")))


def check_grant_inputs(inputs: dict[str, Any]) -> tuple[str, str, str]:
    """What the grant needs that no connection can change, checked before any stage runs:
    backend, scope and right (returned), a site for SharePoint Server, the admin URL and App
    Domain for SharePoint Online."""
    backend = _text(inputs, "backend", "online") or "online"
    if backend not in ("online", "server"):
        raise InputError(f"{stage_input('backend')}: {backend!r} is not online or server", input="backend",
                         hint="online: SharePoint Online (a person finishes it); server: SharePoint Server")
    scope = _text(inputs, "scope", ALLOWED_SCOPES[0]) or ALLOWED_SCOPES[0]
    right = _text(inputs, "right", "FullControl") or "FullControl"
    if scope not in ALLOWED_SCOPES:
        raise InputError(f"{stage_input('scope')}: {scope!r} is not an app permission scope", input="scope",
                         hint="use one of: " + ", ".join(ALLOWED_SCOPES))
    if right not in ALLOWED_RIGHTS:
        raise InputError(f"{stage_input('right')}: {right!r} is not an app permission right", input="right",
                         hint="use one of: " + ", ".join(ALLOWED_RIGHTS))
    if backend == "server":
        if scope not in SERVER_SCOPE:
            raise InputError(f"SharePoint Server grants cover site subscription, site collection or web, "
                             f"not {scope}", input="scope", hint="use " + " or ".join(SERVER_SCOPE))
        if not _text(inputs, "site_url"):
            raise InputError(f"{stage_input('site_url')}: a site of the site subscription to grant on is needed "
                             f"with {stage_input('backend', 'server')}", input="site_url",
                             hint=f"give {stage_input('site_url', 'https://sharepoint.contoso.local')}")
        return backend, scope, right
    admin_url = _text(inputs, "admin_url")
    if is_unknown(admin_url):
        return backend, scope, right
    if not admin_url or not isinstance(admin_url, str) or not admin_url.lower().startswith("https://"):
        raise InputError(f"{stage_input('admin_url')}: {admin_url!r} is not the SharePoint admin URL",
                         input="admin_url", hint="e.g. https://contoso-admin.sharepoint.com")
    if not _text(inputs, "app_domain"):
        raise InputError(f"{stage_input('app_domain')}: needed with {stage_input('backend', 'online')} "
                         "(appinv.aspx asks for it)", input="app_domain",
                         hint="the App Domain of the application, e.g. backup.example.com")
    return backend, scope, right


def appinv_grant(ctx: StageContext, inputs: dict[str, Any]) -> Outcome:
    """The appinv.aspx tenant-scope grant (see module docstring)."""
    inputs = {k: v for k, v in inputs.items() if k not in ("template", "vars")}
    backend, scope, right = check_grant_inputs(inputs)
    app_only = as_bool(inputs.get("app_only", True), "app_only")
    app_id = _text(inputs, "app_id")
    if not app_id and not is_unknown(app_id):   # an Unknown is falsy: known after apply
        raise InputError("appinv_grant needs the application (client) id", input="app_id")
    if backend == "server":
        return _server_grant(ctx, inputs, app_id, scope, right, app_only)
    xml = render_permission_xml(scope, right, app_only)
    ctx.record_script(xml, ext=".xml")
    if as_bool(inputs.get("manual_steps", False), "manual_steps"):
        return _online_grant(ctx, inputs, app_id, scope, right, xml)
    return _online_obsolete(ctx, inputs, app_id, scope, right)


def _server_grant(ctx: StageContext, inputs: dict[str, Any], app_id: Any, scope: str, right: str,
                  app_only: bool) -> Outcome:
    site_url = _text(inputs, "site_url")
    display_name = _text(inputs, "display_name")
    rendered = render_template("sharepoint/appinv_server_grant")
    ctx.record_script(rendered.text)
    if is_unknown(app_id) or is_unknown(display_name):
        return Outcome(changed=True, messages=[
            f"would register the app principal and grant {right} at {SERVER_SCOPE[scope]} (app-only: {app_only}) "
            f"once the application exists ({app_id})"])
    params = {"SiteUrl": site_url, "AppId": app_id, "Scope": SERVER_SCOPE[scope], "Right": right,
              "AppOnly": app_only, "Apply": bool(ctx.apply)}
    if display_name:
        params["DisplayName"] = display_name
    inv = invoke(ctx, rendered.text, params, label="sharepoint/appinv_server_grant")
    return outcome_from(inv, label="sharepoint/appinv_server_grant")


def _online_action(admin_url: str, app_id: Any, app_domain: str, xml: str, notice: str | None) -> dict[str, Any]:
    url = f"{admin_url.rstrip('/')}/_layouts/15/appinv.aspx"
    app = str(app_id)
    steps = [
        f"Sign in as a SharePoint Administrator and open {url}",
        f"In 'App Id' enter {app} and click Lookup (Title and App Domain fill in from the app).",
        f"In 'App Domain' make sure it says {app_domain}.",
        "In 'App's Permission Request XML' paste exactly the XML below.",
        "Click Create, then Trust It in the consent dialog.",
        "Run psrunner again: with PnP.PowerShell in PowerShell 7 on the host it finds the grant, and nothing is left "
        "pending (the grant itself gives no access since ACS was retired).",
    ]
    return {"url": url, "app_id": app, "app_domain": app_domain, "xml": xml, "steps": steps,
            **({"notice": notice} if notice else {})}


def _online_grant(ctx: StageContext, inputs: dict[str, Any], app_id: Any, scope: str, right: str,
                  xml: str) -> Outcome:
    admin_url = str(_text(inputs, "admin_url"))
    app_domain = str(_text(inputs, "app_domain"))
    notice = notice_line(ctx, ACS_NOTICE)
    action = _online_action(admin_url, app_id, app_domain, xml, notice)
    outputs: dict[str, Any] = {"backend": "online", "verified": False, "granted": False, "effective": False,
                               "xml": xml, "url": action["url"]}
    warnings = [notice] if notice else []
    messages: list[str] = []
    if is_unknown(app_id):
        messages.append(f"the grant needs the application id, {app_id}; a person will "
                        f"finish it on {action['url']}")
        return Outcome(changed=False, outputs=outputs, messages=messages, warnings=warnings, action=action,
                       status=Status.ACTION_REQUIRED)

    verdict = _verify(ctx, inputs, admin_url, app_id, scope, right, messages, warnings)
    _verdict_outputs(outputs, verdict)
    if outputs["granted"]:
        messages.append(_without_effect(app_id, verdict, scope))
        return Outcome(changed=False, outputs=outputs, messages=messages, warnings=warnings, status=Status.SKIPPED)
    messages.append(f"SharePoint Online has no API for this grant: a person must finish it on {action['url']}")
    return Outcome(changed=False, outputs=outputs, messages=messages, warnings=warnings, action=action,
                   status=Status.ACTION_REQUIRED)


def _online_obsolete(ctx: StageContext, inputs: dict[str, Any], app_id: Any, scope: str, right: str) -> Outcome:
    """SharePoint Online without manual_steps: nothing to do, and one sentence on why. A
    grant a person made anyway is looked for (when the host can) and called what it is."""
    notice = notice_of(ctx, ACS_NOTICE)
    since = f" since {notice['date']}" if notice else ""
    messages = [f"skipped as obsolete: SharePoint Online has ignored appinv.aspx (ACS app-only) grants{since}; "
                f"{REPLACED_BY}."]
    if ctx.run_dir is not None:
        messages.append(f"the permission request XML is kept in the run directory as scripts/{ctx.stage_id}.xml")
    outputs: dict[str, Any] = {"backend": "online", "obsolete": True, "verified": False, "granted": False,
                               "effective": False}
    if not is_unknown(app_id):
        said: list[str] = []       # the stage stays one sentence; what verifying found is in the outputs
        verdict = _verify(ctx, inputs, str(_text(inputs, "admin_url")), app_id, scope, right, said, [])
        if said:
            outputs["verification"] = said[0]
        _verdict_outputs(outputs, verdict)
        if outputs["granted"]:
            messages.insert(1, _without_effect(app_id, verdict, scope))
    return Outcome(changed=False, outputs=outputs, messages=messages, status=Status.SKIPPED)


def _verdict_outputs(outputs: dict[str, Any], verdict: dict[str, Any] | None) -> None:
    if verdict is not None:
        outputs.update(verified=True, granted=bool(verdict.get("granted")), effective=False,
                       granted_right=verdict.get("granted_right"), allow_app_only=verdict.get("allow_app_only"))


def _without_effect(app_id: Any, verdict: dict[str, Any] | None, scope: str) -> str:
    return (f"an appinv.aspx grant is present ({app_id} holds {(verdict or {}).get('granted_right')} at {scope}) "
            f"but without effect: SharePoint Online no longer issues the ACS app-only tokens it grants")


def _verify(ctx: StageContext, inputs: dict[str, Any], admin_url: str, app_id: str, scope: str, right: str,
            messages: list[str], warnings: list[str]) -> dict[str, Any] | None:
    """Read the ACS principals with PnP.PowerShell where the host can run it (PowerShell 7,
    by its facts); otherwise say what it lacks. None: not verified."""

    params, secure = _credential_params(inputs, client_id_name="PnPClientId")
    if inputs.get("verify") is False:
        return None
    if not _has_sign_in(params):
        messages.append("not verified: no SharePoint sign-in given (user_name + password, or certificate)")
        return None
    try:
        found = _powershell7(ctx, inputs, warnings)
        if found is None:
            return None
        powershell7, read_by = found
        pnp = (powershell7.get("modules") or {}).get(PNP_MODULE)
        why = pnp_verdict(powershell7.get("version"), pnp)
        if why:
            messages.append(f"not verified: {why}{read_by} (PowerShell 7.4.6 or later with, in pwsh, "
                            "Install-Module PnP.PowerShell lets psrunner look for the grant)")
            return None
        if read_by:
            messages.append(f"looked for the grant with PnP.PowerShell {pnp} under PowerShell "
                            f"{powershell7.get('version')}{read_by}")
        rendered = render_template("sharepoint/appinv_verify")
        ctx.record_script(rendered.text, "-verify")
        inv = invoke(ctx, rendered.text, {"Apply": False, "AdminUrl": admin_url, "AppId": app_id, "Scope": scope,
                                          "Right": right, **params}, secure=secure, label="sharepoint/appinv_verify")
    except TransportError as e:
        warnings.append(f"could not verify the grant on {e.host}: {e.message}")
        return None
    if inv.failed:
        warnings.append(f"could not verify the grant: {inv.failure}")
        return None
    return (inv.result or {}).get("data") or {}


def _powershell7(ctx: StageContext, inputs: dict[str, Any], warnings: list[str]) -> tuple[dict[str, Any], str] | None:
    """PowerShell 7 on the host as host facts say (`powershell7`: version and the modules it
    sees, or nothing), with the words that say where they came from: given by the runbook's
    host-facts stage (`host_facts` input, nothing sent), else read now with windows/host_facts.
    None when reading them failed (a warning says so)."""
    given = inputs.get(FACTS_INPUT)
    if isinstance(given, dict) and "powershell7" in given:
        return given.get("powershell7") or {}, f", as the {facts_stage(ctx)} stage read it"
    facts = invoke(ctx, render_template("windows/host_facts").text, {"Apply": False}, label="windows/host_facts")
    if facts.failed:
        warnings.append(f"could not verify the grant: reading the host's facts failed: {facts.failure}")
        return None
    return ((facts.result or {}).get("data") or {}).get("powershell7") or {}, ""


__all__ = ["appinv_grant"]
