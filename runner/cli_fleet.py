"""`psrunner fleet plan|check|run` and `psrunner worker`: a runbook on the targets of an
inventory, here or on Celery workers (runner.fleet). Registered on the command line's group
by cli.py; the work is done by runner.fleet.run_fleet."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .cli_common import (is_interactive, keep_option, print_json, runbooks_option, setup_logging,
                         state_option, verbosity)

FLEET_EXIT_HELP = ("Exit code: the worst of the targets' (in this order: 130 interrupted, 1 failed, 2 bad input, "
                   "3 drift, 4 a person must act, 0 done / in place).")


@click.group()
def fleet() -> None:
    """A runbook on many targets (tenants, hosts) of an inventory file, at most --parallel at
    once, each in its own run directory, with one aggregate report."""


def _redeliver_option(f):
    return click.option("--redeliver-after", type=click.FloatRange(min=1), default=3600, show_default=True,
                        metavar="SECONDS", help="with Celery: a task whose worker was lost goes to another worker "
                                                "after this long (more than the longest target deadline)")(f)


def _fleet_options(f):
    f = _redeliver_option(f)
    f = click.option("--broker", metavar="URL", envvar="PSRUNNER_BROKER",
                     help="with --executor celery: the broker, e.g. redis://host:6379/0 [$PSRUNNER_BROKER]")(f)
    f = click.option("--executor", type=click.Choice(["local", "celery"]), default="local", show_default=True,
                     help="local: threads of this process; celery: one task per target to `psrunner worker`s")(f)
    f = click.option("--shard", metavar="i/n", help="only this machine's share: shard i of n (by target name)")(f)
    f = click.option("--parallel", type=click.IntRange(min=1), default=4, show_default=True,
                     help="targets under way at once")(f)
    f = click.option("--limit", "limits", multiple=True, metavar="GROUP|NAME",
                     help="only these targets or groups (repeatable, or comma separated)")(f)
    f = click.option("--inventory", "-i", required=True, type=click.Path(dir_okay=False), metavar="FILE",
                     help="the TOML inventory: targets, groups, parameters, credential references")(f)
    for deco in (runbooks_option, state_option, keep_option, verbosity):
        f = deco(f)
    f = click.option("--output", "-o", type=click.Choice(["human", "json", "junit"]), default="human",
                     show_default=True, help="a table; one JSON document; JUnit XML (a test suite per target)")(f)
    return click.argument("runbook")(f)


def _fleet(mode: str, runbook, inventory, limits, parallel, shard, executor, broker, redeliver_after, runbook_dirs,
           state_dir, keep, verbose, quiet, output, strict: bool = False) -> None:
    setup_logging(verbose, quiet)
    from .fleet.inventory import load_inventory, shard as share
    from .fleet.report import junit, table
    from .fleet.run import run_fleet
    inv = load_inventory(inventory)
    targets = share(inv.select(limits), shard)
    ex = None
    if executor == "celery":
        from .fleet.celery_app import CeleryExecutor
        ex = CeleryExecutor(broker, redeliver_after=redeliver_after)
    say = None if quiet or output != "human" else (
        lambda t: click.echo(f"{t.exit_code:>4}  {t.target}: {t.summary}", err=True))
    result = run_fleet(runbook, inv, targets, mode=mode, parallel=parallel, executor=ex, state_dir=state_dir,
                       runbook_dirs=runbook_dirs, keep=keep, strict=strict, on_done=say)
    if output == "json":
        print_json(result.to_dict())
    elif output == "junit":
        click.echo(junit(result, strict=strict), nl=False)
    else:
        click.echo(table(result), nl=False)
    sys.exit(int(result.exit_code))


@fleet.command("plan", epilog=FLEET_EXIT_HELP)
@_fleet_options
def fleet_plan(**kw) -> None:
    """Plan RUNBOOK on every target: what would change where. Changes nothing."""
    _fleet("plan", **kw)


@fleet.command("check", epilog=FLEET_EXIT_HELP)
@_fleet_options
@click.option("--strict", is_flag=True, help="count what the platform refuses for good as drift too")
def fleet_check(strict, **kw) -> None:
    """Is everything in place on every target? Exit 0 in place, 3 drift, 4 a person must act."""
    _fleet("check", strict=strict, **kw)


@fleet.command("run", epilog=FLEET_EXIT_HELP)
@_fleet_options
@click.option("--yes", "-y", is_flag=True, help="apply on every target without asking (needed without a terminal)")
def fleet_run(yes, **kw) -> None:
    """Apply RUNBOOK on every target (plan the fleet first with `psrunner fleet plan`)."""
    if not yes:
        from .errors import InputError
        if not is_interactive():
            raise InputError("a fleet run changes every target and no terminal is attached to confirm",
                             input="--yes", hint="plan it first (`psrunner fleet plan ...`), then run with --yes")
        if not click.confirm(f"Apply {kw['runbook']} to the targets of {kw['inventory']}?", default=False, err=True):
            click.echo("nothing changed", err=True)
            sys.exit(0)
    _fleet("run", **kw)


@click.command()
@click.option("--broker", metavar="URL", envvar="PSRUNNER_BROKER", required=True,
              help="the broker to take tasks from, e.g. redis://host:6379/0 [$PSRUNNER_BROKER]")
@click.option("--concurrency", type=click.IntRange(min=1), default=2, show_default=True,
              help="tasks (targets) this worker runs at once")
@click.option("--name", "hostname", metavar="NAME", help="the worker's name (default: psrunner@HOSTNAME)")
@_redeliver_option
@state_option
@verbosity
def worker(broker, concurrency, hostname, redeliver_after, state_dir, verbose, quiet) -> None:
    """A Celery worker that runs psrunner's fleet tasks: each one target's plan, check or run,
    in this machine's state folder, with the secrets this machine's references name."""
    setup_logging(verbose, quiet)
    from .fleet.celery_app import run_worker
    run_worker(broker, concurrency=concurrency, hostname=hostname, state_dir=Path(state_dir) if state_dir else None,
               loglevel="INFO" if verbose else "WARNING", redeliver_after=redeliver_after)


__all__ = ["fleet", "worker"]
