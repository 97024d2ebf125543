"""msal's `http_cache` kept between runs, so sign-in does not rediscover the authority each run.

msal keeps the answers to its discovery requests (the authority's OpenID configuration, and
for the public clouds instance discovery) for a day in the mapping given as `http_cache`
(msal's docs, ClientApplication `http_cache`: "If your app is a command-line app (CLI), you
would want to persist your http_cache across different CLI runs"). A CLI that starts afresh
asks again every run: one more round trip before the first token. `HttpCache` is that
mapping, loaded from and saved to a file.

Why it is safe to keep:
- JSON, never pickle (the recipe in msal's docs pickles: a pickle file is code run on load);
- 0600 beside the token cache (runner.secrets.write_private), and read only while it is
  private: a file someone else could write is ignored, not trusted;
- one file per authority, named by a hash of it; only successful GET answers from that
  authority's own host are kept and loaded, so what was learnt for one authority (the
  simulator, another cloud) is never served to another;
- anything unexpected (an unreadable file, a newer msal storing entries differently) means
  starting afresh, never an error: the cache only saves a request.
No tokens are in it (msal: "Content inside http_cache will contain no tokens nor PII")."""

from __future__ import annotations

import hashlib
import heapq
import json
import logging
import time
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..secrets import is_private, write_private

log = logging.getLogger("psrunner.graph.auth")

_INDEX = "_index_"       # msal's _ExpiringMapping keeps its expiry index under this key
_VERSION = 1


class CachedAnswer:
    """A stored answer, shaped like the responses msal reads from its http cache."""

    def __init__(self, status_code: int, text: str, headers: dict[str, str]) -> None:
        self.status_code, self.text, self.headers = status_code, text, headers

    def raise_for_status(self) -> None:
        if self.status_code >= 400:       # never stored: only 2xx answers are kept
            raise ValueError(f"HTTP {self.status_code}")


def cache_file(folder: Path, authority: str) -> Path:
    """Where the cache of `authority` lives in `folder`."""
    digest = hashlib.sha256(authority.lower().rstrip("/").encode()).hexdigest()[:16]
    return folder / f"msal-http-cache-{digest}.json"


class HttpCache(MutableMapping):
    """The mapping msal fills; `load` and `save` move its discovery answers to and from a file."""

    def __init__(self, path: Path, authority: str) -> None:
        self.path = path
        self.authority = authority.lower().rstrip("/")
        self._prefix = f"GET {urlsplit(self.authority).scheme}://{urlsplit(self.authority).netloc}/"
        self._data: dict[str, Any] = {}
        self._loaded: dict[str, Any] = {}

    # ---- the mapping msal uses ------------------------------------------------------
    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._data[key] = value

    def __delitem__(self, key: str) -> None:
        del self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    # ---- the file -------------------------------------------------------------------
    def _keeps(self, key: str) -> bool:
        """A successful GET answer from this authority's host (what msal's discovery asks)."""
        return key.startswith(self._prefix) and key.endswith(" 2xx")

    def load(self) -> HttpCache:
        """Fill the mapping from the file, if there is a usable one."""
        try:
            if not self.path.is_file():
                return self
            if not is_private(self.path):
                log.warning("ignoring %s: it is readable or writable by others", self.path)
                return self
            stored = json.loads(self.path.read_text(encoding="utf-8"))
            if stored.get("version") != _VERSION or stored.get("authority") != self.authority:
                return self
            now = int(time.time())
            sequence, timestamps = [], {}
            for key, e in stored["entries"].items():
                expires, created = int(e["expires_at"]), int(e["created_at"])
                status = int(e["status"])
                if not self._keeps(key) or not 200 <= status < 300 or not created <= now < expires:
                    continue
                self._data[key] = CachedAnswer(status, str(e["text"]), {str(k): str(v) for k, v in e["headers"].items()})
                heapq.heappush(sequence, [expires, created, key])
                timestamps[key] = [expires, created]
            if timestamps:
                self._data[_INDEX] = (sequence, timestamps)
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            log.debug("msal http cache %s not used: %s", self.path, e)
            self._data.clear()
        self._loaded = self._entries()
        return self

    def _entries(self) -> dict[str, Any]:
        """What the file should hold now: this authority's discovery answers, unexpired."""
        index = self._data.get(_INDEX)
        if not (isinstance(index, tuple) and len(index) == 2 and isinstance(index[1], dict)):
            return {}
        now = int(time.time())
        out = {}
        for key, stamps in index[1].items():
            value = self._data.get(key)
            status = getattr(value, "status_code", None)
            if not (self._keeps(key) and isinstance(status, int) and 200 <= status < 300):
                continue
            try:
                expires, created = int(stamps[0]), int(stamps[1])
            except (TypeError, ValueError, IndexError):
                continue
            if created <= now < expires:
                out[key] = {"status": status, "text": str(getattr(value, "text", "")),
                            "headers": {str(k): str(v) for k, v in dict(getattr(value, "headers", {}) or {}).items()},
                            "expires_at": expires, "created_at": created}
        return out

    def save(self) -> None:
        """Write the file when msal learnt something this run (best effort)."""
        entries = self._entries()
        if not entries or entries == self._loaded:
            return
        try:
            write_private(self.path, json.dumps({"version": _VERSION, "authority": self.authority,
                                                 "entries": entries}, indent=1))
            self._loaded = entries
        except OSError as e:
            log.debug("msal http cache %s not saved: %s", self.path, e)
