"""The hand-off report: what the backup product's "Add Microsoft 365 Organization Manually"
form needs, what state each permission is in, what changed on SharePoint, and every action a
person must still take, with the platform notices that explain why. Secrets are never in it:
it says where the secret file is."""

from __future__ import annotations

from typing import Any

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


def _given(v: Any) -> bool:
    return v is not None and v != "" and not isinstance(v, Unknown)


def handoff(ctx: StageContext, inputs: dict[str, Any]) -> Outcome:
    """inputs: any of the FORM_FIELDS keys, plus `permissions` (the consent stage's
    per-permission list), `sharepoint` (the settings stage's before/after)."""
    form = {key: inputs.get(key) for key, _ in FORM_FIELDS if _given(inputs.get(key))}
    pending = {key: str(inputs[key]) for key, _ in FORM_FIELDS if isinstance(inputs.get(key), Unknown)}
    perms = inputs.get("permissions") if isinstance(inputs.get("permissions"), list) else []
    results = ctx.results()
    actions = [{"stage": r.id, "title": r.title, **(r.action or {})}
               for r in results if r.status == Status.ACTION_REQUIRED and r.action]
    failed = [{"stage": r.id, "title": r.title, "message": (r.error or {}).get("message", "")}
              for r in results if r.status == Status.FAILED]
    warnings = [f"{r.id}: {w}" for r in results for w in r.warnings]
    report = {
        "form": form,
        "form_labels": {k: label for k, label in FORM_FIELDS if k in form or k in pending},
        "pending": pending,
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
    if form.get("app_id"):
        msgs.append(f"application (client) id {form['app_id']} in tenant {form.get('tenant_id', '?')}")
    if pending and not ctx.apply:
        msgs.append("some values are known only after the run: " + ", ".join(sorted(pending)))
    if actions:
        msgs.append(f"{len(actions)} action(s) for a person: see 'Action required'")
    return Outcome(changed=False, outputs={"handoff": report}, messages=msgs or ["hand-off report written"])


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
