"""A portal on test runbooks (tests/portal/runbooks), a policy with a helpdesk and an admin
role, and local accounts, driven over HTTP with Starlette's TestClient (httpx)."""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import pytest

pytest.importorskip("starlette")

from runner.portal.accounts import set_account  # noqa: E402
from runner.portal.app import Portal  # noqa: E402
from runner.portal.server import create_app  # noqa: E402
from runner.portal.config import PortalConfig, RunbookSetup  # noqa: E402
from runner.portal.policy import load_policy  # noqa: E402
from runner.secrets import Secret  # noqa: E402
from tests.unit import gate_kind  # noqa: E402

HERE = Path(__file__).parent
PASSWORDS = {"helen": "Helen-desk-pass-1", "ada": "Ada-admin-pass-22", "alan": "Alan-admin-pass-333"}
ROLES = {"helen": ("helpdesk",), "ada": ("admin",), "alan": ("admin",)}
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@pytest.fixture
def gates():
    gate_kind.install()
    yield gate_kind.GATES
    gate_kind.uninstall()


@pytest.fixture
def notes(tmp_path):
    """The server's notes folder, where note-write writes."""
    folder = tmp_path / "notes"
    folder.mkdir()
    return folder


@pytest.fixture
def portal_config(tmp_path, notes):
    books = tmp_path / "runbooks"
    shutil.copytree(HERE / "runbooks", books)
    accounts = tmp_path / "accounts.toml"
    for name, pw in PASSWORDS.items():
        set_account(accounts, name, Secret(pw), ROLES[name], name.title(), cost=2 ** 10)
    return PortalConfig(runbook_dirs=(books,), state_dir=tmp_path / "state", accounts=accounts,
                        policy=load_policy(HERE / "policy.toml"), link_roles=None,
                        runbooks={"note-write": RunbookSetup(params={"folder": str(notes)}),
                                  "admin-only": RunbookSetup(params={"folder": str(notes)}),
                                  "remove-thing": RunbookSetup(params={"folder": str(notes)}),
                                  "gated": RunbookSetup(params={"folder": str(notes)}, max_concurrent=1)})


@pytest.fixture
def portal(portal_config, gates):
    portal = Portal(portal_config, environ={})
    portal.check()
    yield portal
    portal.executor.shutdown(wait=False)


@pytest.fixture
def client_for(portal):
    from starlette.testclient import TestClient
    made = []

    def make(who: str | None = None):
        c = TestClient(create_app(portal), base_url="http://127.0.0.1:8765", follow_redirects=False)
        made.append(c)
        if who is not None:
            sign_in(c, who)
        return c
    yield make
    for c in made:
        c.close()


def csrf_of(client, path: str = "/") -> str:
    page = client.get(path)
    m = CSRF.search(page.text)
    assert m, page.text
    return m.group(1)


def sign_in(client, who: str, password: str | None = None):
    token = csrf_of(client, "/signin")
    resp = client.post("/signin", data={"csrf": token, "name": who, "password": password or PASSWORDS[who],
                                        "next": "/"})
    assert resp.status_code == 303, resp.text
    return resp


def wait_for(portal, rid: str, *states: str, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        req = portal.desk.get(rid)
        if req is not None and req.state in states:
            return req
        time.sleep(0.02)
    raise AssertionError(f"request {rid} is {portal.desk.get(rid).state}, not {states}")


def plan(client, runbook: str, **params) -> str:
    """Post the form; the request id it leads to."""
    token = csrf_of(client, f"/runbooks/{runbook}")
    resp = client.post(f"/runbooks/{runbook}/plan", data={"csrf": token, **{f"p.{k}": v for k, v in params.items()}})
    assert resp.status_code == 303, resp.text
    return resp.headers["location"].rsplit("/", 1)[1]


def step(client, rid: str, action: str, **extra):
    token = csrf_of(client, f"/requests/{rid}")
    return client.post(f"/requests/{rid}/{action}", data={"csrf": token, **extra})
