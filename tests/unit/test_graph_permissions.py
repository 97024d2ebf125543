"""Permission catalog, the m365-backup profile and the resolution of names to app role ids."""

from __future__ import annotations

import csv
from importlib import resources

import pytest

from runner.errors import InputError
from runner.graph.permissions import (
    EXCHANGE_APP_ID,
    GRAPH_APP_ID,
    M365_BACKUP,
    SHAREPOINT_APP_ID,
    catalog,
    parse_line,
    resolve_permissions,
    wanted_for,
)


def csv_rows():
    text = resources.files("runner").joinpath("data/permissions.csv").read_text(encoding="utf-8")
    return list(csv.DictReader(text.splitlines()))


def sp(app_id, roles, sp_id="sp-1"):
    return {"id": sp_id, "appId": app_id,
            "appRoles": [{"id": rid, "value": name, "allowedMemberTypes": ["Application"], "isEnabled": True}
                         for name, rid in roles.items()]}


def runtime_sps():
    """Resource service principals whose appRoles are exactly the catalog's."""
    by_app: dict[str, dict[str, str]] = {}
    for r in csv_rows():
        by_app.setdefault(r["resource_app_id"], {})[r["permission"]] = r["app_role_id"]
    return {a: sp(a, roles, f"sp-{a[:8]}") for a, roles in by_app.items()}


def test_profile_is_the_seed_table_46_rows_mapping_to_46_catalog_ids():
    assert len(M365_BACKUP) == 46
    wanted, _ = wanted_for("m365-backup")
    assert len(wanted) == 46
    res = resolve_permissions(wanted, None)
    got = {(r.resource_app_id, r.id) for r in res.items}
    oracle = {(r["resource_app_id"], r["app_role_id"]) for r in csv_rows()}
    assert len(oracle) == 46 and got == oracle
    counts = {}
    for r in res.items:
        counts[r.resource_app_id] = counts.get(r.resource_app_id, 0) + 1
    assert counts == {GRAPH_APP_ID: 40, EXCHANGE_APP_ID: 1, SHAREPOINT_APP_ID: 5}


def test_retired_azure_ad_graph_row_maps_to_microsoft_graph_with_a_warning():
    wanted, warnings = wanted_for("m365-backup")
    first = wanted[0]
    assert (first.resource_app_id, first.permission) == (GRAPH_APP_ID, "Calendars.ReadWrite")
    assert first.requested_as == "Azure Active Directory Graph: Calendars.ReadWrite"
    assert len(warnings) == 1 and "retired" in warnings[0] and "Microsoft Graph Calendars.ReadWrite" in warnings[0]


def test_duplicates_collapse_and_extra_lines_add():
    wanted, _ = wanted_for("m365-backup", ["Microsoft Graph: Calendars.ReadWrite", "SharePoint: Sites.Read.All"])
    assert len(wanted) == 46
    wanted, _ = wanted_for(None, ["graph: User.Read.All", "Office 365 Exchange Online: full_access_as_app"])
    assert [(w.resource, w.permission) for w in wanted] == [("Microsoft Graph", "User.Read.All"),
                                                             ("Office 365 Exchange Online", "full_access_as_app")]


@pytest.mark.parametrize("extra,fragment", [
    (["Microsoft Graph: Mail.ReadWriteEverything"], "'Mail.ReadWriteEverything'"),
    (["Microsoft Graph: mail.readwrite"], "did you mean 'Mail.ReadWrite'"),
    (["Yammer: Everything"], "unknown API 'Yammer'"),
    (["Mail.ReadWrite"], "not of the form"),
])
def test_unknown_names_are_input_errors_naming_them(extra, fragment):
    with pytest.raises(InputError) as ei:
        wanted_for(None, extra)
    text = str(ei.value) + (ei.value.hint or "")
    assert fragment in text and ei.value.input == "permissions"


def test_unknown_profile_is_an_input_error():
    with pytest.raises(InputError) as ei:
        wanted_for("everything")
    assert ei.value.input == "profile" and "m365-backup" in ei.value.hint


def test_runtime_ids_match_catalog_without_warnings():
    wanted, _ = wanted_for("m365-backup")
    res = resolve_permissions(wanted, runtime_sps())
    assert res.warnings == []
    assert all(r.source == "runtime" and r.resource_sp_id for r in res.items)
    rra = res.required_resource_access()
    assert [(e["resourceAppId"], len(e["resourceAccess"])) for e in rra] == \
        [(GRAPH_APP_ID, 40), (EXCHANGE_APP_ID, 1), (SHAREPOINT_APP_ID, 5)]
    assert all(a["type"] == "Role" for e in rra for a in e["resourceAccess"])


def test_runtime_id_that_differs_wins_with_a_warning():
    sps = runtime_sps()
    role = next(r for r in sps[GRAPH_APP_ID]["appRoles"] if r["value"] == "Mail.ReadWrite")
    old = role["id"]
    role["id"] = "11111111-2222-3333-4444-555555555555"
    wanted, _ = wanted_for(None, ["Microsoft Graph: Mail.ReadWrite"])
    res = resolve_permissions(wanted, sps)
    assert res.items[0].id == "11111111-2222-3333-4444-555555555555"
    assert len(res.warnings) == 1 and old in res.warnings[0] and "using the tenant's" in res.warnings[0]


def test_resource_missing_from_the_tenant_uses_catalog_ids_and_warns():
    sps = runtime_sps()
    sps[EXCHANGE_APP_ID] = None
    wanted, _ = wanted_for("m365-backup")
    res = resolve_permissions(wanted, sps)
    exo = [r for r in res.items if r.resource_app_id == EXCHANGE_APP_ID]
    assert exo[0].resource_sp_id is None and exo[0].id == "dc890d15-9560-4a4c-9b7f-a736ec74ec40"
    assert any("no service principal in this tenant" in w for w in res.warnings)


def test_permission_absent_at_runtime_is_an_input_error():
    sps = runtime_sps()
    sps[SHAREPOINT_APP_ID]["appRoles"] = [r for r in sps[SHAREPOINT_APP_ID]["appRoles"] if r["value"] != "Sites.Manage.All"]
    wanted, _ = wanted_for("m365-backup")
    with pytest.raises(InputError) as ei:
        resolve_permissions(wanted, sps)
    assert "Sites.Manage.All" in str(ei.value)


def test_delegated_only_role_does_not_resolve_as_application_permission():
    s = sp(GRAPH_APP_ID, {})
    s["appRoles"] = [{"id": "x", "value": "User.Read.All", "allowedMemberTypes": ["User"]}]
    wanted, _ = wanted_for(None, ["Microsoft Graph: User.Read.All"])
    with pytest.raises(InputError):
        resolve_permissions(wanted, {GRAPH_APP_ID: s})


def test_catalog_is_loaded_from_package_data():
    assert len(catalog()) == 46
    w, warn = parse_line("SharePoint: Sites.FullControl.All")
    assert w.resource == "Office 365 SharePoint Online" and warn is None
