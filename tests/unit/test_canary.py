"""The canary helper finds what it must: a value plain, URL-encoded and base64-encoded inside a
longer blob at any alignment, and any JSON web token; and nothing in clean text."""

from __future__ import annotations

import base64
from urllib.parse import quote

from tests.canary import Canaries, tree_texts

VALUE = "Sim-Host-Pa55!/+x"


def test_every_encoding_is_found_wherever_it_sits():
    canaries = Canaries([VALUE])
    for prefix in (b"", b"a", b"ab", b"abc"):
        blob = base64.b64encode(prefix + b'{"password": "' + VALUE.encode() + b'"}').decode()
        assert [kind for _, _, kind in canaries.scan({"log": f"Authorization: Basic {blob}"})] == ["base64"]
        urlsafe = base64.urlsafe_b64encode(prefix + VALUE.encode()).decode()
        assert canaries.scan({"url": urlsafe}) != []
    assert [k for _, _, k in canaries.scan({"q": f"?pw={quote(VALUE, safe='')}&x=1"})] == ["url"]
    assert [k for _, _, k in canaries.scan({"plain": f"said {VALUE}"})] == ["plain"]


def test_a_token_is_found_whoever_issued_it_and_clean_text_passes():
    canaries = Canaries([VALUE])
    token = "eyJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJodHRwczovL2dyYXBoIn0.c2lnbmF0dXJl"
    assert canaries.scan({"log": f"Bearer {token}"})[0][2] == "json web token"
    assert canaries.scan({"log": "graph GET /v1.0/applications -> 200 (12 ms)"}) == []


def test_tree_texts_leaves_out_the_private_folders(tmp_path):
    (tmp_path / "private").mkdir()
    (tmp_path / "private" / "secret.txt").write_text(VALUE)
    (tmp_path / "run.json").write_text("{}")
    assert list(tree_texts(tmp_path, skip=("private",))) == ["run.json"]
