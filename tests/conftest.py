"""Shared fixtures. Integration fixtures start the real simulators on loopback."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def _isolated_state(tmp_path, monkeypatch):
    """Every test gets its own state directory; nothing touches the user's."""
    monkeypatch.setenv("PSRUNNER_STATE_DIR", str(tmp_path / "state"))
    for var in [v for v in os.environ if v.startswith("PSRUNNER_") and v != "PSRUNNER_STATE_DIR"]:
        if not var.startswith("PSRUNNER_LIVE_"):
            monkeypatch.delenv(var, raising=False)
    yield
