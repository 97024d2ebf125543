"""Against a real domain controller: opt-in, read-only, for an admin with a lab.

    export PSRUNNER_LIVE_DC_HOST=dc01.contoso.local          # LDAPS (636) must be enabled
    export PSRUNNER_LIVE_DC_DOMAIN=contoso.local
    export PSRUNNER_LIVE_DC_CA=/path/to/enterprise-ca.pem
    export PSRUNNER_LIVE_DC_USER=svc-psrunner@contoso.local  # any account that may read users
    export PSRUNNER_LIVE_DC_PASSWORD=...
    pytest -m live tests/live/test_live_directory.py

They read the domain policy, the bind account and the built-in Administrator through
`LdapDirectory` and check the shapes the simulated suite asserts, so a difference between a
Windows DC and the Samba DC of the tests shows up here. Nothing is changed."""

from __future__ import annotations

import os

import pytest

from runner.sim.directory.errors import IdentityNotFound
from runner.sim.directory.ldap_directory import LdapDirectory
from runner.sim.directory.protection import protection_of

pytestmark = pytest.mark.live

REQUIRED = ("PSRUNNER_LIVE_DC_HOST", "PSRUNNER_LIVE_DC_DOMAIN", "PSRUNNER_LIVE_DC_CA",
            "PSRUNNER_LIVE_DC_USER", "PSRUNNER_LIVE_DC_PASSWORD")


@pytest.fixture(scope="module")
def live_directory():
    missing = [v for v in REQUIRED if not os.environ.get(v)]
    if missing:
        pytest.skip("live directory tests need " + ", ".join(missing))
    directory = LdapDirectory(os.environ["PSRUNNER_LIVE_DC_HOST"], dns_domain=os.environ["PSRUNNER_LIVE_DC_DOMAIN"],
                              bind_user=os.environ["PSRUNNER_LIVE_DC_USER"],
                              bind_password=os.environ["PSRUNNER_LIVE_DC_PASSWORD"],
                              ca_file=os.environ["PSRUNNER_LIVE_DC_CA"])
    yield directory
    directory.close()


def test_policy_and_accounts_read_as_in_the_simulator(live_directory: LdapDirectory) -> None:
    policy = live_directory.default_password_policy()
    assert policy["DistinguishedName"] == live_directory.domain_dn and policy["MinPasswordLength"] >= 0
    sam = os.environ["PSRUNNER_LIVE_DC_USER"].split("@")[0].split("\\")[-1]
    me = live_directory.get_user(sam, ["LockedOut", "PasswordLastSet", "BadLogonCount", "MemberOf"])
    assert me["SamAccountName"].lower() == sam.lower() and me["LockedOut"] is False
    assert any(g["Name"] == "Domain Users" for g in live_directory.principal_group_membership(sam))
    admin_sid = me["SID"].rsplit("-", 1)[0] + "-500"
    assert protection_of(live_directory, admin_sid).protected
    with pytest.raises(IdentityNotFound):
        live_directory.get_user("psrunner-no-such-account")
