"""The command line: parses, calls runner.api, prints. Nothing else lives here.

Exit codes (runner.results.ExitCode): 0 done / in place, 1 a stage failed, 2 bad input or
usage, 3 drift found (`check`), 4 done or in place but a person must act (listed), 130
interrupted. With `--output nagios` a monitoring plugin's 0-3 instead (runner.outputs).
Heavy libraries (msal, pypsrp, cryptography) are imported only when a stage needs them, so
`psrunner --help` and `psrunner list` start fast."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from . import __version__
from .cli_common import (EXIT_CODES_HELP, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, error_text, exit_status, fail,
                         finish, gather_params, is_interactive, keep_option, output_option, param_options,
                         print_json, progress_sink, report, report_output_option, requested_output,
                         runbooks_option, setup_logging, state_option, state_option_again, use_color, verbosity,
                         yes_option)
from .cli_examples import add_examples
from .errors import InputError, RunnerError
from .text_width import terminal_width
from .portal.commands import accounts as portal_accounts
from .results import ExitCode, RunResult, RunStatus

# ---------------------------------------------------------------------------- the group

@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
             epilog=EXIT_CODES_HELP)
@click.version_option(__version__, prog_name="psrunner")
def cli() -> None:
    """Runbooks for Windows and Microsoft 365 administration: Microsoft Graph and PowerShell
    over WinRM, planned first, safe to re-run, every step reported truthfully.

    Start with `psrunner list`, then `psrunner show RUNBOOK` and `psrunner plan RUNBOOK`."""


@cli.command("list")
@click.option("--audience", type=click.Choice(["helpdesk", "admin", "scheduled"]),
              help="only the runbooks for these people")
@runbooks_option
@output_option
def list_cmd(audience: str | None, runbook_dirs: tuple[Path, ...], output: str) -> None:
    """List the runbooks: yours (--runbooks, $PSRUNNER_RUNBOOKS, config folders), then the built-ins."""
    from .api import list_runbooks
    books = list_runbooks(runbook_dirs, audience)
    if output == "json":
        print_json([b.to_dict() for b in books])
        return
    from . import render_text
    for line in render_text.catalog(books):
        click.echo(line)


@cli.command()
@click.argument("runbook")
@runbooks_option
@output_option
def show(runbook: str, runbook_dirs: tuple[Path, ...], output: str) -> None:
    """Show a runbook: what it does, where it came from, the rights it needs, its parameters
    and stages, and an example command line."""
    from .api import load_runbook
    from . import render_text
    rb = load_runbook(runbook, runbook_dirs)
    if output == "json":
        print_json(rb.to_dict())
        return
    click.echo(render_text.show(rb, runbook_dirs=runbook_dirs, given=runbook))


def _run_common(f):
    for deco in (param_options, runbooks_option, state_option, keep_option, report_output_option, verbosity):
        f = deco(f)
    return click.argument("runbook")(f)


def _plan(runbook, params, params_file, secret_files, runbook_dirs, state_dir, keep, output, verbose,
          quiet, mode: str = "plan") -> RunResult:
    setup_logging(verbose, quiet)
    from .api import check as api_check, load_runbook, plan as api_plan
    rb = load_runbook(runbook, runbook_dirs)
    values, sources = gather_params(rb, params, params_file, secret_files, runbook_dirs)
    return (api_check if mode == "check" else api_plan)(
        rb, values, state_dir=state_dir, secret_sources=sources, on_event=progress_sink(output, quiet),
        interactive=is_interactive(), keep=keep)


@cli.command()
@_run_common
def plan(runbook, params, params_file, secret_files, runbook_dirs, state_dir, keep, output, verbose,
         quiet) -> None:
    """Show what a run would change, changing nothing."""
    finish(_plan(runbook, params, params_file, secret_files, runbook_dirs, state_dir, keep, output, verbose,
                 quiet), output)


@cli.command(epilog=EXIT_CODES_HELP)
@_run_common
@click.option("--strict", is_flag=True,
              help="count what the platform refuses for good as drift too (by default it is reported, "
                   "not counted)")
@click.option("--summary", is_flag=True, help="print one line instead of the report (human output)")
def check(runbook, params, params_file, secret_files, runbook_dirs, state_dir, keep, output, verbose, quiet,
          strict, summary) -> None:
    """Is everything in place? Like plan, for schedulers and monitoring: exit 0 in place,
    3 drift (something would change), 4 in place but a person must act, 1 failed."""
    result = _plan(runbook, params, params_file, secret_files, runbook_dirs, state_dir, keep, output, verbose,
                   quiet, mode="check")
    if summary and output == "human":
        from .outputs import summary as one_line
        click.echo(one_line(result, strict=strict))
        sys.exit(int(result.exit_code(strict=strict)))
    code = finish(result, output, exit_now=False, strict=strict)
    if code == ExitCode.DRIFT and output == "human":
        click.echo("drift: the stages marked 'would change' differ from the runbook", err=True)
    sys.exit(code)


@cli.command(epilog=EXIT_CODES_HELP)
@_run_common
@yes_option
@click.option("--show-secret", is_flag=True,
              help="print a newly created client secret in the report (only when stdout is a terminal)")
def run(runbook, params, params_file, secret_files, runbook_dirs, state_dir, keep, output, verbose, quiet, yes,
        show_secret) -> None:
    """Apply a runbook: check each stage's state, change what differs, report each stage.

    On a terminal it shows the plan and asks first, unless --yes. Without a terminal a run
    that would change anything needs --yes."""
    setup_logging(verbose, quiet)
    from .api import load_runbook, plan as api_plan, run as api_run
    rb = load_runbook(runbook, runbook_dirs)
    values, sources = gather_params(rb, params, params_file, secret_files, runbook_dirs)
    if not yes:
        preview = api_plan(rb, values, state_dir=state_dir, secret_sources=sources,
                           on_event=progress_sink(output, quiet), interactive=is_interactive())
        if not _agreed(preview, output):
            sys.exit(EXIT_OK)
    result = api_run(rb, values, state_dir=state_dir, secret_sources=sources,
                     on_event=progress_sink(output, quiet), interactive=is_interactive(), keep=keep)
    shown = show_secret and sys.stdout.isatty()
    finish(result, output, show_secret=shown, exit_now=not show_secret)
    if show_secret and not shown:
        click.echo("--show-secret: nothing printed, because stdout is not a terminal (a secret must not "
                   "land in a pipe or a file); the report names the 0600 file that holds it", err=True)
    sys.exit(exit_status(result, output))


def _agreed(preview: RunResult, output: str) -> bool:
    """Show what a run would change and ask before applying (on a terminal: stdin is one).
    A failed plan ends here with its report; without a terminal a plan that would change
    anything is refused (exit 2) after printing it, so a script sees what it needs --yes for."""
    if preview.status == RunStatus.FAILED:
        finish(preview, output)
    if not preview.changed:
        return True
    if output == "human":
        click.echo(report(preview))
    if not is_interactive():
        # in JSON the plan travels inside the one error document (runner.outputs.error_document)
        raise InputError("this run would change things and no terminal is attached to confirm",
                         input="--yes", hint="review the plan above, then run again with --yes",
                         plan=preview.to_dict() if output == "json" else None)
    if click.confirm("Apply these changes?", default=False, err=True):
        return True
    click.echo("nothing changed", err=True)
    return False


@cli.command(epilog=EXIT_CODES_HELP)
@click.argument("run_id")
@click.option("--secret-file", "secret_files", multiple=True, metavar="NAME=PATH",
              help="read secret parameter NAME from a file")
@yes_option
@state_option
@report_output_option
@verbosity
def resume(run_id, secret_files, yes, state_dir, output, verbose, quiet) -> None:
    """Continue an interrupted or failed run: stages already done with the same inputs are
    not repeated. Like `run`, it shows what it would change and asks first, unless --yes."""
    setup_logging(verbose, quiet)
    from .api import resume as api_resume
    from .params import parse_assignments, tty_prompt
    result = api_resume(run_id, state_dir=state_dir, on_event=progress_sink(output, quiet),
                        interactive=is_interactive(), prompt=tty_prompt,
                        secret_files=parse_assignments(list(secret_files), "--secret-file"),
                        confirm=None if yes else (lambda preview: _agreed(preview, output)))
    if result is None:
        sys.exit(EXIT_OK)
    finish(result, output)


@cli.command()
@click.argument("runbook")
@click.option("--stage", "stage_id", required=True, help="the stage whose script to print")
@param_options
@runbooks_option
def render(runbook, stage_id, params, params_file, secret_files, runbook_dirs) -> None:
    """Print the PowerShell script a stage sends (values travel as parameters, not in the text)."""
    from .api import load_runbook, render as api_render
    rb = load_runbook(runbook, runbook_dirs)
    gather_params(rb, params, params_file, secret_files, runbook_dirs, need_secrets=False, partial=True)
    click.echo(api_render(rb, stage_id), nl=False)


@cli.group(invoke_without_command=True)
@state_option
@output_option
@click.pass_context
def runs(ctx, state_dir, output) -> None:
    """List past runs (newest first); `runs show RUN_ID` prints one."""
    ctx.obj = {"state_dir": state_dir}
    if ctx.invoked_subcommand:
        return
    from .api import runs as api_runs
    items = api_runs(state_dir)
    if output == "json":
        print_json(items)
        return
    if not items:
        click.echo("no runs yet")
    for r in items:
        click.echo(f"{r['run_id']}  {r['mode'] or '?':<5}  {r['status'] or '?':<15}  {r['runbook'] or '?'}")


@runs.command("prune")
@click.option("--older-than", required=True, metavar="AGE", help="remove runs started before this: 30d, 12h, 2w")
@click.option("--dry-run", is_flag=True, help="say what would be removed, remove nothing")
@state_option_again
@click.pass_context
def runs_prune(ctx, older_than, dry_run, state_dir) -> None:
    """Remove finished runs older than AGE, saying which. Never a run under way, never the
    private files (secrets the next run reads)."""
    from .api import prune_runs
    removed = prune_runs(older_than, state_dir or ctx.obj["state_dir"], dry_run=dry_run)
    verb = "would remove" if dry_run else "removed"
    for r in removed:
        click.echo(f"{verb} {r.run_id}  {r.mode:<5}  {r.runbook}  started {r.started}  ({r.bytes // 1024} KB)")
    click.echo(f"{verb} {len(removed)} run(s), {sum(r.bytes for r in removed) // 1024} KB")


@runs.command("show")
@click.argument("run_id")
@state_option_again
@output_option
@click.pass_context
def runs_show(ctx, run_id, state_dir, output) -> None:
    """Print the report of one run (--state-dir before or after `show`)."""
    from .api import load_run
    _, _, result = load_run(run_id, state_dir or ctx.obj["state_dir"])
    if output == "json":
        print_json(result.to_dict())
        return
    click.echo(report(result))


@cli.command()
@state_option
@output_option
@verbosity
def demo(state_dir, output, verbose, quiet) -> None:
    """Run the m365-backup-access runbook against the embedded tenant and host simulators:
    plan, run, then run again (everything already done). Needs the `sim` extra.
    Its runs are kept in a new temporary folder unless --state-dir names one."""
    setup_logging(verbose, quiet)
    from .sim.demo import run_demo
    code = run_demo(state_dir=state_dir, output=output, quiet=quiet,
                    progress=progress_sink(output, quiet), color=use_color(), width=terminal_width())
    sys.exit(code)


@cli.command()
@click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="TLS, sign-in, policy, what the server holds per runbook (docs/portal.md); "
                   "without it: 127.0.0.1 and a one-time sign-in link")
@click.option("--listen", metavar="HOST:PORT", help="where to listen [default: 127.0.0.1:8765]")
@click.option("--demo", is_flag=True, help="on the embedded simulators, with demo people to sign in as")
@runbooks_option
@state_option
@verbosity
def serve(config_file, listen, demo, runbook_dirs, state_dir, verbose, quiet) -> None:
    """The helpdesk portal: the runbooks in a browser, with roles, approvals and an audit log
    (pip install 'psrunner[portal]')."""
    setup_logging(verbose, quiet)
    if demo:
        from .portal.demo import serve_demo
        serve_demo(listen=listen, state_dir=state_dir, runbook_dirs=runbook_dirs, say=click.echo)
    else:
        from .portal.server import serve as serve_portal
        serve_portal(config_file=config_file, listen=listen, runbook_dirs=runbook_dirs, state_dir=state_dir,
                     say=click.echo)


cli.add_command(portal_accounts)


@cli.group()
def sim() -> None:
    """The embedded simulators (a Microsoft 365 tenant, a Windows host), for trying runbooks."""


@sim.command("serve")
@click.option("--tenant-port", default=8443, show_default=True, help="0 picks a free port")
@click.option("--host-port", default=5986, show_default=True, help="0 picks a free port")
@click.option("--fault", "faults", multiple=True, metavar="KIND[=VALUE]:METHOD:PATH[:COUNT]",
              help="arm a tenant fault from the start (repeatable). KIND: 429, 503, 504 (VALUE: "
                   "Retry-After seconds), reset-before, drop-after, read-timeout (VALUE: hang seconds), "
                   "latency, item-latency (VALUE: seconds, required), lag, lag-403 (VALUE: lookups, or "
                   "seconds as 1.5s). METHOD: GET, POST, PATCH, DELETE, PUT or *. PATH: a regular expression "
                   "searched in the request path. COUNT: times it fires (default 1), * for always. "
                   "E.g. --fault '429=2:GET:/v1\\.0/applications:3' --fault 'latency=0.05:*:.*:*'. "
                   "While running, POST more to /_sim/faults and read counters at /_sim/requests.")
@click.option("--public-name", "public_names", multiple=True, metavar="NAME",
              help="also serve the tenant under NAME (repeatable), e.g. graph.microsoft.com and "
                   "login.microsoftonline.com: its certificate names them; map them to 127.0.0.1 in the "
                   "hosts file and trust the printed CA")
@state_option
def sim_serve(tenant_port, host_port, faults, public_names, state_dir) -> None:
    """Serve both simulators on loopback until Ctrl-C, printing how to point psrunner at them
    and how to inject faults while they run (to rehearse an outage)."""
    from .sim.demo import serve_sims
    serve_sims(tenant_port=tenant_port, host_port=host_port, state_dir=state_dir, faults=faults,
               public_names=public_names)


# ---------------------------------------------------------------------------- output

def _register_fleet_commands() -> None:
    from .cli_fleet import fleet, worker
    cli.add_command(fleet)
    cli.add_command(worker)


_register_fleet_commands()
add_examples(cli)


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    output = requested_output(args)
    try:
        cli.main(args=args, prog_name="psrunner", standalone_mode=False)
    except click.exceptions.Abort as e:
        fail(e, EXIT_INTERRUPTED, output, lambda: click.echo("aborted", err=True))
    except click.ClickException as e:
        fail(InputError(e.format_message(), hint="the command's -h lists its options"), EXIT_USAGE, output, e.show)
    except RunnerError as e:
        text = error_text(e)
        fail(e, e.exit_code, output, lambda: click.echo(text, err=True))
    except KeyboardInterrupt as e:
        fail(e, EXIT_INTERRUPTED, output, lambda: click.echo("interrupted", err=True))
    sys.exit(EXIT_OK)


if __name__ == "__main__":  # pragma: no cover
    main()
