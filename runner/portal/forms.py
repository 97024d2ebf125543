"""A runbook's parameters as a form, and a posted form back to checked values.

Checking goes through the library functions the CLI calls (api.resolve_params, which uses
values.coerce for each value, then params.check_before_run), so a value the CLI refuses is
refused here with the same message. What the CLI tells in its `fix:` line speaks of `-p` and
environment variables; the form shows the parameter's help beside the field instead.

Each parameter of a runbook is, for one person:
- a field they fill in (their role lets them give it), perhaps with bounds (policy.py);
- fixed by their role: shown, not editable;
- held by the server (config.py: the host, a service account, its password): named, never
  shown when secret, not editable.
A posted value for anything but a field is refused (403, audited): a role cannot widen what
it was given by posting more than the form offers."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..api import resolve_params
from ..errors import InputError, ParamError
from ..params import check_before_run
from ..runbook import Param, Runbook
from ..secrets import MASK, Secret
from .config import RunbookSetup
from .policy import Grant, Refused

PREFIX = "p."          # form fields are named p.<parameter>, apart from csrf and buttons


@dataclass
class Field:
    name: str
    widget: str                    # text | number | select | password | list
    value: str = ""
    choices: list[tuple[str, str]] = field(default_factory=list)
    help: str = ""
    need: str = ""                 # "required", "required when ...", or ""
    example: str = ""
    bound: str = ""                # what the person's role allows, in words
    error: str = ""
    min: int | None = None
    max: int | None = None

    @property
    def input_name(self) -> str:
        return PREFIX + self.name


@dataclass
class FormView:
    fields: list[Field]
    fixed: list[tuple[str, str]]     # (name, value as shown)
    server: list[tuple[str, str]]
    general: list[str] = field(default_factory=list)


class FormErrors(InputError):
    """The form is not right yet: messages per field, and others."""

    def __init__(self, errors: dict[str, str], general: list[str]) -> None:
        first = next(iter(errors.values()), None) or (general[0] if general else "the form has errors")
        super().__init__(first, input=next(iter(errors), None))
        self.errors, self.general = errors, general


def server_held(rb: Runbook, setup: RunbookSetup, environ: Mapping[str, str]) -> set[str]:
    """The parameters the server gives this runbook (its settings, secret files, and secrets
    in its environment)."""
    held = {n for n in rb.params if n in setup.params or n in setup.secret_files}
    held |= {p.name for p in rb.params.values() if p.secret and environ.get(p.env_var)}
    return held


def shown(value: Any) -> str:
    if isinstance(value, Secret):
        return MASK
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return "; ".join(str(v) for v in value)
    return "" if value is None else str(value)


def form_view(rb: Runbook, grant: Grant, setup: RunbookSetup, *, environ: Mapping[str, str] | None = None,
              posted: Mapping[str, str] | None = None, errors: FormErrors | None = None) -> FormView:
    env = os.environ if environ is None else environ
    held, fixed = server_held(rb, setup, env), grant.fixed()
    view = FormView([], [], [], list(errors.general) if errors else [])
    for p in rb.params.values():
        if p.name in fixed:
            view.fixed.append((p.name, shown(fixed[p.name])))
        elif p.name in held:
            value = setup.params.get(p.name)
            view.server.append((p.name, "held by the server" if p.secret else
                                "a file on the server" if p.type == "file" and value else shown(value)))
        elif grant.may_give(p.name):
            f = _field(p, grant)
            if posted is not None and not p.secret:
                f.value = posted.get(PREFIX + p.name, f.value)
            if errors is not None:
                f.error = errors.errors.get(p.name, "")
            view.fields.append(f)
    return view


def _field(p: Param, grant: Grant) -> Field:
    default = "" if p.default is None or (isinstance(p.default, str) and "${" in p.default) else p.default
    lim = (grant.limits or {}).get(p.name)
    f = Field(p.name, "text", value=shown(default), help=p.help, example=p.example or "",
              bound=lim.describe() if lim is not None else "")
    if p.required and p.default is None:
        f.need = "required"
    elif p.required_if:
        f.need = f"required when {p.required_if.replace('params.', '')}"
    if p.type == "secret":
        f.widget, f.value = "password", ""
    elif p.type == "int":
        f.widget, f.min, f.max = "number", p.min, p.max
    elif p.type in ("bool", "choice"):
        f.widget = "select"
        options = ["true", "false"] if p.type == "bool" else list(p.choices)
        if lim is not None and lim.choices is not None:
            options = [o for o in options if o in lim.choices]
        labels = {"true": "yes", "false": "no"}
        f.choices = ([] if p.default is not None else [("", "(choose)")]) + [(o, labels.get(o, o)) for o in options]
        f.value = {"yes": "true", "no": "false"}.get(f.value, f.value)
    elif p.type == "list":
        f.widget = "list"
        f.help = (f.help + " " if f.help else "") + f"(several: '{p.separator}' between them)"
    return f


def read_form(rb: Runbook, grant: Grant, setup: RunbookSetup, form: Mapping[str, str], *,
              environ: Mapping[str, str] | None = None) -> tuple[dict[str, Any], dict[str, str]]:
    """(values, secret sources) for a posted form, checked as the CLI checks `-p` values and
    then against the person's bounds. FormErrors when a value is wrong; Refused when the
    form asks for more than the person's role gives."""
    env = os.environ if environ is None else environ
    held, fixed = server_held(rb, setup, env), grant.fixed()
    given: dict[str, Any] = {}
    for key, raw in form.items():
        if not key.startswith(PREFIX):
            continue
        name = key[len(PREFIX):]
        p = rb.params.get(name)
        if p is None:
            raise Refused(f"runbook {rb.name} has no parameter {name!r}", input=name)
        if name in fixed or name in held or not grant.may_give(name):
            raise Refused(f"parameter {name!r} is set by " + ("your role" if name in fixed else "the server")
                          + "; it cannot be given here", input=name)
        if raw == "":
            continue                      # not given: the default applies, or it is missing
        given[name] = Secret(raw, name) if p.secret else raw
    mine = set(given)
    attempt = {**{k: v for k, v in setup.params.items() if k in rb.params}, **fixed, **given}
    errors: dict[str, str] = {}
    general: list[str] = []
    for _ in range(len(rb.params) + 1):
        try:
            values, sources = resolve_params(rb, attempt, secret_files=setup.secret_files, environ=env)
            break
        except ParamError as e:
            missing = e.fields.get("missing")
            if missing:
                general.append(e.message)
                for m in missing:
                    errors.setdefault(m, "required")
                raise FormErrors(errors, general) from None
            if e.param in mine and e.param not in errors:
                errors[e.param] = e.message
                attempt.pop(e.param)
                continue
            general.append(_server_side(e))
            raise FormErrors(errors, general) from None
    else:                                   # pragma: no cover - each round removes a parameter
        raise FormErrors(errors, general)
    if errors:
        raise FormErrors(errors, general)
    grant.check(rb, values)
    try:
        check_before_run(rb, values)
    except InputError as e:
        param = getattr(e, "param", None)
        raise (FormErrors({param: e.message}, []) if param in mine else FormErrors({}, [_server_side(e)])) from None
    return values, {k: ("form" if k in mine else v) for k, v in sources.items()}


def asked(values: dict[str, Any], grant: Grant, form: Mapping[str, str]) -> dict[str, Any]:
    """What the person asked for: the values they gave and those their role fixed (the audit
    log keeps these; the run directory has every value the run used)."""
    mine = {k[len(PREFIX):] for k, v in form.items() if k.startswith(PREFIX) and v != ""}
    return {k: v for k, v in values.items() if k in mine or k in grant.fixed()}


def _server_side(e: InputError) -> str:
    return f"the server's setting does not work: {e.message} (tell whoever runs the portal)"
