"""The inventory: layering of defaults, groups and targets; credential references; --limit;
--shard covering a fleet exactly once; a literal secret others can read refused."""

from __future__ import annotations

import os

import pytest

from runner.errors import InputError
from runner.fleet.credentials import CredentialRef
from runner.fleet.inventory import load_inventory, shard

INVENTORY = '''
[defaults]
params = { cloud = "global", host_port = 5986 }
secrets = { host_password = { env = "HOST_PW" } }
deadline = "5m"

[groups.europe]
params = { cloud = "usgov" }
deadline = 60

[targets.contoso]
groups = ["europe", "prod"]
params = { tenant = "contoso.onmicrosoft.com", host = "mgmt01" }
secrets = { spo_password = { keyring = "psrunner/contoso", username = "spo" } }

[targets.fabrikam]
groups = ["prod"]
params = { tenant = "fabrikam.onmicrosoft.com", host = "mgmt02", host_port = 5985 }
secrets = { host_password = { file = "/etc/psrunner/fabrikam.pw" } }
'''


def write(tmp_path, text, mode=0o644):
    p = tmp_path / "fleet.toml"
    p.write_text(text)
    os.chmod(p, mode)
    return p


def test_layers_groups_and_references(tmp_path):
    inv = load_inventory(write(tmp_path, INVENTORY))
    c, f = inv.targets["contoso"], inv.targets["fabrikam"]
    assert c.params == {"cloud": "usgov", "host_port": 5986, "tenant": "contoso.onmicrosoft.com", "host": "mgmt01"}
    assert c.deadline == 60 and f.deadline == 300
    assert f.params["host_port"] == 5985 and f.params["cloud"] == "global"
    assert c.secrets["host_password"].describe() == "env:HOST_PW"
    assert c.secrets["spo_password"].describe() == "keyring:psrunner/contoso/spo"
    assert f.secrets["host_password"].describe() == "file:/etc/psrunner/fabrikam.pw"
    assert [t.name for t in inv.select(["europe"])] == ["contoso"]
    assert [t.name for t in inv.select(["prod"])] == ["contoso", "fabrikam"]
    assert [t.name for t in inv.select(["fabrikam,europe"])] == ["contoso", "fabrikam"]
    with pytest.raises(InputError, match="--limit 'europa' names no target or group") as e:
        inv.select(["europa"])
    assert e.value.hint == "did you mean europe?"


def test_shards_cover_the_fleet_exactly_once(tmp_path):
    text = "\n".join(f'[targets.t{i:03d}]\nparams = {{ tenant = "t{i}.example" }}' for i in range(100))
    targets = load_inventory(write(tmp_path, text)).select()
    for n in (1, 2, 3, 7):
        parts = [shard(targets, f"{i}/{n}") for i in range(1, n + 1)]
        names = [t.name for part in parts for t in part]
        assert sorted(names) == [t.name for t in targets]         # each exactly once
        assert all(parts) and parts == [shard(targets, f"{i}/{n}") for i in range(1, n + 1)]   # stable
    for bad in ("0/3", "4/3", "1-3", "x"):
        with pytest.raises(InputError, match="is not i/n"):
            shard(targets, bad)


def test_a_literal_secret_needs_a_private_file(tmp_path):
    text = INVENTORY.replace('secrets = { host_password = { file = "/etc/psrunner/fabrikam.pw" } }',
                             'secrets = { host_password = "hunter2" }')
    with pytest.raises(InputError) as e:
        load_inventory(write(tmp_path, text, 0o644))
    assert e.value.input == "targets.fabrikam.secrets.host_password" and e.value.exit_code == 2
    assert "hunter2" not in str(e.value)
    inv = load_inventory(write(tmp_path, text, 0o600))
    assert inv.targets["fabrikam"].secrets["host_password"].resolve("host_password").reveal() == "hunter2"


@pytest.mark.parametrize("text, says", [
    ('[targets.a]\nparams = 3', "targets.a.params must be a table"),
    ('[targets.a]\nparamz = {}', "unknown key targets.a.paramz"),
    ('[targets.a]\nsecrets = { p = { env = "X", file = "/y" } }', "targets.a.secrets.p is not a credential reference"),
    ('[targets.a]\nsecrets = { p = { keyring = "svc" } }', "a keyring reference needs a username"),
    ('[targets.a]\ndeadline = "soon"', "targets.a.deadline 'soon' is not a duration"),
    ('[hosts.a]', "unknown table 'hosts'"),
    ('', "has no targets"),
])
def test_mistakes_name_the_key(tmp_path, text, says):
    with pytest.raises(InputError, match=says.replace(".", r"\.").replace("(", r"\(")):
        load_inventory(write(tmp_path, text))


def test_secret_files_must_be_private_regular_files(tmp_path):
    f = tmp_path / "pw"
    f.write_text("s3cret\n")
    os.chmod(f, 0o600)
    ref = CredentialRef.from_source(f"file:{f}")
    assert ref.resolve("p").reveal() == "s3cret"
    os.chmod(f, 0o640)
    with pytest.raises(InputError, match=r"is readable by others \(mode 0640\)"):
        ref.resolve("p")
    with pytest.raises(InputError, match="is a directory"):
        CredentialRef.from_source(f"file:{tmp_path}").resolve("p")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo, 0o600)
    with pytest.raises(InputError, match="is a FIFO"):
        CredentialRef.from_source(f"file:{fifo}").resolve("p")


def test_keyring_reference_reads_the_os_keyring():
    import keyring
    from keyring.backend import KeyringBackend

    class Memory(KeyringBackend):
        priority = 1
        store = {("psrunner/contoso", "spo"): "from-the-keyring"}

        def get_password(self, service, username):
            return self.store.get((service, username))

        def set_password(self, service, username, password):
            self.store[(service, username)] = password

        def delete_password(self, service, username):
            self.store.pop((service, username), None)

    before = keyring.get_keyring()
    keyring.set_keyring(Memory())
    try:
        ref = CredentialRef.from_source("keyring:psrunner/contoso/spo")
        assert ref.resolve("spo_password").reveal() == "from-the-keyring"
        with pytest.raises(InputError, match="the keyring holds nothing for psrunner/contoso / graph"):
            CredentialRef("keyring", "psrunner/contoso", "graph").resolve("graph_client_secret")
    finally:
        keyring.set_keyring(before)
