"""Secret canaries: look for known secret values wherever a run leaves text behind (output,
logs, run directories, web pages), plain and in the encodings a value survives in:
base64 (standard and URL-safe, at each of the three byte alignments, so a value inside a
longer encoded blob is found too) and URL encoding. Also any JSON web token, whoever issued
it: an access token has no business outside memory and the token cache.

    canaries = Canaries([client_secret, host_password])
    hits = canaries.scan(tree_texts(state_dir, skip=("private",)) | {"stdout": out})
    assert hits == []

For any scan a test wants (the demo, `sim serve` at -vv, helpdesk runs, the portal)."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from urllib.parse import quote, quote_plus

JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*")


def _base64_forms(raw: bytes) -> set[str]:
    """The parts of raw's base64 that do not depend on what surrounds it, at the three
    alignments it can have inside a longer blob, standard and URL-safe."""
    out = set()
    for k in range(3):
        text = base64.b64encode(bytes(k) + raw).decode().rstrip("=")
        core = text[4 if k else 0:len(text) - 4]        # drop the groups the neighbours share
        if len(core) >= 8:
            out |= {core, core.replace("+", "-").replace("/", "_")}
    return out


class Canaries:
    def __init__(self, values: Iterable[str]) -> None:
        self.values = sorted({v for v in values if v and len(v) >= 8})
        self.forms: list[tuple[str, str, str]] = []       # (value's first letters, encoding, text)
        for v in self.values:
            label = v[:4] + "…"
            found = {v: "plain", quote(v, safe=""): "url"}
            found.setdefault(quote_plus(v), "url-plus")              # the same text counts once
            found.update({b: "base64" for b in _base64_forms(v.encode())})
            self.forms += [(label, kind, text) for text, kind in sorted(found.items())]

    encodings = 4      # plain, URL-encoded (quote and quote_plus), base64 (standard and URL-safe)

    def scan(self, places: Mapping[str, str | bytes], *, tokens: bool = True) -> list[tuple[str, str, str]]:
        """(place, value's first letters, encoding) of every hit; `tokens` also reports any JWT."""
        hits = []
        for place, content in places.items():
            text = content.decode("utf-8", "replace") if isinstance(content, bytes) else content
            hits += [(place, label, kind) for label, kind, form in self.forms if form in text]
            if tokens and JWT.search(text):
                hits.append((place, JWT.search(text).group(0)[:10] + "…", "json web token"))
        return hits


def tree_texts(root: Path, *, skip: tuple[str, ...] = ()) -> dict[str, bytes]:
    """Every file under `root` (its path relative to root -> content), leaving out the folders
    named in `skip` (where secrets belong, such as private/)."""
    return {str(f.relative_to(root)): f.read_bytes() for f in sorted(Path(root).rglob("*"))
            if f.is_file() and not set(f.relative_to(root).parts[:-1]) & set(skip)}
