"""The hand-off report: what the backup product's "Add Microsoft 365 Organization Manually"
form needs, what state each permission is in, what changed on SharePoint, and every action a
person must still take, with the platform notices that explain why. Secrets are never in it:
it says where the secret file is."""

from __future__ import annotations

from typing import Any

from ..refs import iter_refs
from ..results import Outcome, Status
from ..rundir import RunDir
from ..values import Unknown
from .base import StageContext

FORM_FIELDS = (
    ("tenant_id", "Directory (tenant) ID"),
    ("tenant", "Tenant"),
    ("app_id", "Application (client) ID"),
    ("display_name", "Application name"),
    ("secret_file", "Client secret file (0600)"),
    ("secret_expires", "Client secret expires"),
    ("thumbprint", "Certificate thumbprint"),
    ("pfx_file", "Certificate PFX file (0600)"),
    ("pfx_password_file", "PFX password file (0600)"),
    ("cert_expires", "Certificate expires"),
    ("admin_url", "SharePoint admin URL"),
)
NOT_REQUESTED = "not requested"
# Why the credentials are what they are: the plan says it, since `both` is the default.
CREDENTIAL_WHY = {
    "both": "credential both: the backup product's form asks for a client secret, and SharePoint Online "
            "accepts app-only access only from a certificate",
    "secret": "credential secret: no certificate, so the backup product cannot reach SharePoint Online "
              "app-only (it accepts only certificate sign-in); -p credential=both adds one",
    "certificate": "credential certificate: no client secret, though the backup product's form asks for one; "
                   "-p credential=both adds one",
}


def _given(v: Any) -> bool:
    return v is not None and v != "" and not isinstance(v, Unknown)


def handoff(ctx: StageContext, inputs: dict[str, Any]) -> Outcome:
    """inputs: any of the FORM_FIELDS keys, plus `permissions` (the consent stage's
    per-permission list), `sharepoint` (the settings stage's before/after), `credential` (the
    runbook's choice, which the plan explains)."""
    form = {key: inputs.get(key) for key, _ in FORM_FIELDS if _given(inputs.get(key))}
    not_requested = _not_requested(ctx, form)
    pending = {key: str(inputs[key]) for key, _ in FORM_FIELDS
               if isinstance(inputs.get(key), Unknown) and key not in not_requested}
    perms = inputs.get("permissions") if isinstance(inputs.get("permissions"), list) else []
    results = ctx.results()
    actions = [{"stage": r.id, "title": r.title, **(r.action or {})}
               for r in results if r.status == Status.ACTION_REQUIRED and r.action]
    failed = [{"stage": r.id, "title": r.title, "message": (r.error or {}).get("message", "")}
              for r in results if r.status == Status.FAILED]
    warnings = [f"{r.id}: {w}" for r in results for w in r.warnings]
    report = {
        "form": form,
        "form_labels": {k: label for k, label in FORM_FIELDS if k in form or k in pending or k in not_requested},
        "pending": pending,
        "not_requested": {k: NOT_REQUESTED for k in not_requested},
        "permissions": perms,
        "permissions_summary": _perm_summary(perms),
        "sharepoint": _sharepoint(inputs.get("sharepoint")),
        "actions": actions,
        "failed": failed,
        "warnings": warnings,
        "notices": list(ctx.notices),
    }
    if ctx.run_dir is not None:
        RunDir.at(ctx.run_dir).write_json(RunDir.HANDOFF, report)
    msgs = []
    why = CREDENTIAL_WHY.get(str(inputs.get("credential") or ""))
    if why and not ctx.apply:
        msgs.append(why)
    if form.get("app_id"):
        msgs.append(f"application (client) id {form['app_id']} in tenant {form.get('tenant_id', '?')}")
    if pending and not ctx.apply:
        msgs.append("some values are known only after the run: " + ", ".join(sorted(pending)))
    if actions:
        msgs.append(f"{len(actions)} action(s) for a person: see 'Action required'")
    return Outcome(changed=False, outputs={"handoff": report}, messages=msgs or ["hand-off report written"])


def _not_requested(ctx: StageContext, form: dict[str, Any]) -> list[str]:
    """The form fields whose value only a stage this run skips would give (its `when` is false
    for these parameters, or its target is not given): no run of these parameters produces
    them, so they are not "known after apply"."""
    skipped = {r.id for r in ctx.results() if r.status == Status.SKIPPED}
    out = []
    for key, _ in FORM_FIELDS:
        refs = [ref.split(".") for ref, _ in iter_refs(ctx.stage.inputs.get(key))]
        if key not in form and refs and all(r[0] == "stages" and r[1] in skipped for r in refs):
            out.append(key)
    return out


def _sharepoint(value: Any) -> dict[str, Any] | None:
    """The settings stage's before/after and refusals, when it ran."""
    if not isinstance(value, dict):
        return None
    known = {k: v for k, v in value.items() if _given(v)}
    return known if known.get("before") or known.get("after") else None


def _perm_summary(perms: list[dict[str, Any]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for p in perms:
        state = str(p.get("state", "unknown"))
        out[state] = out.get(state, 0) + 1
    return out
