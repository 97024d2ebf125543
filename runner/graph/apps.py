"""Idempotent operations on an Entra application: read first, write only what differs, and in
plan mode (apply=False) write nothing and report what would change. Each returns an Outcome.

Request economy matters (Graph throttles per tenant, and people wait): reads use `$select`,
reads that do not depend on each other share one `$batch`, upserts return the created object,
role assignments go 20 to a `$batch`, and what this run has already read or written is kept in
`Facts` so that later stages do not read it again. Where `Facts` says an object was created by
this run (so nothing can hang off it yet), the read is skipped; every write that follows such
a skip is itself safe to repeat (an upsert, or an assignment whose duplicate is recognised), so
a wrong guess (another process racing) still converges.

Identity: the application is found by `uniqueName` (an immutable alternate key), never by
display name, so renaming it in the portal does not make the runner create a second one; it is
created with the documented upsert `PATCH /applications(uniqueName='x')` + `Prefer:
create-if-missing`, which is idempotent, so a dropped connection can be retried without
risking a duplicate (unlike `POST /applications`)."""

from __future__ import annotations

import base64
import datetime as _dt
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ..errors import GraphError, InputError
from ..results import Outcome, Status
from ..secrets import register
from .batch import BatchRequest
from .client import GraphClient
from .responses import GraphResponse, graph_error, is_already_assigned
from .permissions import GRAPH_APP_ID, Resolution, Wanted, resolve, resource_app_ids

APP_SELECT = "id,appId,displayName,uniqueName,requiredResourceAccess,passwordCredentials,keyCredentials"
SP_SELECT = "id,appId,displayName"
SP_RESOURCE_SELECT = "id,appId,displayName,appRoles"
UNIQUE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._~-]{0,119}$")


@dataclass
class Facts:
    """What this run has read or written through one connector."""
    apps: dict[str, dict[str, Any] | None] = field(default_factory=dict)    # uniqueName (lower) -> app
    sps: dict[str, dict[str, Any] | None] = field(default_factory=dict)     # appId -> our SP
    resource_sps: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    created_apps: set[str] = field(default_factory=set)                     # appIds
    created_sps: set[str] = field(default_factory=set)                      # SP object ids

    def app_by_object_id(self, object_id: str) -> dict[str, Any] | None:
        for a in self.apps.values():
            if a and a.get("id") == object_id:
                return a
        return None


# --------------------------------------------------------------------------- helpers

def utcnow() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc)


def iso(dt: _dt.datetime) -> str:
    return dt.astimezone(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: Any) -> _dt.datetime | None:
    """A Graph timestamp ("2027-05-01T12:00:00Z", up to 7 fractional digits) as aware UTC."""
    if not value or not isinstance(value, str):
        return None
    v = value.strip()
    if v.endswith("Z"):
        v = v[:-1] + "+00:00"
    v = re.sub(r"\.(\d+)", lambda m: "." + m.group(1)[:6].ljust(6, "0"), v, count=1)
    try:
        dt = _dt.datetime.fromisoformat(v)
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=_dt.timezone.utc)


def odata_key(value: str) -> str:
    """A string literal for an OData key segment: quotes doubled, then URL-encoded."""
    return quote(value.replace("'", "''"), safe="")


def check_unique_name(unique_name: str) -> str:
    if not isinstance(unique_name, str) or not UNIQUE_NAME_RE.match(unique_name):
        raise InputError(f"unique_name: {unique_name!r} is not a valid unique name", input="unique_name",
                         hint="use letters, digits and . _ ~ - (up to 120 characters), e.g. 'contoso-backup'")
    return unique_name


def app_path(unique_name: str) -> str:
    return f"/applications(uniqueName='{odata_key(unique_name)}')"


def _not_found(resp: GraphResponse) -> bool:
    code = (resp.body or {}).get("error", {}).get("code") if isinstance(resp.body, dict) else None
    return resp.status == 404 and code in (None, "Request_ResourceNotFound", "ResourceNotFound", "NotFound")


def _raise_for(method: str, url: str, resp: GraphResponse) -> None:
    raise graph_error(method, url, resp.status, resp.body, resp.headers)


def _get_one(client: GraphClient, path: str) -> dict[str, Any] | None:
    resp = client.get(path, allow=(404,))
    if resp.status == 404:
        if _not_found(resp):
            return None
        _raise_for("GET", path, resp)
    return resp.body if isinstance(resp.body, dict) else None


