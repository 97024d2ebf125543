"""The `psrunner` command run in this process (click's CliRunner around runner.cli.main, which
exits with psrunner's own codes), for tests that want its output and exit code without a
new Python process each time."""

from __future__ import annotations

import click
from click.testing import CliRunner, Result

from runner.cli import main


@click.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.pass_context
def _entry(ctx: click.Context) -> None:
    main(ctx.args)


def psrunner(*args: str, env: dict[str, str | None] | None = None, catch: bool = False) -> Result:
    """Run `psrunner ARGS...`; with catch=True an exception that escapes is kept in
    `result.exception` (a traceback the user would see) instead of raised."""
    return CliRunner().invoke(_entry, list(args), catch_exceptions=catch, env=env)
