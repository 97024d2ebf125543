"""Runbook parameter values: typed coercion, validation, and where secrets come from.

Values arrive as text (`-p key=value`, a params file, the environment) or as TOML values
(a params file, defaults). Secrets never come from argv: from an environment variable, a
file (`--secret-file name=PATH`), or a no-echo prompt on a TTY."""

from __future__ import annotations

import os
import re
import stat
import sys
from pathlib import Path
from typing import Any, Callable

from .conditions import evaluate_condition
from .errors import InputError, ParamError, closest
from .refs import REF_RE, iter_refs, resolve_value
from .registry import check_stage, check_target
from .runbook import Param, Runbook
from .secrets import Secret
from .user_terms import Terms
from .userfiles import check_regular, read_text
from .values import Unknown, clip, coerce, shown


def parse_assignments(pairs: list[str], option: str = "-p") -> dict[str, str]:
    out: dict[str, str] = {}
    for i, pair in enumerate(pairs, 1):
        if "=" not in pair:
            # echo it only when it looks like a name: a mistyped value could be a password
            what = repr(pair) if re.fullmatch(r"[a-z][a-z0-9_]{0,40}", pair) else f"number {i}"
            raise ParamError(f"{option} {what} is not of the form key=value", param=option,
                             hint=f"write {option} name=value")
        k, v = pair.split("=", 1)
        out[k.strip()] = v
    return out


def load_params_file(path: str) -> dict[str, Any]:
    """A params file: TOML (key = value) or JSON object."""
    import json
    hint = "give the path of a TOML or JSON file of name = value pairs"
    text = read_text(path, what="params file", input="--params-file", hint=hint)
    try:
        if Path(path).suffix.lower() == ".json":
            data = json.loads(text)
        else:
            from .runbook_loader import tomllib
            data = tomllib.loads(text)
    except RecursionError:
        raise ParamError(f"params file {path!r} is nested too deeply", param="--params-file",
                         hint="write name = value pairs, one a line") from None
    except Exception as e:
        raise ParamError(f"params file {path!r} cannot be read: {clip(str(e), 300)}", param="--params-file",
                         hint="write name = \"value\" lines (TOML) or a JSON object") from None
    if not isinstance(data, dict):
        raise ParamError(f"params file {path!r} must hold name = value pairs", param="--params-file")
    return data


Prompt = Callable[[Param], str]


