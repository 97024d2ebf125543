"""Shared fixtures. Integration fixtures start the real simulators on loopback."""

from __future__ import annotations

import logging
import os

import pytest


@pytest.fixture(autouse=True)
def _isolated_state(tmp_path, monkeypatch):
    """Every test gets its own state directory and empty config folders (so no runbook of the
    user's or the system's shadows a built-in); nothing touches the user's."""
    monkeypatch.setenv("PSRUNNER_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_CONFIG_DIRS", str(tmp_path / "etc-xdg"))
    for var in [v for v in os.environ if v.startswith("PSRUNNER_") and v != "PSRUNNER_STATE_DIR"]:
        if not var.startswith("PSRUNNER_LIVE_"):
            monkeypatch.delenv(var, raising=False)
    yield


@pytest.fixture(autouse=True)
def _restore_psrunner_logger():
    """The CLI points the "psrunner" logger at stderr and stops it propagating; undo that after
    each test so that a later test's caplog still sees psrunner's records, whatever the order."""
    logger = logging.getLogger("psrunner")
    saved = (list(logger.handlers), logger.level, logger.propagate)
    yield
    logger.handlers[:], logger.level, logger.propagate = saved


# Directory fixtures (a real Samba AD DC, the in-memory directory) and the summary line that
# says when the real-directory tests were skipped.
pytest_plugins = ("tests.directory.fixtures",)
