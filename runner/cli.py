"""The command line: parses, calls runner.api, prints. Nothing else lives here.

Exit codes: 0 success (including runs that end with actions for a person, which are listed),
1 a stage failed, 2 bad input or usage, 3 drift found (`check`), 130 interrupted.
Heavy libraries (msal, pypsrp, cryptography) are imported only when a stage needs them, so
`psrunner --help` and `psrunner list` start fast."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import click

from . import __version__
from .errors import InputError, RunnerError
from .portal.commands import accounts as portal_accounts
from .results import RunResult, RunStatus

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_DRIFT, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


# ---------------------------------------------------------------------------- shared options

def _output_option(f):
    return click.option("--output", "-o", type=click.Choice(["human", "json"]), default="human",
                        show_default=True, help="human text, or JSON on stdout for scripts")(f)


def _state_option(f, envvar: str | None = "PSRUNNER_STATE_DIR"):
    return click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path),
                        envvar=envvar,
                        help="where runs, locks and private files live "
                             "[default: $PSRUNNER_STATE_DIR, else the per-user state directory]")(f)


def _state_option_again(f):
    """--state-dir after a subcommand of a group that takes it too (`runs show ID --state-dir D`):
    without the environment variable, which the group's option reads, so it cannot override
    an explicit group option."""
    return _state_option(f, envvar=None)


def _runbooks_option(f):
    return click.option("--runbooks", "runbook_dirs", multiple=True, metavar="DIR",
                        type=click.Path(file_okay=False, path_type=Path),
                        help="look for runbooks in DIR first (repeatable); then $PSRUNNER_RUNBOOKS, "
                             "the user's and the system's config folders, then the built-ins")(f)


def _param_options(f):
    f = click.option("--secret-file", "secret_files", multiple=True, metavar="NAME=PATH",
                     help="read secret parameter NAME from a file (never pass secrets on the command line)")(f)
    f = click.option("--params-file", type=click.Path(dir_okay=False), metavar="FILE",
                     help="TOML or JSON file of name = value parameters")(f)
    f = click.option("-p", "--param", "params", multiple=True, metavar="NAME=VALUE",
                     help="a runbook parameter (repeatable)")(f)
    return f


def _verbosity(f):
    f = click.option("-v", "--verbose", count=True, help="more log output on stderr (-vv for debug)")(f)
    f = click.option("-q", "--quiet", is_flag=True, help="only errors on stderr; no progress lines")(f)
    return f


def _setup_logging(verbose: int, quiet: bool) -> None:
    from .secrets import RedactingFilter
    level = logging.ERROR if quiet else (logging.WARNING, logging.INFO, logging.DEBUG)[min(verbose, 2)]
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("psrunner")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def _gather_params(rb, params, params_file, secret_files, *, need_secrets=True, partial=False):
    from .api import resolve_params
    from .params import load_params_file, parse_assignments, tty_ask, tty_prompt
    given: dict[str, Any] = {}
    if params_file:
        given.update(load_params_file(params_file))
    given.update(parse_assignments(list(params)))
    files = parse_assignments(list(secret_files), "--secret-file")
    asking = need_secrets and not partial and _interactive()      # a person can answer
    return resolve_params(rb, given, secret_files=files, prompt=tty_prompt if need_secrets else None,
                          need_secrets=need_secrets, partial=partial, ask=tty_ask if asking else None)


# ---------------------------------------------------------------------------- the group

@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="psrunner")
def cli() -> None:
    """Runbooks for Windows and Microsoft 365 administration: Microsoft Graph and PowerShell
    over WinRM, planned first, safe to re-run, every step reported truthfully.

    Start with `psrunner list`, then `psrunner show RUNBOOK` and `psrunner plan RUNBOOK`."""


@cli.command("list")
@click.option("--audience", type=click.Choice(["helpdesk", "admin", "scheduled"]),
              help="only the runbooks for these people")
@_runbooks_option
@_output_option
def list_cmd(audience: str | None, runbook_dirs: tuple[Path, ...], output: str) -> None:
    """List the runbooks: yours (--runbooks, $PSRUNNER_RUNBOOKS, config folders), then the built-ins."""
    from .api import list_runbooks
    books = list_runbooks(runbook_dirs, audience)
    if output == "json":
        _json([b.to_dict() for b in books])
        return
    from . import render_text
    for line in render_text.catalog(books):
        click.echo(line)


@cli.command()
@click.argument("runbook")
@_runbooks_option
@_output_option
def show(runbook: str, runbook_dirs: tuple[Path, ...], output: str) -> None:
    """Show a runbook: what it does, where it came from, the rights it needs, its parameters
    and stages, and an example command line."""
    from .api import load_runbook
    from . import render_text
    rb = load_runbook(runbook, runbook_dirs)
    if output == "json":
        _json(rb.to_dict())
        return
    click.echo(render_text.show(rb, runbook_dirs=runbook_dirs, given=runbook))


def _run_common(f):
    for deco in (_param_options, _runbooks_option, _state_option, _output_option, _verbosity):
        f = deco(f)
    return click.argument("runbook")(f)


def _plan(runbook, params, params_file, secret_files, runbook_dirs, state_dir, output, verbose,
          quiet) -> RunResult:
    _setup_logging(verbose, quiet)
    from .api import load_runbook
    from .api import plan as api_plan
    rb = load_runbook(runbook, runbook_dirs)
    values, sources = _gather_params(rb, params, params_file, secret_files)
    return api_plan(rb, values, state_dir=state_dir, secret_sources=sources,
                    on_event=_progress(output, quiet), interactive=_interactive())


@cli.command()
@_run_common
def plan(runbook, params, params_file, secret_files, runbook_dirs, state_dir, output, verbose, quiet) -> None:
    """Show what a run would change, changing nothing."""
    _finish(_plan(runbook, params, params_file, secret_files, runbook_dirs, state_dir, output, verbose,
                  quiet), output)


@cli.command()
@_run_common
def check(runbook, params, params_file, secret_files, runbook_dirs, state_dir, output, verbose, quiet) -> None:
    """Report drift: like plan, but exit 3 when anything would change (for scheduled runs)."""
    result = _plan(runbook, params, params_file, secret_files, runbook_dirs, state_dir, output, verbose,
                   quiet)
    code = _finish(result, output, exit_now=False)
    if code == EXIT_OK and result.changed:
        if output == "human":
            click.echo("drift: the stages marked 'would change' differ from the runbook", err=True)
        sys.exit(EXIT_DRIFT)
    sys.exit(code)


def _yes_option(f):
    return click.option("--yes", "-y", is_flag=True,
                        help="apply without asking (needed when stdin is not a terminal)")(f)


@cli.command()
@_run_common
@_yes_option
@click.option("--show-secret", is_flag=True,
              help="print a newly created client secret in the report (only when stdout is a terminal)")
def run(runbook, params, params_file, secret_files, runbook_dirs, state_dir, output, verbose, quiet, yes,
        show_secret) -> None:
    """Apply a runbook: check each stage's state, change what differs, report each stage.

    On a terminal it shows the plan and asks first, unless --yes. Without a terminal a run
    that would change anything needs --yes."""
    _setup_logging(verbose, quiet)
    from .api import load_runbook, plan as api_plan, run as api_run
    rb = load_runbook(runbook, runbook_dirs)
    values, sources = _gather_params(rb, params, params_file, secret_files)
    if not yes:
        preview = api_plan(rb, values, state_dir=state_dir, secret_sources=sources,
                           on_event=_progress(output, quiet), interactive=_interactive())
        if not _agreed(preview, output):
            sys.exit(EXIT_OK)
    result = api_run(rb, values, state_dir=state_dir, secret_sources=sources,
                     on_event=_progress(output, quiet), interactive=_interactive())
    shown = show_secret and sys.stdout.isatty()
    _finish(result, output, show_secret=shown, exit_now=not show_secret)
    if show_secret and not shown:
        click.echo("--show-secret: nothing printed, because stdout is not a terminal (a secret must not "
                   "land in a pipe or a file); the report names the 0600 file that holds it", err=True)
    sys.exit(_exit_code(result))


def _agreed(preview: RunResult, output: str) -> bool:
    """Show what a run would change and ask before applying (on a terminal: stdin is one).
    A failed plan ends here with its report; without a terminal a plan that would change
    anything is refused (exit 2) after printing it, so a script sees what it needs --yes for."""
    if preview.status == RunStatus.FAILED:
        _finish(preview, output)
    if not preview.changed:
        return True
    if output == "human":
        from . import render_text
        click.echo(render_text.result(preview, color=_color()))
    elif not _interactive():
        _json(preview.to_dict())     # the plan the error below refers to
    if not _interactive():
        raise InputError("this run would change things and no terminal is attached to confirm",
                         input="--yes", hint="review the plan above, then run again with --yes")
    if click.confirm("Apply these changes?", default=False, err=True):
        return True
    click.echo("nothing changed", err=True)
    return False


@cli.command()
@click.argument("run_id")
@click.option("--secret-file", "secret_files", multiple=True, metavar="NAME=PATH",
              help="read secret parameter NAME from a file")
@_yes_option
@_state_option
@_output_option
@_verbosity
def resume(run_id, secret_files, yes, state_dir, output, verbose, quiet) -> None:
    """Continue an interrupted or failed run: stages already done with the same inputs are
    not repeated. Like `run`, it shows what it would change and asks first, unless --yes."""
    _setup_logging(verbose, quiet)
    from .api import resume as api_resume
    from .params import parse_assignments, tty_prompt
    result = api_resume(run_id, state_dir=state_dir, on_event=_progress(output, quiet),
                        interactive=_interactive(), prompt=tty_prompt,
                        secret_files=parse_assignments(list(secret_files), "--secret-file"),
                        confirm=None if yes else (lambda preview: _agreed(preview, output)))
    if result is None:
        sys.exit(EXIT_OK)
    _finish(result, output)


@cli.command()
@click.argument("runbook")
@click.option("--stage", "stage_id", required=True, help="the stage whose script to print")
@_param_options
@_runbooks_option
def render(runbook, stage_id, params, params_file, secret_files, runbook_dirs) -> None:
    """Print the PowerShell script a stage sends (values travel as parameters, not in the text)."""
    from .api import load_runbook, render as api_render
    rb = load_runbook(runbook, runbook_dirs)
    _gather_params(rb, params, params_file, secret_files, need_secrets=False, partial=True)
    click.echo(api_render(rb, stage_id), nl=False)


@cli.group(invoke_without_command=True)
@_state_option
@_output_option
@click.pass_context
def runs(ctx, state_dir, output) -> None:
    """List past runs (newest first); `runs show RUN_ID` prints one."""
    ctx.obj = {"state_dir": state_dir}
    if ctx.invoked_subcommand:
        return
    from .api import runs as api_runs
    items = api_runs(state_dir)
    if output == "json":
        _json(items)
        return
    if not items:
        click.echo("no runs yet")
    for r in items:
        click.echo(f"{r['run_id']}  {r['mode'] or '?':<4}  {r['status'] or '?':<15}  {r['runbook'] or '?'}")


@runs.command("show")
@click.argument("run_id")
@_state_option_again
@_output_option
@click.pass_context
def runs_show(ctx, run_id, state_dir, output) -> None:
    """Print the report of one run (--state-dir before or after `show`)."""
    from .api import load_run
    _, _, result = load_run(run_id, state_dir or ctx.obj["state_dir"])
    if output == "json":
        _json(result.to_dict())
        return
    from . import render_text
    click.echo(render_text.result(result, color=_color()))


@cli.command()
@_state_option
@_output_option
@_verbosity
def demo(state_dir, output, verbose, quiet) -> None:
    """Run the m365-backup-access runbook against the embedded tenant and host simulators:
    plan, run, then run again (everything already done). Needs the `sim` extra.
    Its runs are kept in a new temporary folder unless --state-dir names one."""
    _setup_logging(verbose, quiet)
    from .sim.demo import run_demo
    code = run_demo(state_dir=state_dir, output=output, quiet=quiet,
                    progress=_progress(output, quiet), color=_color())
    sys.exit(code)


@cli.command()
@click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="TLS, sign-in, policy, what the server holds per runbook (docs/portal.md); "
                   "without it: 127.0.0.1 and a one-time sign-in link")
@click.option("--listen", metavar="HOST:PORT", help="where to listen [default: 127.0.0.1:8765]")
@click.option("--demo", is_flag=True, help="on the embedded simulators, with demo people to sign in as")
@_runbooks_option
@_state_option
@_verbosity
def serve(config_file, listen, demo, runbook_dirs, state_dir, verbose, quiet) -> None:
    """The helpdesk portal: the runbooks in a browser, with roles, approvals and an audit log
    (pip install 'psrunner[portal]')."""
    _setup_logging(verbose, quiet)
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
@_state_option
def sim_serve(tenant_port, host_port, faults, public_names, state_dir) -> None:
    """Serve both simulators on loopback until Ctrl-C, printing how to point psrunner at them
    and how to inject faults while they run (to rehearse an outage)."""
    from .sim.demo import serve_sims
    serve_sims(tenant_port=tenant_port, host_port=host_port, state_dir=state_dir, faults=faults,
               public_names=public_names)


# ---------------------------------------------------------------------------- output

def _interactive() -> bool:
    """A person can answer: stdin is a terminal. Where stdout goes does not matter (`| tee`,
    `> plan.txt`): questions, sign-in codes and prompts go to stderr."""
    return sys.stdin.isatty()


def _color() -> bool:
    """Colour in the report on stdout, only when stdout is a terminal (never in a file)."""
    return sys.stdout.isatty()


def _json(obj: Any) -> None:
    from .rundir import dumps
    click.echo(dumps(obj, indent=2))


def _progress(output: str, quiet: bool):
    if quiet:
        return None
    from .render_text import Progress
    return Progress(stream=sys.stderr, live=sys.stderr.isatty())


def _exit_code(result: RunResult) -> int:
    if result.status == RunStatus.INTERRUPTED:
        return EXIT_INTERRUPTED
    if result.status == RunStatus.FAILED:
        codes = [(s.error or {}).get("exit_code", 1) for s in result.stages if s.status.value == "failed"]
        return EXIT_USAGE if codes and all(c == 2 for c in codes) else EXIT_FAILED
    return EXIT_OK


def _finish(result: RunResult, output: str, *, exit_now: bool = True, show_secret: bool = False) -> int:
    from . import render_text
    if output == "json":
        _json(result.to_dict())
    else:
        click.echo(render_text.result(result, color=_color(), show_secret=show_secret,
                                      terminal=sys.stdout.isatty()))
    # a one-time password is shown once, on a terminal, never into a pipe or a file: on stderr
    # when the report went elsewhere (JSON, `| tee`) but a person is still watching
    if (output == "json" or not sys.stdout.isatty()) and sys.stderr.isatty():
        for line in render_text.one_time_passwords(result):
            click.echo(line, err=True)
    code = _exit_code(result)
    if exit_now:
        sys.exit(code)
    return code


def main(argv: list[str] | None = None) -> None:
    try:
        cli.main(args=argv, prog_name="psrunner", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except click.ClickException as e:
        e.show()
        sys.exit(EXIT_USAGE)
    except RunnerError as e:
        from .secrets import redact
        click.echo(f"error: {redact(str(e))}", err=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    sys.exit(EXIT_OK)


if __name__ == "__main__":  # pragma: no cover
    main()
