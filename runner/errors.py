"""The error tree. Every error carries fields (what input, which host, which request) so the
CLI, the run directory and tests can use them without parsing messages.

Exit codes: InputError and its children -> 2; everything else -> 1; Interrupted -> 130."""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable
from typing import Any

# ---------------------------------------------------------------------------- names in messages
# A transport or a stage kind knows its own settings and inputs (`ca_bundle`, `secret_min_days`),
# not the runbook parameter a person typed (`-p host_ca_bundle=`). So it writes the name
# marked, through setting() or stage_input(), and whoever knows the runbook restates the
# error in the user's terms (runner/user_terms.py); unrestated, the mark reads as the bare name.

_MARK = re.compile(r"\{\{(target|input):([A-Za-z0-9_.]+)(?:=([^}]*))?\}\}")


def setting(name: str, value: Any = None) -> str:
    """`name`, a setting of the target that raises the error, marked for restating
    (`value`: the value to set it to)."""
    return "{{target:" + name + ("" if value is None else f"={value}") + "}}"


def stage_input(name: str, value: Any = None) -> str:
    """`name`, an input of the stage kind that raises the error, marked for restating."""
    return "{{input:" + name + ("" if value is None else f"={value}") + "}}"


def marked_names(text: str | None) -> list[tuple[str, str, str | None]]:
    """(kind "target" | "input", name, value) of every marked name in `text`."""
    return [(m.group(1), m.group(2), m.group(3)) for m in _MARK.finditer(text or "")]


class Naming:
    """How marked names read: in a message, what is named (`name`); in a hint, how to give it
    (`give`). This one, for errors nobody restated, reads the bare setting or input name."""

    def name(self, kind: str, name: str, value: str | None) -> str:
        return name if value is None else f"{name}={value}"

    def give(self, kind: str, name: str, value: str | None) -> str:
        return name if value is None else f"{name} = {value!r}"


PLAIN = Naming()


def _render(text: str | None, say: Callable[[str, str, str | None], str]) -> str | None:
    if text is None:
        return None
    return _MARK.sub(lambda m: say(m.group(1), m.group(2), m.group(3)), text)


class RunnerError(Exception):
    """Base of every error psrunner raises on purpose."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None, **fields: Any) -> None:
        super().__init__(message)
        self.marked_message = message
        self.marked_hint = hint
        self.naming: Naming = PLAIN
        self.fields = fields

    # message and hint read with the names restated (see setting()); assigning sets the text
    @property
    def message(self) -> str:
        return _render(self.marked_message, self.naming.name) or ""

    @message.setter
    def message(self, text: str) -> None:
        self.marked_message = text

    @property
    def hint(self) -> str | None:
        return _render(self.marked_hint, self.naming.give)

    @hint.setter
    def hint(self, text: str | None) -> None:
        self.marked_hint = text

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


class Unavailable(RunnerError):
    """A service (the sign-in service, Graph) stayed unreachable or busy through every retry.
    Exit 1, never 2: nothing the user gave is wrong, and the same run later can succeed."""


class TlsError(RunnerError):
    """A server's certificate did not verify: never retried (waiting does not change who
    answers). `setting` names the CA bundle setting that decides whom to trust."""

    def __init__(self, message: str, *, host: str, setting: str, hint: str | None = None):
        super().__init__(message, hint=hint, host=host, setting=setting)


class TemplateError(InputError):
    """A template failed to render: names the template and line."""


def closest(word: str, choices: Iterable[str]) -> str | None:
    """The one name among `choices` a mistyped `word` most likely meant (difflib's ratio,
    case-insensitive), or None when nothing is close: a "did you mean" that guesses wildly
    is worse than a list."""
    by_lower = {c.lower(): c for c in choices}
    best = difflib.get_close_matches(word.lower(), list(by_lower), n=1, cutoff=0.75)
    return by_lower[best[0]] if best else None
