"""msal's http_cache kept in the state directory (runner/graph/http_cache.py), driven by msal's
own caching HTTP client over a small fake transport: a discovery answer learnt in one run is
served in the next without a request; only this authority's successful GETs are kept, as JSON
in a 0600 file; a file someone else could have written, or one about another host, is not
believed."""

from __future__ import annotations

import json
import os

import pytest
from msal.throttled_http_client import ThrottledHttpClient

from runner.graph.http_cache import HttpCache, cache_file

AUTHORITY = "https://login.example.test/contoso.onmicrosoft.com"
DISCOVERY = f"{AUTHORITY}/v2.0/.well-known/openid-configuration"


class Transport:
    """Answers every request 200 with a JSON body, counting them."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def _answer(self, method: str, url: str):
        self.calls.append((method, url))
        return type("Answer", (), {"status_code": 200, "text": json.dumps({"issuer": url}),
                                   "headers": {"Content-Type": "application/json"}})()

    def get(self, url, **kw):
        return self._answer("GET", url)

    def post(self, url, **kw):
        return self._answer("POST", url)

    def close(self):
        pass


def one_run(folder, authority=AUTHORITY, url=DISCOVERY) -> tuple[Transport, HttpCache]:
    """What one psrunner run does: load the cache, let msal ask, save."""
    transport = Transport()
    cache = HttpCache(cache_file(folder, authority), authority).load()
    client = ThrottledHttpClient(transport, http_cache=cache)
    assert json.loads(client.get(url).text) == {"issuer": url}
    client.post(f"{authority}/oauth2/v2.0/token", data={"client_id": "x"})
    cache.save()
    return transport, cache


def test_the_next_run_is_answered_from_the_file(tmp_path):
    first, cache = one_run(tmp_path)
    assert first.calls[0] == ("GET", DISCOVERY)
    second, _ = one_run(tmp_path)
    assert second.calls == [("POST", f"{AUTHORITY}/oauth2/v2.0/token")]      # discovery not asked again
    stored = json.loads(cache.path.read_text())
    assert stored["authority"] == AUTHORITY.lower()
    assert list(stored["entries"]) == [k for k in stored["entries"] if k.startswith(f"GET {DISCOVERY}")]
    assert oct(cache.path.stat().st_mode & 0o777) == "0o600"


def test_each_authority_has_its_own_file(tmp_path):
    other = "https://login.other.test/contoso.onmicrosoft.com"
    assert cache_file(tmp_path, AUTHORITY) != cache_file(tmp_path, other)
    one_run(tmp_path)
    transport, _ = one_run(tmp_path, authority=other, url=f"{other}/v2.0/.well-known/openid-configuration")
    assert transport.calls[0][0] == "GET"


def poison(path, key_url: str) -> None:
    """A cache file with an entry someone planted."""
    stored = json.loads(path.read_text())
    entry = next(iter(stored["entries"].values()))
    stored["entries"] = {f"GET {key_url} hash=x 2xx": {**entry, "text": '{"issuer": "evil"}'}}
    path.write_text(json.dumps(stored))


def test_an_answer_about_another_host_is_never_served(tmp_path):
    _, cache = one_run(tmp_path)
    poison(cache.path, "https://evil.test/contoso.onmicrosoft.com/v2.0/.well-known/openid-configuration")
    loaded = HttpCache(cache.path, AUTHORITY).load()
    assert len(loaded) == 0


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_a_file_others_can_write_is_ignored(tmp_path):
    _, cache = one_run(tmp_path)
    os.chmod(cache.path, 0o666)
    transport, _ = one_run(tmp_path)
    assert transport.calls[0] == ("GET", DISCOVERY)


@pytest.mark.parametrize("text", ["not json", "[]", '{"version": 1, "authority": "%s", "entries": {"GET x": 3}}'
                                  % AUTHORITY.lower()])
def test_an_unreadable_file_means_starting_afresh(tmp_path, text):
    path = cache_file(tmp_path, AUTHORITY)
    path.write_text(text)
    os.chmod(path, 0o600)
    transport, _ = one_run(tmp_path)
    assert transport.calls[0] == ("GET", DISCOVERY)
