"""Secrets are masked wherever they could leak, and secret files are private."""

from __future__ import annotations

import logging
import os
import pickle
import sys

import pytest

from runner.rundir import dumps
from runner.secrets import MASK, RedactingFilter, Secret, is_private, redact, write_private


def test_secret_never_prints():
    s = Secret("p@ss-w0rd-123", "pw")
    assert str(s) == MASK and f"{s}" == MASK and "p@ss" not in repr(s)
    assert "p@ss" not in dumps({"x": s, "y": [s]})
    with pytest.raises(TypeError):
        pickle.dumps(s)


def test_known_values_are_scrubbed_from_text_and_logs(caplog):
    s = Secret("tok-ABCDEFGHIJ", "token")
    assert redact(f"Bearer {s.reveal()} rest") == f"Bearer {MASK} rest"
    logger = logging.getLogger("psrunner.test.secrets")
    logger.addFilter(RedactingFilter())
    with caplog.at_level(logging.INFO, logger="psrunner.test.secrets"):
        logger.info("header was %s", s.reveal())
    assert "tok-ABCDEFGHIJ" not in caplog.text and MASK in caplog.text
    assert "tok-ABCDEFGHIJ" not in dumps({"note": "value tok-ABCDEFGHIJ seen"})


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX modes")
def test_private_files_are_0600_and_atomic(tmp_path):
    p = write_private(tmp_path / "d" / "secret.txt", "s3cret")
    assert p.read_text() == "s3cret"
    assert oct(os.stat(p).st_mode & 0o777) == "0o600" and is_private(p)
    write_private(p, "again")
    assert p.read_text() == "again" and not list(p.parent.glob(".*tmp"))


def test_tracebacks_logged_with_exc_info_are_scrubbed_too():
    import io
    s = Secret("tok-TRACEBACK-123456", "token")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("psrunner.test.secrets.exc")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        try:
            raise RuntimeError(f"server said {s.reveal()}")
        except RuntimeError:
            logger.error("call failed", exc_info=True, stack_info=True)
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    assert "RuntimeError: server said " + MASK in text
    assert "tok-TRACEBACK-123456" not in text
