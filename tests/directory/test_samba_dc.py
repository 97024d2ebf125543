"""The Samba DC manager: its own directory and address, snapshots, and what it refuses."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.sim.directory.errors import IdentityNotFound
from runner.sim.directory.samba_dc import SambaDC, SambaError

from .fixtures import SYSTEM_SAMBA_PATHS, SYSTEM_STATE_BEFORE, tree_state

pytestmark = pytest.mark.directory


def _listening(pid: int) -> set[tuple[str, int]]:
    """(address, port) of every TCP socket the process listens on, from /proc."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        target = str(fd.readlink()) if fd.is_symlink() else ""
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "0A" and fields[9] in inodes:        # 0A: LISTEN
            address, port = fields[1].split(":")
            octets = bytes.fromhex(address)[::-1]
            found.add((".".join(str(b) for b in octets), int(port, 16)))
    return found


def test_listens_only_on_its_own_loopback_address(samba_dc: SambaDC) -> None:
    assert samba_dc.address.startswith("127.") and not samba_dc.address.startswith(("127.0.", "127.1."))
    listening = _listening(samba_dc._process.pid)
    assert {port for _, port in listening} >= {88, 389, 636, 464}
    assert {address for address, _ in listening} == {samba_dc.address}


def test_writes_nothing_outside_its_directory(samba_dc: SambaDC) -> None:
    samba_dc.connect().password_policy()            # it has run and answered
    assert tree_state(SYSTEM_SAMBA_PATHS) == SYSTEM_STATE_BEFORE
    conf = samba_dc.smb_conf.read_text()
    for line in conf.splitlines():
        name, _, value = line.partition("=")
        if value.strip().startswith("/"):            # every path setting points inside
            assert value.strip().startswith(str(samba_dc.directory)), line


def test_restore_puts_the_domain_back(samba_clean_module: SambaDC) -> None:
    dc = samba_clean_module
    directory = dc.connect()
    dc.snapshot("before-user")
    directory.create_user("snapuser", "Start-Pa55-word")
    assert directory.get_user("snapuser")["Enabled"] is True
    dc.restore("before-user")
    with pytest.raises(IdentityNotFound):
        directory.get_user("snapuser")            # the same client reconnects after the restart
    assert dc.running
    with pytest.raises(SambaError, match="no snapshot named 'missing'"):
        dc.restore("missing")


def test_provision_refuses_a_directory_in_use(tmp_path: Path) -> None:
    (tmp_path / "something").write_text("x")
    with pytest.raises(SambaError, match="is not empty"):
        SambaDC.provision(tmp_path)