def _rra_keys(rra: Iterable[dict[str, Any]]) -> list[tuple[str, str, str]]:
    out = []
    for entry in rra or []:
        res = str(entry.get("resourceAppId", "")).lower()
        for acc in entry.get("resourceAccess") or []:
            out.append((res, str(acc.get("id", "")).lower(), str(acc.get("type", "Role"))))
    return out


def _rra_from_keys(keys: Iterable[tuple[str, str, str]]) -> list[dict[str, Any]]:
    grouped: dict[str, list[dict[str, str]]] = {}
    for res, rid, typ in keys:
        grouped.setdefault(res, []).append({"id": rid, "type": typ})
    return [{"resourceAppId": k, "resourceAccess": v} for k, v in grouped.items()]


# --------------------------------------------------------------------------- reads

def read_state(client: GraphClient, facts: Facts, *, unique_name: str | None = None,
               resources: Iterable[str] = ()) -> dict[str, Any] | None:
    """Read the application (by uniqueName) unless this run already knows it, and the resource
    service principals not yet known, all of them in one filtered list request. Returns the
    application or None.

    Why a filtered list and not a $batch of lookups: a $batch is a POST, and a run that finds
    everything in place should send no write-shaped request at all; `appId in (...)` costs
    the same single round trip."""
    key = unique_name.lower() if unique_name else None
    if key is not None and key not in facts.apps:
        app = _get_one(client, f"{app_path(unique_name)}?$select={APP_SELECT}")  # type: ignore[arg-type]
        if app is not None:
            app.setdefault("passwordCredentials", [])
            app.setdefault("keyCredentials", [])
            app.setdefault("requiredResourceAccess", [])
        facts.apps[key] = app
    res_ids = [r for r in dict.fromkeys(resources) if r not in facts.resource_sps]
    if res_ids:
        flt = "appId in (" + ",".join(f"'{odata_key(r)}'" for r in res_ids) + ")"
        # Spaces as %20, not "+": OData services do not all read "+" as a space in $filter.
        found = client.get_all(f"/servicePrincipals?$filter={quote(flt, safe=chr(39) + '(),%')}"
                               f"&$select={SP_RESOURCE_SELECT}")
        by_app = {str(sp.get("appId", "")).lower(): sp for sp in found}
        for rid in res_ids:
            facts.resource_sps[rid] = by_app.get(rid.lower())
    return facts.apps.get(key) if key is not None else None


def resolve_runtime(client: GraphClient, facts: Facts, wanted: list[Wanted]) -> Resolution:
    read_state(client, facts, resources=resource_app_ids(wanted))
    return resolve(wanted, facts.resource_sps)


def read_app_by_object_id(client: GraphClient, facts: Facts, object_id: str) -> dict[str, Any] | None:
    app = facts.app_by_object_id(object_id)
    if app is not None:
        return app
    app = _get_one(client, f"/applications/{quote(object_id, safe='')}?$select={APP_SELECT}")
    if app is not None:
        app.setdefault("passwordCredentials", [])
        app.setdefault("keyCredentials", [])
        if app.get("uniqueName"):
            facts.apps[str(app["uniqueName"]).lower()] = app
        else:
            facts.apps[f"id:{object_id}"] = app
    return app


# --------------------------------------------------------------------------- application

def _app_outputs(app: dict[str, Any] | None, unique_name: str, display_name: str) -> dict[str, Any]:
    out: dict[str, Any] = {"unique_name": unique_name, "display_name": display_name}
    if app:
        out.update(app_id=app.get("appId"), object_id=app.get("id"),
                   display_name=app.get("displayName") or display_name)
    return out