def resolve_params(runbook: Runbook, given: dict[str, Any], *,
            secret_files: dict[str, str] | None = None,
            prompt: Prompt | None = None,
            environ: dict[str, str] | None = None,
            need_secrets: bool = True,
            partial: bool = False,
            ask: Ask | None = None) -> tuple[dict[str, Any], dict[str, str]]:
    """Validate `given` against the runbook and fill defaults and secrets.

    Returns (values, secret_sources): secret_sources says where each secret came from
    ("env:NAME", "file:PATH", "prompt", "given") so that `resume` can ask the same place
    again. A library caller may put a `Secret` in `given`; text for a secret parameter
    (which is what -p and params files carry) is refused.
    With need_secrets=False, a missing secret is left out instead of an error; with
    partial=True (render), missing required parameters are too. With `ask` (a person at a
    terminal), missing required parameters are asked for, each answer checked by the same
    rules as -p; without it they are refused together in one message. So is a parameter
    whose default cannot be derived (an admin URL from a tenant given by its id)."""
    env = os.environ if environ is None else environ
    secret_files = secret_files or {}
    for name in list(given) + list(secret_files):
        if name not in runbook.params:
            raise _unknown(runbook, name, "--secret-file" if name in secret_files else "-p")
    for name in secret_files:
        if not runbook.params[name].secret:
            raise ParamError(f"--secret-file {name}=: {name!r} is not a secret parameter", param="--secret-file",
                             hint=f"give it with -p {name}=VALUE or in the params file")
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    missing: list[Param] = []
    for name, p in runbook.params.items():
        if p.secret:
            if name in given and not isinstance(given[name], Secret):
                raise ParamError(f"secret {name!r} cannot be given with -p or a params file", param=name,
                                 hint=f"set the environment variable {p.env_var}, use --secret-file "
                                      f"{name}=PATH, or let psrunner prompt for it")
            continue
        if name in given:
            values[name] = coerce(p, given[name])
        elif p.default is not None:
            values[name] = p.default if isinstance(p.default, str) and REF_RE.search(p.default) \
                else coerce(p, p.default)
        elif p.required and not partial:
            missing.append(p)
    if missing and ask is not None:
        for p in missing:
            values[p.name] = _asked(p, ask)
        missing = []
    if missing:
        # one message for everything that is missing, secrets included (nobody is prompted
        # for a secret before the run can start at all)
        raise _missing(runbook, missing + [p for p in _secrets_needed(runbook, values)
                                           if _secret_value(p, secret_files.get(p.name), env, None)[0] is None])
    # defaults that reference other parameters (e.g. an admin URL derived from the tenant)
    for name, val in list(values.items()):
        if partial:
            break
        if isinstance(val, str) and REF_RE.search(val) and name not in given:
            p = runbook.params[name]
            try:
                derived = resolve_value(val, {"params": values}, where=f"params.{name}")
            except InputError as e:      # asked for now, before any sign-in or connection
                if name in _idle_params(runbook, values)[1]:    # e.g. the admin URL, with no host
                    del values[name]
                    continue
                if ask is not None:
                    values[name] = _asked(p, ask, why=e.message)
                    continue
                raise ParamError(f"parameter {name!r} is needed: {e.message}", param=name,
                                 hint=f"give -p {name}={p.example or 'VALUE'}" + (f", or {e.hint}" if e.hint else ""),
                                 ) from None
            values[name] = coerce(p, derived)
    # secrets last: whether one is needed can depend on the other values (required_if)
    needed = {p.name for p in _secrets_needed(runbook, values)} if not partial else set()
    for name, p in runbook.params.items():
        if not p.secret:
            continue
        if isinstance(given.get(name), Secret):     # a library caller handing over a Secret
            values[name], sources[name] = given[name], "given"
            continue
        value, source = _secret_value(p, secret_files.get(name), env, prompt if name in needed else None)
        if value is None:
            if name in needed and need_secrets:
                when = f" when {p.required_if}" if p.required_if and not p.required else ""
                raise ParamError(f"secret {name!r} is required{when}", param=name, missing=[name],
                                 hint=_give_secret(p))
            continue
        values[name], sources[name] = coerce(p, value), source
    return values, sources


def _secrets_needed(runbook: Runbook, values: dict[str, Any]) -> list[Param]:
    """The secret parameters these values call for: required ones, and those whose
    `required_if` holds (a condition over a parameter not known yet counts as false)."""
    out = []
    for p in runbook.params.values():
        if not p.secret:
            continue
        try:
            if p.required or (p.required_if and evaluate_condition(p.required_if, {"params": values, "stages": {}})):
                out.append(p)
        except Exception:       # names a missing parameter: that one is reported instead
            continue
    return out


def _give_secret(p: Param) -> str:
    return f"set {p.env_var}, use --secret-file {p.name}=PATH, or run on a terminal to be prompted"


def _give_value(p: Param) -> str:
    return f"-p {p.name}={p.example or 'VALUE'}" + (f" ({p.help})" if p.help else "")


def _missing(runbook: Runbook, missing: list[Param]) -> ParamError:
    """Every missing required parameter in one error, with a command line that gives them."""
    if len(missing) == 1:
        p = missing[0]
        what = "secret" if p.secret else "parameter"
        return ParamError(f"{what} {p.name!r} is required", param=p.name, missing=[p.name],
                          hint=_give_secret(p) if p.secret else f"give {_give_value(p)}")
    plain = [f"-p {p.name}={p.example or 'VALUE'}" for p in missing if not p.secret]
    secret = [p for p in missing if p.secret]
    ways = ["add " + " ".join(plain)] if plain else []
    if secret:
        ways.append("set " + " and ".join(f"{p.env_var} (or --secret-file {p.name}=PATH)" for p in secret))
    ways.append(f"`psrunner show {cli_name(runbook)}` says what each one is")
    return ParamError(f"{len(missing)} required parameters are missing: " + ", ".join(p.name for p in missing),
                      param=missing[0].name, missing=[p.name for p in missing], hint="; ".join(ways))


