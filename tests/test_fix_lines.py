"""Every `fix:` line names something that exists, in the user's terms.

The hints are collected from the code itself (every `hint=` argument and assignment, every
table of hints, every function that returns one), and each name a hint gives a person is
checked against what it names:

- `--option` is an option of a psrunner command, `psrunner WORD` a command;
- `PSRUNNER_NAME` is the environment variable of a secret parameter, or one psrunner reads;
- `-p NAME=` written out in the code names a parameter of a built-in runbook, and is written
  only where the runbook is known (the front and the runbook floor); below it a transport or a
  stage kind marks its own setting or input (runner.errors.setting / stage_input);
- a marked setting is one its target type takes, a marked input one a built-in runbook feeds
  to a stage of the kind that raises it; and restated through each built-in runbook
  (runner.user_terms) every mark becomes a parameter of that runbook, or the place in it.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from runner.catalog import Catalog, builtin_names
from runner.errors import marked_names, setting, stage_input
from runner.registry import KINDS
from runner.user_terms import Terms

ROOT = Path(__file__).resolve().parents[1] / "runner"
MARKERS = {"setting": setting, "stage_input": stage_input}
# modules that know the runbook, so may name a parameter as `-p NAME=`
KNOWS_THE_RUNBOOK = {"cli.py", "api.py", "params.py", "user_terms.py", "catalog.py", "runbook.py",
                     "runbook_loader.py", "render_text.py"}


def _text(node: ast.AST) -> str:
    """The text an expression builds, with marks evaluated and other values as `{…}`."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(_text(v.value) if isinstance(v, ast.FormattedValue) else _text(v) for v in node.values)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in MARKERS:
        args = [a.value for a in node.args if isinstance(a, ast.Constant)]
        if len(args) == len(node.args):
            return MARKERS[node.func.id](*args)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _text(node.left) + _text(node.right)
    if isinstance(node, ast.IfExp):
        return _text(node.body) + " | " + _text(node.orelse)
    if isinstance(node, ast.BoolOp):
        return " | ".join(_text(v) for v in node.values)
    return "{…}"


def _hints_in(tree: ast.AST) -> list[str]:
    found: list[ast.AST] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            found += [k.value for k in node.keywords if k.arg == "hint"]
        elif isinstance(node, ast.Assign):
            names = [t.id if isinstance(t, ast.Name) else t.attr if isinstance(t, ast.Attribute) else ""
                     for t in node.targets]
            if any("hint" in n.lower() for n in names):
                found += node.value.values if isinstance(node.value, ast.Dict) else [node.value]
        elif isinstance(node, ast.FunctionDef) and "hint" in node.name:
            found += [r.value for r in ast.walk(node) if isinstance(r, ast.Return) and r.value is not None]
    return [_text(n) for n in found]


HINTS = {p: _hints_in(ast.parse(p.read_text(encoding="utf-8"))) for p in sorted(ROOT.rglob("*.py"))}
ALL = [(p, h) for p, hs in HINTS.items() for h in hs]
RUNBOOKS = [Catalog().load(name) for name in builtin_names()]


def _cli_names() -> tuple[set[str], set[str]]:
    """(options of any command, command names)."""
    import click

    from runner.cli import cli
    options: set[str] = set()
    commands: set[str] = set()

    def walk(cmd: click.Command) -> None:
        for prm in cmd.params:
            options.update(o for o in (*prm.opts, *prm.secondary_opts) if o.startswith("--"))
        for name, sub in getattr(cmd, "commands", {}).items():
            commands.add(name)
            walk(sub)
    walk(cli)
    return options, commands


def _rel(p: Path) -> str:
    return str(p.relative_to(ROOT.parent))


def test_the_hints_were_found():
    # the collector must see the hints the code really has (a silent empty list proves nothing)
    assert len(ALL) > 100
    texts = "\n".join(h for _, h in ALL)
    for known in ("{{target:ca_bundle}}", "{{input:secret_min_days}}", "did you mean"):
        assert known in texts


def test_options_commands_and_environment_variables_named_by_hints_exist():
    options, commands = _cli_names()
    env_vars = {p.env_var for rb in RUNBOOKS for p in rb.params.values() if p.secret}
    env_vars |= {"PSRUNNER_STATE_DIR", "PSRUNNER_RUNBOOKS", "PSRUNNER_BROKER", "PSRUNNER_KEEP_CHECKS"}
    wrong = []
    for path, hint in ALL:
        for opt in re.findall(r"(?<![\w-])--[a-z][a-z-]+", hint):
            if opt not in options:
                wrong.append((_rel(path), opt, hint))
        for cmd in re.findall(r"`psrunner ([a-z]+)", hint):
            if cmd not in commands:
                wrong.append((_rel(path), f"psrunner {cmd}", hint))
        for var in re.findall(r"\bPSRUNNER_[A-Z_]+\b", hint):
            if var not in env_vars:
                wrong.append((_rel(path), var, hint))
    assert wrong == []


