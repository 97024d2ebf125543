"""Shared fixtures. Integration fixtures start the real simulators on loopback."""

from __future__ import annotations

import logging
import os

import pytest

from runner.sim.tls import make_tls


@pytest.fixture(scope="session", autouse=True)
def _simulators_are_test_endpoints():
    """The simulators are not Microsoft's hosts: tests opt in to sending tokens to them, as an
    admin rehearsing against `psrunner sim serve` does, from the session's start (module-scoped
    fixtures sign in too). Tests of the refusal take the opt-in away."""
    saved = os.environ.get("PSRUNNER_ALLOW_TEST_ENDPOINTS")
    os.environ["PSRUNNER_ALLOW_TEST_ENDPOINTS"] = "1"
    yield
    if saved is None:
        os.environ.pop("PSRUNNER_ALLOW_TEST_ENDPOINTS", None)
    else:
        os.environ["PSRUNNER_ALLOW_TEST_ENDPOINTS"] = saved


@pytest.fixture(autouse=True)
def _isolated_state(tmp_path, monkeypatch):
    """Every test gets its own state directory and empty config folders (so no runbook of the
    user's or the system's shadows a built-in); nothing touches the user's."""
    monkeypatch.setenv("PSRUNNER_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_CONFIG_DIRS", str(tmp_path / "etc-xdg"))
    monkeypatch.delenv("COLUMNS", raising=False)       # reports wrap only where a test asks
    for var in [v for v in os.environ if v.startswith("PSRUNNER_") and v != "PSRUNNER_STATE_DIR"]:
        if not var.startswith("PSRUNNER_LIVE_"):
            monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PSRUNNER_ALLOW_TEST_ENDPOINTS", "1")     # see _simulators_are_test_endpoints
    yield


@pytest.fixture(autouse=True)
def _restore_psrunner_logger():
    """The CLI points the "psrunner" logger at stderr and stops it propagating; undo that after
    each test so that a later test's caplog still sees psrunner's records, whatever the order."""
    logger = logging.getLogger("psrunner")
    saved = (list(logger.handlers), logger.level, logger.propagate)
    yield
    logger.handlers[:], logger.level, logger.propagate = saved


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    """A throwaway CA and server certificate for the simulators, one per test module."""
    return make_tls(tmp_path_factory.mktemp("tls"))


# Directory fixtures (a real Samba AD DC, the in-memory directory) and the summary line that
# says when the real-directory tests were skipped.
pytest_plugins = ("tests.directory.fixtures",)