def cli_name(runbook: Runbook) -> str:
    """How the runbook is named on a command line: its built-in name, or its file."""
    return runbook.source.removeprefix("builtin:")


def _unknown(runbook: Runbook, name: str, option: str) -> ParamError:
    """An unknown parameter name: the one it most likely meant, or where to read them all."""
    guess = closest(name, runbook.params) if len(name) <= 100 else None
    if guess is not None:
        p = runbook.params[guess]
        if option == "--secret-file":
            how = f"--secret-file {guess}=PATH" if p.secret else f"-p {guess}=...: it is not a secret"
        else:
            how = _give_secret(p) if p.secret else f"-p {guess}=..."
        hint = f"did you mean {guess}? ({how})"
    elif len(runbook.params) <= 8:
        hint = "parameters: " + ", ".join(runbook.params)
    else:
        hint = f"`psrunner show {cli_name(runbook)}` lists its {len(runbook.params)} parameters"
    return ParamError(f"unknown parameter {shown(name)} for runbook {runbook.name!r}", param=clip(name), hint=hint)


def check_before_run(runbook: Runbook, values: dict[str, Any]) -> None:
    """Everything that can be refused without a connection, refused now (exit 2) rather than
    by a stage after sign-in: each used target's offline checks (a sign-in without its
    secret, a CA bundle that is not there, Basic auth without a user...) and each stage
    kind's checks of how its inputs relate (a secret lifetime shorter than its renewal
    horizon). Errors name the runbook parameter behind the setting or input (user_terms).

    Only stages that may run count (a stage whose `when` the parameters alone make false
    opens no target, nor does one on a target this run leaves unused); inputs that come from
    earlier stages are Unknown here. A parameter given only for an unused target is refused
    too: it was meant for something that would silently not happen (`-p spo_user=...`
    without a host)."""
    def may_run(stage: Any) -> bool:
        if not stage.when:
            return True
        try:
            return bool(evaluate_condition(stage.when, {"params": values, "stages": {}}))
        except Exception:           # depends on an earlier stage: it may run
            return True

    unused = {n for n, t in runbook.targets.items() if not t.used(values)}
    _refuse_unused_params(runbook, values, unused)
    stages = [s for s in runbook.stages if s.target not in unused and may_run(s)]
    used = {s.target for s in stages if s.target}
    for name, target in runbook.targets.items():
        if name in used:
            try:
                check_target(target.type, target.resolved(values), name)
            except InputError as e:
                raise Terms(runbook, target=name).restate(e) from None
    scope = {"params": values, "stages": {}, "_missing": lambda ref: Unknown(ref.split(".", 1)[-1])}
    for stage in stages:
        try:
            inputs = resolve_value(stage.inputs, scope, where=f"stages.{stage.id}.inputs")
            if stage.template:                  # as the engine hands them to the kind
                inputs = {**inputs, "template": stage.template, "vars": stage.vars}
            check_stage(stage.kind, inputs)
        except InputError as e:
            raise Terms(runbook, stage=stage).restate(e) from None


_PARAM_NAME = re.compile(r"\bparams\.([a-z][a-z0-9_]*)")     # in a condition (`when`)


def _refuse_unused_params(runbook: Runbook, values: dict[str, Any], unused: set[str]) -> None:
    """ParamError naming the parameters given (not left at their defaults) that only the
    unused targets, or the stages on them, would read. Secrets are left out: they often come
    from an environment set once for every kind of run."""
    if not unused:
        return
    given = [n for n in sorted(_idle_params(runbook, values)[1]) if n in values and not runbook.params[n].secret
             and values[n] != _default_of(runbook.params[n], values)]
    if given:
        reason = "; ".join(runbook.targets[t].unused or f"target {t} is not used" for t in sorted(unused))
        flags = " ".join(f"-p {n}=..." for n in given)
        raise ParamError(f"{', '.join(given)} {'is' if len(given) == 1 else 'are'} only used on what this run "
                         f"leaves out: {reason}", param=given[0],
                         hint=f"give what the run needs for it, or leave out {flags}")


