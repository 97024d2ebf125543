"""Errors in the user's terms. A target knows its settings (`ca_bundle`, `auth`), a stage kind
its inputs (`secret_min_days`); a person typed runbook parameters (`-p host_ca_bundle=`,
`-p secret_renew_days=`). The runbook knows which parameter feeds which setting or input
(`ca_bundle = "${params.host_ca_bundle}"`), so an error raised below the runbook is restated
here before anyone reads it: the names it marks (runner.errors.setting / stage_input) become
the parameter and how to give it, and an InputError about one setting or input becomes a
ParamError about the parameter behind it."""

from __future__ import annotations

from typing import Any

from .errors import PLAIN, InputError, Naming, ParamError, RunnerError
from .refs import REF_RE
from .runbook import Param, Runbook, Stage
from .values import spec_hint


def param_feeding(runbook: Runbook, raw: Any) -> Param | None:
    """The parameter a setting or input as written (`"${params.NAME}"`) takes whole, if any."""
    m = REF_RE.fullmatch(raw.strip()) if isinstance(raw, str) else None
    if m is None or m.group(2) or not m.group(1).startswith("params."):
        return None
    return runbook.params.get(m.group(1)[len("params."):])


def how_to_give(p: Param, value: str | None = None) -> str:
    """A parameter as a person gives it: `-p NAME=VALUE`, or where a secret comes from."""
    if p.secret:
        return f"{p.env_var} (or --secret-file {p.name}=PATH)"
    return f"-p {p.name}={'...' if value is None else value}"


class Terms(Naming):
    """The names of one target and one stage of a runbook, in the user's terms."""

    def __init__(self, runbook: Runbook, *, target: str | None = None, stage: Stage | None = None) -> None:
        self.runbook, self.stage = runbook, stage
        self.target = target if target is not None else (stage.target if stage else None)

    def _written(self, kind: str, name: str) -> tuple[str, Any] | None:
        """(where in the runbook, value as written) of a setting or input; None without context."""
        if kind == "target" and self.target in self.runbook.targets:
            return f"targets.{self.target}.{name}", self.runbook.targets[self.target].settings.get(name)
        if kind == "input" and self.stage is not None:
            return f"stages.{self.stage.id}.inputs.{name}", self.stage.inputs.get(name)
        return None

    def param(self, kind: str, name: str) -> Param | None:
        written = self._written(kind, name)
        return param_feeding(self.runbook, written[1]) if written else None

    def name(self, kind: str, name: str, value: str | None) -> str:
        """A marked name in a message: the parameter's name, or where it is in the runbook."""
        written = self._written(kind, name)
        if written is None:
            return PLAIN.name(kind, name, value)
        p = param_feeding(self.runbook, written[1])
        return PLAIN.name(kind, p.name if p is not None else written[0], value)

    def give(self, kind: str, name: str, value: str | None) -> str:
        """A marked name in a hint: how to give the parameter, or where to set it in the runbook."""
        written = self._written(kind, name)
        if written is None:
            return PLAIN.give(kind, name, value)
        p = param_feeding(self.runbook, written[1])
        return how_to_give(p, value) if p is not None else PLAIN.give(kind, written[0], value)

    def restate(self, e: RunnerError) -> RunnerError:
        """`e` with its marked names restated; an InputError about one setting or input fed by
        a parameter (its `input`) becomes a ParamError about that parameter."""
        e.naming = self
        if not isinstance(e, InputError) or isinstance(e, ParamError) or not e.input:
            return e
        kind, name = self._subject(str(e.input))
        p = self.param(kind, name) if kind else None
        if p is None:
            return e
        text = e.message
        for lead in (f"targets.{self.target}.{name}: ", f"{name}: ", f"{p.name}: "):
            if text.startswith(lead):
                text = text[len(lead):]
                break
        hint = e.hint
        if p.secret:
            hint = f"set {how_to_give(p)}, or run on a terminal to be prompted (never on the command line)"
        elif not hint:
            hint = spec_hint(p)
        elif f"-p {p.name}=" not in hint:
            hint = f"{hint} ({how_to_give(p)})"
        return ParamError(f"parameter {p.name!r}: {text}", param=p.name, hint=hint)

    def _subject(self, input_name: str) -> tuple[str | None, str]:
        """(kind, name) of what an InputError's `input` names: a setting of this target
        (`targets.host.ca_bundle`, or bare when the stage has no such input), else an input."""
        prefix = f"targets.{self.target}."
        if input_name.startswith(prefix):
            return "target", input_name[len(prefix):]
        if self.stage is not None and input_name in self.stage.inputs:
            return "input", input_name
        if self.target in self.runbook.targets:
            return "target", input_name
        return None, input_name