def test_parameters_are_written_out_only_where_the_runbook_is_known():
    params = {name for rb in RUNBOOKS for name in rb.params}
    wrong = []
    for path, hint in ALL:
        for name in re.findall(r"-p ([a-z][a-z0-9_]*)=", hint):
            if path.name not in KNOWS_THE_RUNBOOK or path.parent != ROOT:
                wrong.append((_rel(path), f"-p {name}= (mark the setting or input instead)", hint))
            elif name not in params:
                wrong.append((_rel(path), f"-p {name}= names no parameter", hint))
    assert wrong == []


def test_settings_are_marked_not_written_as_toml():
    # `auth = 'certificate'` in a transport's hint names a setting the person never typed; a
    # `key = value` may appear only where it is a key of the runbook file itself
    from runner.fleet.inventory import INVENTORY_KEYS
    from runner.runbook_loader import PARAM_KEYS, RUNBOOK_KEYS, STAGE_KEYS
    keys = PARAM_KEYS | RUNBOOK_KEYS | STAGE_KEYS | INVENTORY_KEYS     # an inventory is a file people write too
    wrong = [(_rel(path), m.group(1), hint) for path, hint in ALL
             for m in re.finditer(r"\b([a-z_]+) = [\"'\w]", hint) if m.group(1) not in keys]
    assert wrong == []


def _settings_of(target_type: str) -> set[str]:
    if target_type == "graph":
        from runner.graph.connector import KNOWN_SETTINGS
        return set(KNOWN_SETTINGS)
    from runner.powershell.settings import _ALIASES, _SPECIAL
    return set(_ALIASES) | set(_SPECIAL)


def _kinds_of(path: Path) -> list[str]:
    module = "runner." + ".".join(path.relative_to(ROOT).with_suffix("").parts)
    return [k.name for k in KINDS.values() if k.module == module]


def _target_types_of(path: Path) -> set[str]:
    """The target types whose settings a module may mark: its own (graph/, powershell/), or
    those of the stage kinds it implements."""
    parts = path.relative_to(ROOT).parts
    own = {"graph": "graph", "powershell": "psrp"}.get(parts[0]) if len(parts) > 1 else None
    return {own} if own else {KINDS[k].target_type for k in _kinds_of(path)} - {None}


def _marks() -> list[tuple[Path, str, str, str]]:
    return [(p, kind, name, h) for p, h in ALL for kind, name, _ in marked_names(h)]


def test_marked_settings_and_inputs_exist():
    fed = {(s.kind, key) for rb in RUNBOOKS for s in rb.stages for key in s.inputs}
    wrong = []
    for path, kind, name, hint in _marks():
        if kind == "target":
            if not any(name in _settings_of(t) for t in _target_types_of(path)):
                wrong.append((_rel(path), f"setting {name}", hint))
        elif not any((k, name) in fed for k in _kinds_of(path)):
            wrong.append((_rel(path), f"stage input {name}", hint))
    assert wrong == []


@pytest.mark.parametrize("rb", RUNBOOKS, ids=lambda rb: rb.name)
def test_every_mark_restates_to_a_parameter_of_the_runbook_or_its_place_in_it(rb):
    marks = _marks()
    wrong = []
    for tname, target in rb.targets.items():
        terms = Terms(rb, target=tname)
        for path, kind, name, hint in marks:
            if kind == "target" and target.type in _target_types_of(path):
                wrong += _check_given(rb, terms.give(kind, name, None), f"targets.{tname}.{name}", hint)
    for stage in rb.stages:
        terms = Terms(rb, stage=stage)
        for path, kind, name, hint in marks:
            if kind == "input" and stage.kind in _kinds_of(path):
                wrong += _check_given(rb, terms.give(kind, name, None), f"stages.{stage.id}.inputs.{name}", hint)
    assert wrong == []


def _check_given(rb, text: str, place: str, hint: str) -> list[tuple[str, str, str]]:
    m = re.fullmatch(r"-p ([a-z0-9_]+)=\.\.\.", text)
    if m:
        return [] if m.group(1) in rb.params else [(rb.name, text, hint)]
    m = re.fullmatch(r"(PSRUNNER_[A-Z_]+) \(or --secret-file ([a-z0-9_]+)=PATH\)", text)
    if m:
        p = rb.params.get(m.group(2))
        return [] if p is not None and p.secret and p.env_var == m.group(1) else [(rb.name, text, hint)]
    return [] if text == place else [(rb.name, text, hint)]