def _idle_params(runbook: Runbook, values: dict[str, Any]) -> tuple[set[str], set[str]]:
    """(the targets this run leaves unused, the parameters only they or their stages read)."""
    def names(*values: Any) -> set[str]:
        found = {ref.split(".")[1] for v in values for ref, _ in iter_refs(v) if ref.startswith("params.")}
        return found | {n for v in values if isinstance(v, str) for n in _PARAM_NAME.findall(v)}

    unused = {n for n, t in runbook.targets.items() if not t.used(values)}
    idle: set[str] = set()
    busy: set[str] = set()
    for name, target in runbook.targets.items():
        (idle if name in unused else busy).update(names(target.settings, target.when or ""))
    for stage in runbook.stages:
        (idle if stage.target in unused else busy).update(names(stage.inputs, stage.vars, stage.when or ""))
    return unused, idle - busy


def _default_of(p: Param, values: dict[str, Any]) -> Any:
    """The value `p` has when nobody gives it (a default naming other parameters resolved)."""
    if p.default is None:
        return None
    if isinstance(p.default, str) and REF_RE.search(p.default):
        return coerce(p, resolve_value(p.default, {"params": values}, where=f"params.{p.name}"))
    return coerce(p, p.default)


def _secret_value(p: Param, file: str | None, env: dict[str, str], prompt: Prompt | None):
    if file:
        return read_secret_file(p.name, file), f"file:{file}"
    if env.get(p.env_var):
        return env[p.env_var], f"env:{p.env_var}"
    if prompt is not None:
        value = prompt(p)
        if value:
            return value, "prompt"
    return None, None


# (parameter, why the last answer was refused or None, why it is asked for when it has a
# default that cannot serve) -> the answer as typed
Ask = Callable[[Param, "str | None", "str | None"], str]
ASK_TRIES = 3


def _asked(p: Param, ask: Ask, why: str | None = None) -> Any:
    """A value for `p` from a person, checked as -p checks it; asked again when refused."""
    problem = None
    for _ in range(ASK_TRIES):
        text = ask(p, problem, why).strip()
        if not text:
            problem = "a value is required"
            continue
        try:
            return coerce(p, text)
        except ParamError as e:
            problem = e.message + (f"; {e.hint}" if e.hint else "")
    raise ParamError(f"parameter {p.name!r}: no valid value after {ASK_TRIES} tries", param=p.name,
                     hint=f"give {_give_value(p)}")


def tty_ask(p: Param, problem: str | None, why: str | None = None) -> str:
    """Ask for a missing parameter on the terminal (stderr, so stdout stays the report)."""
    if not sys.stdin.isatty():
        return ""
    if problem:
        sys.stderr.write(f"  not accepted: {problem}\n")
    else:
        kind = "/".join(p.choices) if p.choices else ("yes/no" if p.type == "bool" else p.type)
        sys.stderr.write(f"{p.name} ({kind}): {p.help or 'required'}"
                         + (f", e.g. {p.example}" if p.example else "") + "\n")
        if why:
            sys.stderr.write(f"  needed: {why}\n")
    sys.stderr.write(f"  {p.name}: ")
    sys.stderr.flush()
    return sys.stdin.readline().rstrip("\r\n")


def read_secret_file(name: str, file: str) -> str:
    """The secret in `file` (`--secret-file NAME=FILE`): a regular UTF-8 file only its owner
    can read, holding the secret alone (a trailing line break is dropped)."""
    hint = "give the path of a file that holds the secret alone"
    what = f"secret file for {name!r}"
    try:
        st = check_regular(file, what=what, input=name, hint=hint)
        if sys.platform != "win32" and st.st_mode & 0o077:
            raise InputError(f"{what} {file!r} is readable by others (mode {stat.S_IMODE(st.st_mode):04o}): the "
                             "secret in it is not a secret", input=name,
                             hint=f"make it private (chmod 600 {file}), or set {name}'s environment variable")
        text = read_text(file, what=what, input=name, limit=64 * 1024, hint=hint)
    except ParamError:
        raise
    except InputError as e:
        raise ParamError(e.message, param=name, hint=e.hint) from None
    return text.rstrip("\r\n")


def tty_prompt(p: Param) -> str:
    """Ask for a secret without echo (only on a TTY)."""
    if not sys.stdin.isatty():
        return ""
    import getpass
    return getpass.getpass(f"{p.help or p.name} ({p.name}, input hidden): ")