def ensure_application(client: GraphClient, *, unique_name: str, display_name: str,
                       wanted: list[Wanted], apply: bool, facts: Facts | None = None,
                       remove_extras: bool = False, warnings: Iterable[str] = ()) -> Outcome:
    """The application exists under `unique_name`, with `display_name`, requesting every
    permission in `wanted`. Permissions it requests beyond those are reported, and removed
    only with `remove_extras`."""
    facts = facts if facts is not None else Facts()
    check_unique_name(unique_name)
    if not display_name or not isinstance(display_name, str):
        raise InputError("display_name: required", input="display_name", hint="the name people see in the portal")
    app = read_state(client, facts, unique_name=unique_name, resources=resource_app_ids(wanted))
    resolution = resolve(wanted, facts.resource_sps)
    warns = list(warnings) + resolution.warnings
    desired = _rra_keys(resolution.required_resource_access())

    if app is None:
        after = {"display_name": display_name, "unique_name": unique_name, "permissions": len(desired)}
        if not apply:
            return Outcome(changed=True, outputs=_app_outputs(None, unique_name, display_name),
                           before=None, after=after, warnings=warns,
                           messages=[f"would create application {display_name!r} (uniqueName {unique_name}) "
                                     f"requesting {len(desired)} application permissions"])
        body = {"displayName": display_name, "requiredResourceAccess": _rra_from_keys(desired)}
        resp = client.patch(app_path(unique_name), json=body, headers={"Prefer": "create-if-missing"})
        if resp.status == 201 and isinstance(resp.body, dict) and resp.body.get("id"):
            app = {**body, "passwordCredentials": [], "keyCredentials": [], **resp.body}
            facts.created_apps.add(app["appId"])
            created = True
        else:   # 204: it existed after all (a racing run, or a replay after a drop)
            facts.apps.pop(unique_name.lower(), None)
            app = read_state(client, facts, unique_name=unique_name)
            if app is None:
                raise GraphError(f"application {unique_name} was upserted but cannot be read back",
                                 status=resp.status, code=None, hint="re-run (re-running is safe)")
            created = False
        app.setdefault("uniqueName", unique_name)
        facts.apps[unique_name.lower()] = app
        verb = "created" if created else "updated"
        return Outcome(changed=True, outputs=_app_outputs(app, unique_name, display_name), before=None,
                       after=after, warnings=warns,
                       messages=[f"{verb} application {display_name!r} (appId {app.get('appId')}) "
                                 f"requesting {len(desired)} application permissions"])

    existing = _rra_keys(app.get("requiredResourceAccess") or [])
    existing_set = set(existing)
    desired_set = set(desired)
    missing = [k for k in desired if k not in existing_set]
    extras = [k for k in existing if k not in desired_set]
    rename = (app.get("displayName") or "") != display_name
    def label(k):
        return resolution.label_of(k[0], k[1]) + ("" if k[2] == "Role" else f" ({k[2]})")
    outputs = _app_outputs(app, unique_name, display_name)
    outputs["permissions"] = len(desired)
    outputs["extras"] = [label(k) for k in extras]
    if extras and not remove_extras:
        warns.append(f"the application also requests {len(extras)} permission(s) not in the profile "
                     f"(kept; set remove_extras = true to remove): " + ", ".join(label(k) for k in extras))
    to_remove = extras if remove_extras else []
    if not (missing or to_remove or rename):
        return Outcome(changed=False, outputs=outputs, warnings=warns,
                       messages=[f"application {app.get('displayName')!r} is up to date "
                                 f"({len(desired)} application permissions requested)"])
    patch: dict[str, Any] = {}
    changes: list[tuple[str, str]] = []          # (verb, what)
    if rename:
        patch["displayName"] = display_name
        changes.append(("rename", f"{app.get('displayName')!r} to {display_name!r}"))
    if missing or to_remove:
        keep = [k for k in existing if k not in set(to_remove)]
        patch["requiredResourceAccess"] = _rra_from_keys(keep + missing)
        if missing:
            changes.append(("add", f"{len(missing)} permission(s): " + ", ".join(label(k) for k in missing)))
        if to_remove:
            changes.append(("remove", f"{len(to_remove)} permission(s): " + ", ".join(label(k) for k in to_remove)))
    before = {"display_name": app.get("displayName"), "permissions": len(existing)}
    after = {"display_name": display_name, "permissions": len(existing) + len(missing) - len(to_remove),
             "add": [label(k) for k in missing], "remove": [label(k) for k in to_remove]}
    if not apply:
        return Outcome(changed=True, outputs=outputs, before=before, after=after, warnings=warns,
                       messages=[f"would {verb} {what}" for verb, what in changes])
    client.patch(f"/applications/{app['id']}", json=patch)
    app.update(patch)
    outputs["display_name"] = display_name
    done = {"rename": "renamed", "add": "added", "remove": "removed"}
    return Outcome(changed=True, outputs=outputs, before=before, after=after, warnings=warns,
                   messages=[f"{done[verb]} {what}" for verb, what in changes])


# --------------------------------------------------------------------------- service principal

