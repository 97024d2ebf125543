"""Every command's --help shows an example command line, one that click accepts as it is
written and that names runbooks and parameters that exist."""

from __future__ import annotations

import shlex

import click
import pytest
from click.testing import CliRunner

from runner.api import load_runbook
from runner.cli import cli
from runner.cli_examples import EXAMPLES


def _commands(command: click.Command, path: str = "psrunner"):
    yield path, command
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from _commands(sub, f"{path} {name}")


COMMANDS = dict(_commands(cli))


def test_the_walk_found_every_command():
    assert {"psrunner", "psrunner run", "psrunner runs show", "psrunner sim serve", "psrunner fleet run",
            "psrunner accounts set", "psrunner worker"} <= set(COMMANDS)
    assert set(EXAMPLES) == set(COMMANDS)          # none without examples, none for a command that is gone


@pytest.mark.parametrize("path", sorted(COMMANDS))
def test_help_shows_the_examples_whole_at_80_columns(path):
    r = CliRunner().invoke(cli, path.split()[1:] + ["--help"], env={"COLUMNS": "80"}, terminal_width=80)
    assert r.exit_code == 0, r.output
    shown = "\n".join(f"    {line}" for line in EXAMPLES[path])
    assert f"\n  Examples:\n{shown}\n" in r.output
    assert max(len(line) for line in r.output.splitlines() if line.startswith("    psrunner")) <= 80


def _parse(args: list[str]) -> tuple[str, click.Context]:
    """The command an example calls and its parsed context: click's own parsing, nothing run."""
    command, path = cli, "psrunner"
    while True:
        ctx = command.make_context(path, list(args), resilient_parsing=False)
        if not isinstance(command, click.Group):
            return path, ctx
        # the subcommand's name is kept apart from its arguments (click's protected args)
        rest = [*getattr(ctx, "_protected_args", ()), *ctx.args]
        if not rest:                # a group that runs on its own (`psrunner runs`)
            return path, ctx
        name, command, args = command.resolve_command(ctx, rest)
        path = f"{path} {name}"


EXAMPLE_LINES = [(path, line) for path, lines in EXAMPLES.items() for line in lines]


@pytest.mark.parametrize("path, line", EXAMPLE_LINES)
def test_each_example_parses_and_names_what_exists(path, line):
    words = shlex.split(line.split(" | ")[0])
    assert words[0] == "psrunner"
    called, ctx = _parse(words[1:])
    assert called.startswith(path)
    runbook = ctx.params.get("runbook")
    if runbook is None or "/" in runbook:
        return
    rb = load_runbook(runbook)
    for given in ctx.params.get("params") or ():
        assert given.split("=", 1)[0] in rb.params, line
    stage = ctx.params.get("stage_id")
    assert stage is None or stage in [s.id for s in rb.stages], line
