"""Without Samba the real-directory tests are skipped, and the end of the run says so loudly."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_summary_says_when_the_real_directory_tests_were_skipped(tmp_path: Path) -> None:
    (tmp_path / "no_samba_here.py").write_text(
        "import tests.directory.fixtures as fixtures\n"
        "fixtures.samba_unavailable_reason = lambda: 'samba is not installed'\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO)])}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no_samba_here", "-p", "no:cacheprovider",
         "-W", "ignore::pytest.PytestAssertRewriteWarning",
         "tests/directory/test_samba_dc.py::test_listens_only_on_its_own_loopback_address",
         "tests/directory/test_rules.py::test_filetimes"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert ("REAL-DIRECTORY TESTS SKIPPED: 1 tests against a Samba AD DC / Kerberos did not run "
            "(samba is not installed)") in done.stdout
    assert "1 passed, 1 skipped" in done.stdout
