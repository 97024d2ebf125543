"""Tenant app management policies meet the credential stages: read in plan, a lifetime the
policy caps is shortened (and said so, naming the policy), a policy that forbids secrets is a
person's decision, and without the right to read them Entra's refusal is reported naming the
policy. The simulated tenant enforces the policies as Entra does (runner/sim/tenant_policies.py)."""

from __future__ import annotations

import datetime as _dt

import pytest

from runner.errors import InputError
from runner.results import Status
from runner.secrets import Secret
from runner.sim.tenant_policies import DEFAULT_POLICY_ID
from runner.stages import entra_credentials as creds

from .graph_harness import StageCtx, connect, onboard, tenant_view

POLICY_READER = ("Application.ReadWrite.All", "AppRoleAssignment.ReadWrite.All", "Policy.Read.All")
DEFAULT = f"app management policy 'Default app management tenant policy' ({DEFAULT_POLICY_ID})"


def reader(sim, tmp_path):
    op = sim.add_operator(roles=POLICY_READER, display_name="operator who may read policies")
    return connect(sim, tmp_path, client_id=op.client_id, client_secret=Secret(op.client_secret))


def lifetime_days(cred: dict) -> float:
    start = _dt.datetime.fromisoformat(cred["startDateTime"].replace("Z", "+00:00"))
    end = _dt.datetime.fromisoformat(cred["endDateTime"].replace("Z", "+00:00"))
    return (end - start) / _dt.timedelta(days=1)


def test_a_90_day_tenant_policy_shortens_the_secret_in_plan_and_run(sim, tmp_path):
    sim.state.policies.set_default(password_lifetime="P90D")
    plan = onboard(reader(sim, tmp_path), tmp_path, apply=False)["client_secret"]
    assert plan.messages == ["would create client secret 'psrunner' valid 90 days",
                             f"valid 90 days, not 180: the longest {DEFAULT} (passwordLifetime P90D) allows"]
    run = onboard(reader(sim, tmp_path), tmp_path)["client_secret"]
    assert run.changed and run.status is None
    assert run.messages[1] == f"valid 90 days, not 180: the longest {DEFAULT} (passwordLifetime P90D) allows"
    (cred,) = tenant_view(sim)["app"]["passwordCredentials"]
    assert 89.9 < lifetime_days(cred) < 90


def test_a_policy_of_the_application_replaces_the_tenant_default_for_certificates(sim, tmp_path):
    onboard(reader(sim, tmp_path), tmp_path)
    app = tenant_view(sim)["app"]
    sim.state.policies.set_default(certificate_lifetime="P2Y")
    policy = sim.state.policies.add("Short certificates", applies_to=[app], certificate_lifetime="P180D")
    named = f"app management policy 'Short certificates' ({policy['id']}) (asymmetricKeyLifetime P180D)"
    out = onboard(reader(sim, tmp_path), tmp_path, stages=("application", "certificate"))["certificate"]
    assert out.changed and out.messages[-1] == f"valid 180 days, not 365: the longest {named} allows"
    (key,) = tenant_view(sim)["app"]["keyCredentials"]
    assert 179.9 < lifetime_days(key) < 180.01     # the certificate is valid from 5 minutes before it was made


def test_a_policy_that_forbids_secrets_is_a_persons_decision_and_nothing_is_sent(sim, tmp_path):
    onboard(reader(sim, tmp_path), tmp_path, stages=("application",))
    app = tenant_view(sim)["app"]
    policy = sim.state.policies.add("No secrets", applies_to=[app], block_passwords=True)
    sim.requests.reset()
    out = onboard(reader(sim, tmp_path), tmp_path, stages=("application", "client_secret"))["client_secret"]
    says = f"app management policy 'No secrets' ({policy['id']}) (passwordAddition) does not allow client secrets " \
           "on this application"
    assert out.status == Status.ACTION_REQUIRED and out.messages == [says] and out.action["summary"] == says + "."
    assert "POST /v1.0/applications/{id}/addPassword" not in sim.requests.by_route()


def test_a_policy_leaving_no_more_than_the_renewal_horizon_is_refused_naming_both(sim, tmp_path):
    sim.state.policies.set_default(password_lifetime="P30D")
    with pytest.raises(InputError) as ei:
        onboard(reader(sim, tmp_path), tmp_path, apply=False)
    assert ei.value.message.startswith(f"{DEFAULT} (passwordLifetime P30D) allows a new client secret 30 days at most, "
                                    "no more than secret_min_days (30)")
    assert ei.value.fields["input"] == "secret_min_days"


def test_without_the_right_to_read_policies_the_plan_says_so_and_entras_refusal_names_the_policy(sim, tmp_path):
    sim.state.policies.set_default(password_lifetime="P90D")
    plan = onboard(connect(sim, tmp_path), tmp_path, apply=False)["client_secret"]    # no Policy.Read.All
    assert plan.messages[1] == ("app management policies not read (the sign-in may not read app management policies "
                                "(Policy.Read.All)): a tenant policy may still shorten or refuse the client secret")
    with pytest.raises(InputError) as ei:
        onboard(connect(sim, tmp_path), tmp_path)
    assert ei.value.message == (f"Entra refused the credential: app management policy ({DEFAULT_POLICY_ID}) allows a "
                             "shorter lifetime")
    assert ei.value.fields["input"] == "secret_lifetime_days"
    assert tenant_view(sim)["secrets"] == 0
    ok = creds.client_secret(StageCtx(connect(sim, tmp_path), tmp_path, apply=True),
                             {"object_id": tenant_view(sim)["app"]["id"], "unique_name": "m365-backup",
                              "secret_lifetime_days": 90})
    assert ok.changed and tenant_view(sim)["secrets"] == 1
