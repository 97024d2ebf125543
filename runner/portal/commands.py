"""`psrunner accounts`: the portal's local accounts, from a terminal. Only click and the error
tree are imported here: `psrunner --help` loads this module, and nothing heavy."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..errors import InputError


@click.group()
def accounts() -> None:
    """The portal's local accounts, for sites without Entra ID."""


@accounts.command("set")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("name")
@click.option("--role", "roles", multiple=True, required=True, help="a role of the policy (repeatable)")
@click.option("--display-name", default="", help="the name the portal shows")
@click.option("--password-stdin", is_flag=True, help="read the password from stdin instead of asking")
def accounts_set(file, name, roles, display_name, password_stdin) -> None:
    """Add or change account NAME in FILE (0600; the password kept as a scrypt hash)."""
    from ..secrets import Secret
    from .accounts import set_account
    if not password_stdin and not sys.stdin.isatty():
        raise InputError("no terminal to ask for the password", input="--password-stdin",
                         hint="pipe it in with --password-stdin")
    password = sys.stdin.readline().rstrip("\r\n") if password_stdin else \
        click.prompt("password", hide_input=True, confirmation_prompt=True, err=True)
    set_account(file, name, Secret(password, "portal password"), tuple(roles), display_name)
    click.echo(f"{file}: account {name} ({', '.join(roles)})")
