"""An example command line under every command's --help: what a person copies first. Kept
apart from the click definitions so that cli.py stays a thin layer; `add_examples` puts
them at the head of each command's epilog (above the exit codes, where there are any).

Each example is a real command line: tests parse every one with the command it belongs to
and check the runbooks and parameters it names exist (tests/cli/test_help_examples.py).
Lines stay under 76 characters so that help at 80 columns shows them whole."""

from __future__ import annotations

import click

TENANT = "-p tenant=contoso.onmicrosoft.com"

# the command's path as typed -> example lines (a `#` comment says what one does)
EXAMPLES: dict[str, tuple[str, ...]] = {
    "psrunner": (
        "psrunner list",
        "psrunner show m365-backup-access",
        f"psrunner plan m365-backup-access {TENANT}",
    ),
    "psrunner list": (
        "psrunner list --audience helpdesk",
        "psrunner list --output json",
    ),
    "psrunner show": (
        "psrunner show m365-backup-access",
        "psrunner show ./my-runbook.toml --output json",
    ),
    "psrunner plan": (
        f"psrunner plan m365-backup-access {TENANT}",
        "psrunner plan m365-backup-access --params-file contoso.toml | tee plan.txt",
    ),
    "psrunner check": (
        "psrunner check m365-backup-access --params-file contoso.toml --summary",
        "psrunner check m365-backup-access --params-file contoso.toml -o nagios",
    ),
    "psrunner run": (
        f"psrunner run m365-backup-access {TENANT}",
        "psrunner run m365-backup-access --params-file contoso.toml --yes",
    ),
    "psrunner resume": (
        "psrunner resume 20261130T070213Z-m365-backup-access-27eff0",
        "psrunner resume 20261130T070213Z-m365-backup-access-27eff0 --yes",
    ),
    "psrunner render": (
        "psrunner render m365-backup-access --stage spo-settings",
    ),
    "psrunner runs": (
        "psrunner runs",
        "psrunner runs --output json",
    ),
    "psrunner runs show": (
        "psrunner runs show 20261130T070213Z-m365-backup-access-27eff0",
        "psrunner runs show RUN_ID --state-dir /var/lib/psrunner -o json",
    ),
    "psrunner runs prune": (
        "psrunner runs prune --older-than 30d --dry-run",
    ),
    "psrunner demo": (
        "psrunner demo",
        "psrunner demo --output json",
    ),
    "psrunner serve": (
        "psrunner serve --demo",
        "psrunner serve --config portal.toml",
    ),
    "psrunner accounts": (
        "psrunner accounts set accounts.toml jdoe --role helpdesk",
    ),
    "psrunner accounts set": (
        "psrunner accounts set accounts.toml jdoe --role helpdesk",
        "psrunner accounts set accounts.toml jdoe --role helpdesk --password-stdin",
    ),
    "psrunner sim": (
        "psrunner sim serve --tenant-port 0 --host-port 0",
    ),
    "psrunner sim serve": (
        "psrunner sim serve --tenant-port 0 --host-port 0",
        "psrunner sim serve --fault '429=2:GET:/v1\\.0/applications:3'",
    ),
    "psrunner fleet": (
        "psrunner fleet plan m365-backup-access -i fleet.toml",
    ),
    "psrunner fleet plan": (
        "psrunner fleet plan m365-backup-access -i fleet.toml --limit europe",
    ),
    "psrunner fleet check": (
        "psrunner fleet check m365-backup-access -i fleet.toml --parallel 16",
    ),
    "psrunner fleet run": (
        "psrunner fleet run m365-backup-access -i fleet.toml --yes --shard 2/3",
    ),
    "psrunner worker": (
        "psrunner worker --broker redis://broker.contoso.local:6379/0",
    ),
}


def examples_text(lines: tuple[str, ...]) -> str:
    """The examples as one paragraph click prints as it is (`\\b`), not rewrapped."""
    return "\b\nExamples:\n" + "\n".join(f"  {line}" for line in lines)


def add_examples(command: click.Command, path: str = "psrunner") -> None:
    """Put EXAMPLES[path] at the head of the epilog of `command` and of every command under it."""
    if path in EXAMPLES:
        text = examples_text(EXAMPLES[path])
        command.epilog = f"{text}\n\n{command.epilog}" if command.epilog else text
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            add_examples(sub, f"{path} {name}")