def ensure_service_principal(client: GraphClient, *, app_id: Any, apply: bool,
                             facts: Facts | None = None, display_name: str | None = None) -> Outcome:
    """The application has a service principal (the object consent is granted to)."""
    facts = facts if facts is not None else Facts()
    if not app_id:          # unknown until the application stage applies
        if apply:
            raise InputError("app_id: required", input="app_id",
                             hint="pass ${stages.<application stage>.outputs.app_id}")
        return Outcome(changed=True, messages=["would create the service principal of the new application"],
                       after={"service_principal": "new"})
    app_id = str(app_id)
    if app_id in facts.sps:
        sp = facts.sps[app_id]
    elif apply and app_id in facts.created_apps:
        sp = None           # created by this run moments ago: it cannot have a service principal yet
    else:
        sp = _get_one(client, f"/servicePrincipals(appId='{odata_key(app_id)}')?$select={SP_SELECT}")
        facts.sps[app_id] = sp
    if sp is not None:
        return Outcome(changed=False, outputs={"sp_id": sp.get("id"), "app_id": app_id},
                       messages=[f"service principal {sp.get('id')} exists"])
    if not apply:
        return Outcome(changed=True, outputs={"app_id": app_id}, after={"service_principal": "new"},
                       messages=[f"would create the service principal of application {app_id}"])
    body: dict[str, Any] = {}
    if display_name:
        body["displayName"] = display_name
    path = f"/servicePrincipals(appId='{odata_key(app_id)}')"
    # lag=True: right after the application is created, this upsert can fail with
    # NoBackingApplicationObject until the application has replicated.
    resp = client.patch(path, json=body, headers={"Prefer": "create-if-missing"}, lag=True)
    if resp.status == 201 and isinstance(resp.body, dict) and resp.body.get("id"):
        sp = resp.body
        facts.created_sps.add(sp["id"])
        verb = "created"
    else:
        sp = _get_one(client, f"{path}?$select={SP_SELECT}")
        if sp is None:
            raise GraphError(f"service principal of {app_id} was upserted but cannot be read back",
                             status=resp.status, code=None, hint="re-run (re-running is safe)")
        verb = "found"
    facts.sps[app_id] = sp
    return Outcome(changed=verb == "created", outputs={"sp_id": sp.get("id"), "app_id": app_id},
                   messages=[f"{verb} service principal {sp.get('id')}"])


# --------------------------------------------------------------------------- consent

