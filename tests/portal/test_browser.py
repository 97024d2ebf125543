"""End to end in a real browser: Playwright drives Debian's Chromium through the portal on the
simulators (`psrunner serve --demo`). Helen of the helpdesk signs in through the simulated
Entra sign-in page, unlocks jdoe against the host simulator, watches the stages go by and
reads the result; Ada, an admin, reads the audit log. A screenshot of each page is saved under
the test's artifacts ($PSRUNNER_ARTIFACTS, else the pytest temporary folder), which is where
the README's pictures come from.

Marked `browser`; skipped where /usr/bin/chromium is missing (`.ci/run` installs it).
Playwright's own browser download is not used: it drives the system's Chromium."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (/usr/bin/chromium)")]
playwright = pytest.importorskip("playwright.sync_api")

# without the background-networking flags Chromium keeps calling Google's services, which fail
# (and slow everything) on a closed network
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> Path:
    base = os.environ.get("PSRUNNER_ARTIFACTS")
    where = (Path(base) if base else tmp_path_factory.getbasetemp() / "artifacts") / "portal-browser"
    where.mkdir(parents=True, exist_ok=True)
    return where


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from runner.portal.demo import demo_portal
    with demo_portal(tmp_path_factory.mktemp("portal-browser")) as running:
        yield running


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    with playwright.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=str(CHROMIUM), headless=True,
            args=FLAGS, viewport={"width": 1200, "height": 860}, ignore_https_errors=True)
        context.set_default_timeout(15_000)
        yield context
        context.close()


def shot(page, artifacts: Path, name: str) -> None:
    page.screenshot(path=str(artifacts / f"{name}.png"), full_page=True)


def sign_in_with_entra(page, demo, who: str) -> None:
    server, _, _, people = demo
    page.goto(server.url + "/")
    page.get_by_role("link", name="Sign in with Microsoft Entra ID").click()
    page.wait_for_url(re.compile(r".*/oauth2/v2.0/authorize.*"))
    page.get_by_role("button", name=people.upns[who]).click()
    page.wait_for_url(server.url + "/")


def test_helpdesk_unlocks_an_account_in_the_browser(browser, demo, artifacts):
    server, tenant, host, people = demo
    page = browser.new_page()
    page.goto(server.url + "/")
    assert page.url.startswith(server.url + "/signin")
    shot(page, artifacts, "01-signin")
    page.get_by_role("link", name="Sign in with Microsoft Entra ID").click()
    page.wait_for_url(re.compile(r".*/oauth2/v2.0/authorize.*"))
    assert "psrunner portal (demo)" in page.content()
    shot(page, artifacts, "02-entra-sign-in")
    page.get_by_role("button", name=people.upns["helen"]).click()
    page.wait_for_url(server.url + "/")
    assert "Helen Desk" in page.content()
    cookies = {c["name"]: c for c in browser.cookies(server.url)}
    assert cookies["psrunner"]["httpOnly"] and cookies["psrunner"]["sameSite"] == "Strict"
    assert "m365-backup-access" not in page.content()            # an admin runbook is not offered
    shot(page, artifacts, "03-catalog")

    page.get_by_role("link", name="Unlock a locked-out Active Directory account").click()
    assert "OU=Staff,DC=contoso,DC=test" in page.content() and "set by your role" in page.content()
    page.fill("#f-identity", "jdoe")
    shot(page, artifacts, "04-form")
    page.get_by_role("button", name="Plan").click()
    page.wait_for_selector("text=Apply these changes")
    assert "is locked since" in page.content()
    shot(page, artifacts, "05-plan")

    host.faults.set("slow", seconds=0.15)        # long enough to watch the stage run
    try:
        page.get_by_role("button", name="Apply these changes").click()
        page.wait_for_selector("tr[data-stage='unlock'].st-running")
        shot(page, artifacts, "06-live-run")
        page.wait_for_selector("section.report-run.status-succeeded")     # loaded again once the run ended
    finally:
        host.faults.clear("slow")
    assert "run succeeded" in page.content() and "it is now unlocked" in page.content()
    shot(page, artifacts, "07-result")
    assert host.state.directory.get_user("jdoe", ["LockedOut"])["LockedOut"] is False
    page.close()


def test_an_admin_reads_the_audit_log_in_the_browser(browser, demo, artifacts):
    browser.clear_cookies()
    page = browser.new_page()
    sign_in_with_entra(page, demo, "ada")
    page.get_by_role("link", name="Audit").click()
    page.wait_for_selector("table.audit")
    text = page.content()
    assert "ad-unlock-account" in text and "Helen Desk" in text and "sign-in" in text
    shot(page, artifacts, "08-audit")
    page.get_by_role("link", name="Runs").click()
    assert "ad-unlock-account" in page.content()
    shot(page, artifacts, "09-runs")
    page.close()
