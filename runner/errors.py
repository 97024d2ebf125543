"""The error tree. Every error carries fields (what input, which host, which request) so the
CLI, the run directory and tests can use them without parsing messages.

Exit codes: InputError and its children -> 2; everything else -> 1; Interrupted -> 130."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any


class RunnerError(Exception):
    """Base of every error psrunner raises on purpose."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None, **fields: Any) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.fields = fields

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  fix: {self.hint}"

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"type": type(self).__name__, "message": self.message}
        if self.hint:
            d["hint"] = self.hint
        for k, v in self.fields.items():
            d[k] = v if isinstance(v, (str, int, float, bool, type(None), list, dict)) else str(v)
        return d


class InputError(RunnerError):
    """Bad input or usage: names the input and the fix. Exit code 2."""

    exit_code = 2

    def __init__(self, message: str, *, input: str | None = None, hint: str | None = None, **fields: Any):
        super().__init__(message, hint=hint, input=input, **fields)
        self.input = input


class RunbookError(InputError):
    """A runbook file that does not validate: names the file and the key."""

    def __init__(self, message: str, *, file: str, key: str | None = None, hint: str | None = None):
        where = f"{file}: {key}: " if key else f"{file}: "
        super().__init__(where + message, input=key, hint=hint, file=file, key=key)


class ParamError(InputError):
    """A runbook parameter that is unknown, missing or of the wrong form."""

    def __init__(self, message: str, *, param: str, hint: str | None = None, **fields: Any):
        super().__init__(message, input=param, hint=hint, param=param, **fields)
        self.param = param


class AuthError(InputError):
    """Sign-in failed or the signed-in identity lacks a right. Nothing was changed. Exit 2:
    the operator must fix credentials or rights before a retry can help."""

    def __init__(self, message: str, *, missing: list[str] | None = None, hint: str | None = None, **fields: Any):
        super().__init__(message, hint=hint, missing=missing or [], **fields)
        self.missing = missing or []


class LockedError(RunnerError):
    """Another run holds the lock for the same target."""


class StageFailed(RunnerError):
    """A stage ended badly; raised inside a stage kind to fail it with fields."""


class StageTimeout(RunnerError):
    """A stage ran past its deadline."""


class Interrupted(RunnerError):
    exit_code = 130


class GraphError(RunnerError):
    """A Microsoft Graph call failed. Branch on `code`, never on the message."""

    def __init__(self, message: str, *, status: int | None, code: str | None,
                 request_id: str | None = None, method: str | None = None, url: str | None = None,
                 hint: str | None = None):
        super().__init__(message, hint=hint, status=status, code=code, request_id=request_id,
                         method=method, url=url)
        self.status, self.code, self.request_id = status, code, request_id


class TransportError(RunnerError):
    """A PowerShell host could not be reached or the session broke.

    `kind` is one of: auth, connect, dns, tls, timeout-before-start, timeout-mid-run,
    broken-pool, protocol. `retryable` says whether replaying is safe (it is not once the
    remote pipeline may have started)."""

    def __init__(self, message: str, *, host: str, kind: str, retryable: bool = False,
                 hint: str | None = None, **fields: Any):
        super().__init__(message, hint=hint, host=host, kind=kind, retryable=retryable, **fields)
        self.host, self.kind, self.retryable = host, kind, retryable


class TemplateError(InputError):
    """A template failed to render: names the template and line."""


def closest(word: str, choices: Iterable[str]) -> str | None:
    """The one name among `choices` a mistyped `word` most likely meant (difflib's ratio,
    case-insensitive), or None when nothing is close: a "did you mean" that guesses wildly
    is worse than a list."""
    by_lower = {c.lower(): c for c in choices}
    best = difflib.get_close_matches(word.lower(), list(by_lower), n=1, cutoff=0.75)
    return by_lower[best[0]] if best else None