def ensure_admin_consent(client: GraphClient, *, sp_id: Any, resolution: Resolution, apply: bool,
                         facts: Facts | None = None) -> Outcome:
    """Admin consent for application permissions = one app role assignment per permission on
    the resource's service principal. Lists what exists, creates only what is missing (20 per
    $batch); a duplicate answer from a racing run counts as done."""
    facts = facts if facts is not None else Facts()
    items = resolution.items
    warns: list[str] = []      # resolution warnings are the application stage's to tell
    if not sp_id:
        if apply:
            raise InputError("sp_id: required", input="sp_id",
                             hint="pass ${stages.<service principal stage>.outputs.sp_id}")
        perms = [{"resource": r.resource, "permission": r.permission, "id": r.id,
                  "state": "would-grant" if r.resource_sp_id else "unavailable"} for r in items]
        todo = [p for p in perms if p["state"] == "would-grant"]
        return Outcome(changed=bool(todo), warnings=warns,
                       outputs={"granted": 0, "added": 0, "missing": [f"{p['resource']}: {p['permission']}" for p in perms],
                                "permissions": perms},
                       after={"grant": len(todo)},
                       messages=[f"would grant admin consent for {len(todo)} application permissions "
                                 "to the new service principal"])
    sp_id = str(sp_id)
    if apply and sp_id in facts.created_sps:
        existing: list[dict[str, Any]] = []     # created by this run: no assignments yet
    else:
        existing = client.get_all(f"/servicePrincipals/{quote(sp_id, safe='')}/appRoleAssignments",
                                  params={"$select": "id,appRoleId,resourceId"})
    have = {(str(a.get("resourceId", "")).lower(), str(a.get("appRoleId", "")).lower()) for a in existing}
    perms: list[dict[str, Any]] = []
    to_grant: list[tuple[int, Any]] = []
    for r in items:
        entry = {"resource": r.resource, "permission": r.permission, "id": r.id}
        if not r.resource_sp_id or not r.id:
            entry["state"] = "unavailable"
        elif (r.resource_sp_id.lower(), r.id.lower()) in have:
            entry["state"] = "granted"
        else:
            entry["state"] = "would-grant" if not apply else "pending"
            to_grant.append((len(perms), r))
        perms.append(entry)
    desired_pairs = {(str(r.resource_sp_id).lower(), str(r.id).lower()) for r in items if r.resource_sp_id}
    extra = [a for a in existing if (str(a.get("resourceId", "")).lower(), str(a.get("appRoleId", "")).lower())
             not in desired_pairs]
    if extra:
        warns.append(f"the service principal holds {len(extra)} other app role assignment(s), left as they are")

    def outputs() -> dict[str, Any]:
        granted = sum(1 for p in perms if p["state"] in ("granted", "added"))
        return {"granted": granted, "added": sum(1 for p in perms if p["state"] == "added"),
                "missing": [f"{p['resource']}: {p['permission']}" for p in perms
                            if p["state"] not in ("granted", "added")],
                "permissions": perms}

    unavailable = [p for p in perms if p["state"] == "unavailable"]
    if unavailable:
        warns.append(f"{len(unavailable)} permission(s) cannot be consented because their API has no "
                     "service principal in this tenant: " + ", ".join(f"{p['resource']}: {p['permission']}"
                                                                       for p in unavailable))
    if not to_grant:
        msg = f"admin consent is in place for {outputs()['granted']} application permissions"
        if unavailable:
            msg = (f"admin consent is in place for {outputs()['granted']} of {len(perms)} application "
                   f"permissions; {len(unavailable)} cannot be granted in this tenant (see the warning)")
        return Outcome(changed=False, outputs=outputs(), warnings=warns, messages=[msg])
    if not apply:
        return Outcome(changed=True, outputs=outputs(), warnings=warns,
                       before={"granted": len(perms) - len(to_grant) - len(unavailable)},
                       after={"grant": [f"{r.resource}: {r.permission}" for _, r in to_grant]},
                       messages=[f"would grant admin consent for {len(to_grant)} application permission(s)"])
    reqs = [BatchRequest(f"g{idx}", "POST",
                         f"/servicePrincipals/{r.resource_sp_id}/appRoleAssignedTo",
                         body={"principalId": sp_id, "resourceId": r.resource_sp_id, "appRoleId": r.id})
            for idx, r in to_grant]
    # lag=True: the service principal may have been created seconds ago ("Not a valid reference
    # update" / Request_ResourceNotFound until it replicates).
    results = client.batch(reqs, lag=True, ok_if=is_already_assigned)
    failures: list[str] = []
    first_error: dict[str, Any] | None = None
    for idx, r in to_grant:
        resp = results.get(f"g{idx}")
        if resp is not None and resp.ok:
            perms[idx]["state"] = "added"
        elif resp is not None and is_already_assigned(resp.status, resp.body):
            perms[idx]["state"] = "granted"
        else:
            perms[idx]["state"] = "failed"
            err = graph_error("POST", reqs[0].url, resp.status if resp else None, resp.body if resp else None,
                              resp.headers if resp else None)
            failures.append(f"{r.resource}: {r.permission}: {err.code or err.status}")
            if first_error is None:
                first_error = err.to_dict()
    out = outputs()
    msgs = [f"granted admin consent for {out['added']} application permission(s)"
            + (f" ({out['granted'] - out['added']} were already granted)" if out['granted'] > out['added'] else "")]
    if failures:
        msgs.append(f"{len(failures)} grant(s) failed (re-run to retry): " + "; ".join(failures[:10]))
        return Outcome(changed=out["added"] > 0, outputs=out, warnings=warns, messages=msgs,
                       status=Status.FAILED, error=first_error)
    return Outcome(changed=out["added"] > 0, outputs=out, warnings=warns, messages=msgs,
                   before={"granted": len(perms) - len(to_grant) - len(unavailable)},
                   after={"granted": out["granted"]})


def needs_graph_role_grant(resolution: Resolution) -> bool:
    return any(r.resource_app_id == GRAPH_APP_ID for r in resolution.items)


# --------------------------------------------------------------------------- client secret

@dataclass
class SecretStore:
    """Where secret values go: `find(key_id)` returns the file holding that credential's value
    (or None), `save(key_id, text)` writes it (0600) and returns its path."""
    find: Callable[[str], Path | None]
    save: Callable[[str, str], Path]


