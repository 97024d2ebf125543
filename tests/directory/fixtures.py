"""Pytest fixtures for the directory: a real Samba AD DC per test session, the in-memory
directory, and one fixture that runs a test against both.

Loaded for the whole suite from tests/conftest.py, so any test may ask for:

- `samba_dc` (session): a provisioned, running `SambaDC` on its own 127.x.y.z; the test is
  skipped when Samba cannot run here. Snapshot "provisioned" holds the fresh domain.
- `samba_directory`: an `LdapDirectory` on it as Administrator, domain policy set to
  `TEST_POLICY` at the start of each test.
- `memory_directory`: a fresh `InMemoryDirectory` with `TEST_POLICY` and the clock
  `fake_clock`, which the test moves (`fake_clock.advance(seconds)`).
- `directory_backend`: a `Backend` (directory, advance(seconds), unique(name)), once for
  each of "memory" and "samba" (the latter marked `directory`).
- `kerberos_realm` (session): a krb5.conf for the DC's realm, marked `kerberos` users need.
- `samba_clean_module` (module): put the DC back to "provisioned" before a module's tests.

Tests that need Samba are skipped when it is missing, and the terminal summary then says so
loudly; when it ran, the summary gives the provisioning and restore times."""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

import pytest

from runner.sim.directory.base import Directory
from runner.sim.directory.memory import InMemoryDirectory
from runner.sim.directory.policy import PasswordPolicy
from runner.sim.directory.samba_dc import SambaDC, samba_unavailable_reason

# Policy every directory test starts from: changes allowed at once (no minimum age), a short
# history, lockout after 3 bad passwords for 30 minutes.
TEST_POLICY = PasswordPolicy(min_password_age=timedelta(0), password_history_count=3,
                             lockout_threshold=3, lockout_duration=timedelta(minutes=30),
                             lockout_observation_window=timedelta(minutes=30))
REAL_DIRECTORY_MARKERS = ("directory", "kerberos")

TIMINGS: dict[str, list[float]] = {"provision": [], "restore": []}
# Where a Samba left to its defaults would write; the DC must leave them as they were.
SYSTEM_SAMBA_PATHS = ("/etc/samba", "/var/lib/samba", "/run/samba", "/var/cache/samba", "/var/log/samba",
                      "/etc/krb5.conf")
SYSTEM_STATE_BEFORE: dict[str, tuple[int, int]] = {}
_names = itertools.count(1)


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime.now(timezone.utc).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class Backend:
    """A directory under test, and how time passes for it."""
    name: str
    directory: Directory
    advance: Callable[[float], None]
    extra: dict[str, Any] = field(default_factory=dict)

    def unique(self, prefix: str) -> str:
        """A sAMAccountName (at most 20 characters) no other test uses."""
        return f"{prefix[:12]}{next(_names)}"


def tree_state(paths: tuple[str, ...]) -> dict[str, tuple[int, int]]:
    """(mtime, size) of every file and directory under `paths`."""
    state: dict[str, tuple[int, int]] = {}
    for top in paths:
        for path in [Path(top), *(Path(top).rglob("*") if Path(top).is_dir() else [])]:
            try:
                info = path.lstat()
            except OSError:
                continue
            state[str(path)] = (info.st_mtime_ns, info.st_size)
    return state


@pytest.fixture(scope="session")
def samba_dc(tmp_path_factory: pytest.TempPathFactory):
    reason = samba_unavailable_reason()
    if reason:
        pytest.skip(f"real directory not available: {reason}")
    root = tmp_path_factory.mktemp("samba")
    SYSTEM_STATE_BEFORE.update(tree_state(SYSTEM_SAMBA_PATHS))
    started = time.monotonic()
    dc = SambaDC.provision(root / "dc")
    TIMINGS["provision"].append(time.monotonic() - started)
    dc.snapshot("provisioned")
    try:
        yield dc
    finally:
        dc.stop()


@pytest.fixture(scope="module")
def samba_clean_module(samba_dc: SambaDC) -> SambaDC:
    started = time.monotonic()
    samba_dc.restore("provisioned")
    TIMINGS["restore"].append(time.monotonic() - started)
    return samba_dc


@pytest.fixture(scope="session")
def _samba_session_directory(samba_dc: SambaDC):
    directory = samba_dc.connect()
    yield directory
    directory.close()


@pytest.fixture
def samba_directory(_samba_session_directory):
    _samba_session_directory.set_password_policy(TEST_POLICY)
    return _samba_session_directory


@pytest.fixture
def fake_clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def memory_directory(fake_clock: FakeClock) -> InMemoryDirectory:
    return InMemoryDirectory(policy=TEST_POLICY, clock=fake_clock)


@pytest.fixture(params=["memory", pytest.param("samba", marks=pytest.mark.directory)])
def directory_backend(request: pytest.FixtureRequest) -> Backend:
    if request.param == "memory":
        return Backend("memory", request.getfixturevalue("memory_directory"),
                       request.getfixturevalue("fake_clock").advance)
    request.getfixturevalue("samba_clean_module")
    return Backend("samba", request.getfixturevalue("samba_directory"), time.sleep,
                   {"dc": request.getfixturevalue("samba_dc")})


@pytest.fixture(scope="session")
def kerberos_realm(samba_dc: SambaDC, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A krb5.conf for the DC's realm (its KDC by address, no DNS)."""
    from runner.sim.directory.kerberos import write_krb5_conf

    return write_krb5_conf(samba_dc, tmp_path_factory.mktemp("krb5") / "krb5.conf")


KERBEROS_PASSWORD = "Kerb-Start-Pa55"


@pytest.fixture(scope="module")
def kerberos_service(samba_clean_module: SambaDC, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A host `web01` with an HTTP/ principal and its keytab, and a user `kuser` who may get a
    ticket for it: {"host", "keytab", "principal", "password"} (for this module's DC)."""
    from runner.sim.directory.kerberos import add_service_account, export_keytab

    dc = samba_clean_module
    host = f"web01.{dc.dns_domain}"
    add_service_account(dc, host)
    keytab = export_keytab(dc, f"HTTP/{host}", tmp_path_factory.mktemp("keytab") / "http.keytab")
    directory = dc.connect()
    directory.create_user("kuser", KERBEROS_PASSWORD)
    directory.close()
    return {"host": host, "keytab": keytab, "principal": f"kuser@{dc.realm}", "password": KERBEROS_PASSWORD}


_REAL_DIRECTORY_TESTS: set[str] = set()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    _REAL_DIRECTORY_TESTS.update(item.nodeid for item in items
                                 if any(item.get_closest_marker(m) for m in REAL_DIRECTORY_MARKERS))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Say loudly when the real-directory tests did not run, and how long Samba took when they did."""
    skipped = [r for r in terminalreporter.stats.get("skipped", []) if r.nodeid in _REAL_DIRECTORY_TESTS]
    if skipped:
        reason = samba_unavailable_reason() or "see the skip reasons (-rs)"
        terminalreporter.write_sep(
            "!", f"REAL-DIRECTORY TESTS SKIPPED: {len(skipped)} tests against a Samba AD DC / Kerberos "
                 f"did not run ({reason})", red=True, bold=True)
    if TIMINGS["provision"]:
        restores = TIMINGS["restore"]
        terminalreporter.write_line(
            f"real directory: Samba DC provisioned and started in {TIMINGS['provision'][0]:.1f} s; "
            f"{len(restores)} snapshot restores, {max(restores, default=0):.1f} s at most")