def ensure_client_secret(client: GraphClient, *, object_id: Any, apply: bool, store: SecretStore,
                         name: str = "psrunner", min_days: int = 30, lifetime_days: int = 180,
                         rotate: bool = False, facts: Facts | None = None) -> Outcome:
    """A client secret named `name` valid for more than `min_days` exists. A new one is made
    only when none is; its value (`secretText`, shown once by Graph) goes straight to a 0600
    file and never into outputs, messages or logs."""
    facts = facts if facts is not None else Facts()
    if lifetime_days <= min_days:
        raise InputError(f"secret_lifetime_days ({lifetime_days}) must exceed secret_min_days ({min_days})",
                         input="secret_lifetime_days", hint="a new secret would already be due for renewal")
    if lifetime_days > 730:
        raise InputError("secret_lifetime_days: Entra allows at most 2 years (730 days)", input="secret_lifetime_days")
    if not object_id:
        if apply:
            raise InputError("object_id: required", input="object_id",
                             hint="pass ${stages.<application stage>.outputs.object_id}")
        return Outcome(changed=True, after={"secret": name},
                       messages=[f"would create client secret {name!r} valid {lifetime_days} days"])
    object_id = str(object_id)
    app = read_app_by_object_id(client, facts, object_id)
    if app is None:
        raise InputError(f"object_id: no application with object id {object_id}", input="object_id")
    now = utcnow()
    creds = list(app.get("passwordCredentials") or [])
    ours = [c for c in creds if (c.get("displayName") or "") == name]
    horizon = now + _dt.timedelta(days=min_days)
    valid = [c for c in ours if (parse_time(c.get("endDateTime")) or now) > horizon]
    expiring = [c for c in ours if c not in valid and (parse_time(c.get("endDateTime")) or now) > now]
    warns = []
    best = max(valid, key=lambda c: parse_time(c.get("endDateTime")) or now) if valid else None
    if best is not None and not rotate:
        path = store.find(str(best.get("keyId")))
        outputs = {"key_id": best.get("keyId"), "hint": best.get("hint"),
                   "expires": best.get("endDateTime"), "secret_file": str(path) if path else None}
        if path is None:
            warns.append(f"client secret {name!r} ({best.get('hint')}…) is valid until {best.get('endDateTime')}, "
                         "but its value is not on this machine (Graph shows it once, at creation); "
                         "set rotate = true to create a new one")
        return Outcome(changed=False, outputs=outputs, warnings=warns,
                       messages=[f"client secret {name!r} is valid until {best.get('endDateTime')} "
                                 f"(more than {min_days} days)"])
    end = now + _dt.timedelta(days=lifetime_days)
    for c in expiring:
        warns.append(f"client secret {name!r} {c.get('keyId')} expires {c.get('endDateTime')}: remove it once "
                     "clients use the new one")
    if not apply:
        return Outcome(changed=True, warnings=warns, before={"valid_secrets": len(valid)},
                       after={"secret": name, "expires": iso(end)},
                       messages=[f"would create client secret {name!r} valid until {iso(end)}"])
    before_ids = {str(c.get("keyId")) for c in creds}
    path = f"/applications/{quote(object_id, safe='')}"

    def reconcile() -> GraphResponse | None:
        # The connection dropped after addPassword was sent: a secret may exist whose value we
        # never received. It is useless to us and a liability, so remove it, then add again.
        current = _get_one(client, f"{path}?$select=id,passwordCredentials") or {}
        for c in current.get("passwordCredentials") or []:
            kid = str(c.get("keyId"))
            if kid not in before_ids and (c.get("displayName") or "") == name:
                client.post(f"{path}/removePassword", json={"keyId": kid}, idempotent=True, allow=(400, 404))
                warns.append(f"removed client secret {kid}, created by a request whose answer was lost")
        return None

    resp = client.post(f"{path}/addPassword",
                       json={"passwordCredential": {"displayName": name, "endDateTime": iso(end)}},
                       lag=True, reconcile=reconcile)
    body = resp.body if isinstance(resp.body, dict) else {}
    text = body.get("secretText")
    if not text:
        raise GraphError("addPassword returned no secretText", status=resp.status, code=None,
                         request_id=resp.request_id)
    register(text)
    key_id = str(body.get("keyId"))
    file = store.save(key_id, text)
    del text
    cred = {k: v for k, v in body.items() if k != "secretText"}
    app.setdefault("passwordCredentials", []).append(cred)
    return Outcome(changed=True, warnings=warns,
                   outputs={"key_id": key_id, "hint": body.get("hint"), "expires": body.get("endDateTime"),
                            "secret_file": str(file)},
                   before={"valid_secrets": len(valid)},
                   after={"secret": name, "key_id": key_id, "expires": body.get("endDateTime")},
                   messages=[f"created client secret {name!r} ({body.get('hint')}…), valid until "
                             f"{body.get('endDateTime')}; its value is in {file} (readable by you only)"])


# --------------------------------------------------------------------------- certificate

def key_thumbprint(k: dict[str, Any]) -> str | None:
    """SHA-1 thumbprint (upper hex) of a keyCredential: from its key when Graph returned it,
    else from customKeyIdentifier (base64 of the thumbprint bytes, or the hex itself)."""
    raw = k.get("key")
    if raw:
        from cryptography import x509

        from .certs import CertMaterial, thumbprint_of_der_b64
        try:
            der = base64.b64decode(raw)
            if der[:1] == b"0":           # DER: an ASN.1 SEQUENCE
                return thumbprint_of_der_b64(raw)
            # some answers carry the PEM text base64-encoded
            return CertMaterial(x509.load_pem_x509_certificate(der)).thumbprint
        except ValueError:
            pass                          # unreadable key material: fall back to the identifier
    cki = k.get("customKeyIdentifier")
    if isinstance(cki, str) and cki:
        if re.fullmatch(r"[0-9A-Fa-f]{40}", cki):
            return cki.upper()
        try:
            b = base64.b64decode(cki, validate=True)
            if len(b) == 20:
                return b.hex().upper()
        except ValueError:
            pass
    return None


@dataclass
class CertStore:
    """Where certificate files go: `find(thumbprint)` -> existing PFX path or None;
    `save(thumbprint, pfx_bytes, cert_pem)` -> (pfx_path, cert_path)."""
    find: Callable[[str], Path | None]
    save: Callable[[str, bytes, str], tuple[Path, Path]]


def ensure_certificate(client: GraphClient, *, object_id: Any, apply: bool, store: CertStore,
                       name: str = "psrunner", subject: str | None = None, min_days: int = 30,
                       lifetime_days: int = 365, certificate: Any = None,
                       pfx_password: str | None = None, rotate: bool = False,
                       facts: Facts | None = None, given_path: str | None = None) -> Outcome:
    """A certificate credential valid for more than `min_days` is on the application.

    `certificate` (a certs.CertMaterial) is one the operator supplied; without it a
    self-signed one is generated, its PFX written (0600) before its public part is uploaded, so
    a key never sits on the application without its private half on disk. Existing keys are
    kept: keyCredentials is replaced as a whole by PATCH, so they are sent back with it."""
    from .certs import generate_self_signed

    facts = facts if facts is not None else Facts()
    if not certificate and lifetime_days <= min_days:
        raise InputError(f"cert_lifetime_days ({lifetime_days}) must exceed cert_min_days ({min_days})",
                         input="cert_lifetime_days")
    if not object_id:
        if apply:
            raise InputError("object_id: required", input="object_id",
                             hint="pass ${stages.<application stage>.outputs.object_id}")
        what = f"upload certificate {certificate.thumbprint}" if certificate else \
            f"generate a self-signed certificate valid {lifetime_days} days and upload it"
        return Outcome(changed=True, outputs={"thumbprint": certificate.thumbprint} if certificate else {},
                       messages=[f"would {what} to the new application"])
    object_id = str(object_id)
    app = read_app_by_object_id(client, facts, object_id)
    if app is None:
        raise InputError(f"object_id: no application with object id {object_id}", input="object_id")
    now = utcnow()
    horizon = now + _dt.timedelta(days=min_days)
    keys = list(app.get("keyCredentials") or [])
    warns: list[str] = []

    def valid(k: dict[str, Any]) -> bool:
        return (parse_time(k.get("endDateTime")) or now) > horizon

    if certificate is not None:
        thumb = certificate.thumbprint
        present = [k for k in keys if key_thumbprint(k) == thumb]
        outputs = {"thumbprint": thumb, "expires": iso(certificate.not_after),
                   "pfx_file": given_path if given_path and given_path.lower().endswith((".pfx", ".p12")) else None,
                   "cert_file": given_path}
        if certificate.not_after <= horizon:
            warns.append(f"the given certificate expires {iso(certificate.not_after)}, within {min_days} days")
        if present:
            return Outcome(changed=False, outputs=outputs, warnings=warns,
                           messages=[f"certificate {thumb} is on the application"])
        new_cert = certificate
    else:
        ours = [k for k in keys if (k.get("displayName") or "") == name and valid(k)]
        best = max(ours, key=lambda k: parse_time(k.get("endDateTime")) or now) if ours else None
        if best is not None and not rotate:
            thumb = key_thumbprint(best) or ""
            pfx = store.find(thumb) if thumb else None
            outputs = {"thumbprint": thumb or None, "expires": best.get("endDateTime"),
                       "pfx_file": str(pfx) if pfx else None,
                       "cert_file": str(pfx.with_suffix(".cer")) if pfx and pfx.with_suffix(".cer").exists() else None}
            if pfx is None:
                warns.append(f"certificate {name!r} ({thumb}) is valid until {best.get('endDateTime')}, but its "
                             "private key is not on this machine; set rotate = true to make a new one")
            return Outcome(changed=False, outputs=outputs, warnings=warns,
                           messages=[f"certificate {name!r} ({thumb}) is valid until {best.get('endDateTime')}"])
        if not apply:
            return Outcome(changed=True, warnings=warns, after={"certificate": name, "days": lifetime_days},
                           messages=[f"would generate a self-signed certificate {name!r} valid {lifetime_days} "
                                     "days and upload its public part"])
        new_cert = generate_self_signed(subject or f"psrunner {name}", days=lifetime_days)
        thumb = new_cert.thumbprint
        outputs = {"thumbprint": thumb, "expires": iso(new_cert.not_after)}
    if not apply:
        return Outcome(changed=True, outputs=outputs, warnings=warns, after={"certificate": thumb},
                       messages=[f"would upload certificate {thumb} (valid until {iso(new_cert.not_after)})"])
    if any(not k.get("key") for k in keys):
        # PATCH replaces the collection: every existing key must be sent back whole. The key
        # material is returned only when a single application is read with $select.
        fresh = _get_one(client, f"/applications/{quote(object_id, safe='')}?$select=id,keyCredentials") or {}
        keys = list(fresh.get("keyCredentials") or [])
        if any(not k.get("key") for k in keys):
            raise GraphError("cannot read the key material of the application's existing certificates, so "
                             "uploading a new one would remove them", status=None, code="KeysUnreadable",
                             hint="add the certificate in the portal, or remove the unreadable ones first")
    if certificate is None:
        pfx_path, cert_path = store.save(thumb, new_cert.to_pfx(pfx_password), new_cert.cert_pem())
        outputs.update(pfx_file=str(pfx_path), cert_file=str(cert_path))
    keep = [{k2: v for k2, v in k.items() if k2 in ("customKeyIdentifier", "displayName", "endDateTime", "key",
                                                     "keyId", "startDateTime", "type", "usage")} for k in keys]
    new_key = {"type": "AsymmetricX509Cert", "usage": "Verify", "key": new_cert.der_b64, "displayName": name}
    client.patch(f"/applications/{quote(object_id, safe='')}", json={"keyCredentials": keep + [new_key]}, lag=True)
    app["keyCredentials"] = keep + [{**new_key, "customKeyIdentifier": base64.b64encode(bytes.fromhex(thumb)).decode(),
                                     "endDateTime": iso(new_cert.not_after)}]
    return Outcome(changed=True, outputs=outputs, warnings=warns,
                   before={"certificates": len(keys)}, after={"certificates": len(keys) + 1, "thumbprint": thumb},
                   messages=[f"uploaded certificate {thumb} (valid until {iso(new_cert.not_after)})"
                             + (f"; private key in {outputs.get('pfx_file')}" if outputs.get("pfx_file") and certificate is None else "")])


# --------------------------------------------------------------------------- removal

def remove_application(client: GraphClient, *, apply: bool, unique_name: str | None = None,
                       app_id: str | None = None, purge: bool = False, facts: Facts | None = None) -> Outcome:
    """Offboarding: delete the application; its service principal, role assignments and
    credentials go with it. Deleted applications stay restorable for 30 days unless `purge`."""
    facts = facts if facts is not None else Facts()
    if unique_name:
        check_unique_name(unique_name)
        path = app_path(unique_name)
        what = f"uniqueName {unique_name}"
    elif app_id:
        path = f"/applications(appId='{odata_key(str(app_id))}')"
        what = f"appId {app_id}"
    else:
        raise InputError("remove_application needs unique_name or app_id", input="unique_name")
    app = _get_one(client, f"{path}?$select=id,appId,displayName")
    if app is None:
        return Outcome(changed=False, outputs={"removed": False},
                       messages=[f"no application with {what}: nothing to remove"])
    sp = _get_one(client, f"/servicePrincipals(appId='{odata_key(app['appId'])}')?$select=id")
    gone = [f"application {app.get('displayName')!r} ({app['appId']})"]
    if sp:
        gone.append(f"its service principal {sp['id']} with its app role assignments")
    outputs = {"removed": bool(apply), "app_id": app["appId"], "object_id": app["id"]}
    before = {"application": app["appId"], "service_principal": sp["id"] if sp else None}
    if not apply:
        return Outcome(changed=True, outputs=outputs, before=before, after=None,
                       messages=["would delete " + " and ".join(gone)
                                 + ("" if purge else " (restorable for 30 days from deleted items)")])
    client.delete(f"/applications/{app['id']}", allow=(404,))
    if purge:
        client.delete(f"/directory/deletedItems/{app['id']}", allow=(404,), lag=True)
    for k, v in list(facts.apps.items()):
        if v and v.get("id") == app["id"]:
            facts.apps[k] = None
    facts.sps.pop(app["appId"], None)
    return Outcome(changed=True, outputs=outputs, before=before, after=None,
                   messages=["deleted " + " and ".join(gone) + (" (purged)" if purge else
                                                                 " (restorable for 30 days from deleted items)")])
