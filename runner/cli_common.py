"""What the commands of the command line share: their options, logging, how parameters are
gathered, and how a result is printed and turned into an exit status (runner.outputs has
the machine-readable forms). cli.py and the fleet commands both build on it."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import click

from .outputs import REPORT_FORMATS
from .results import ExitCode, RunResult
from .text_width import fill, terminal_width

EXIT_OK, EXIT_USAGE, EXIT_INTERRUPTED = ExitCode.OK, ExitCode.USAGE, ExitCode.INTERRUPTED
EXIT_CODES_HELP = ("Exit codes: 0 done / in place, 1 a stage failed, 2 bad input, 3 drift (check), "
                   "4 in place but a person must act (listed), 130 interrupted; with --output nagios "
                   "0 OK, 1 WARNING (a person must act), 2 CRITICAL (drift), 3 UNKNOWN.")


def output_option(f):
    return click.option("--output", "-o", type=click.Choice(["human", "json"]), default="human",
                        show_default=True, help="human text, or JSON on stdout for scripts")(f)


def report_output_option(f):
    return click.option("--output", "-o", type=click.Choice(REPORT_FORMATS), default="human", show_default=True,
                        help="human text; one JSON document (errors too); JUnit XML for CI and log "
                             "collectors; nagios: a monitoring plugin's status line and exit status")(f)


def state_option(f, envvar: str | None = "PSRUNNER_STATE_DIR"):
    return click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path),
                        envvar=envvar,
                        help="where runs, locks and private files live "
                             "[default: $PSRUNNER_STATE_DIR, else the per-user state directory]")(f)


def keep_option(f):
    return click.option("--keep", type=click.IntRange(min=1), metavar="N",
                        help="afterwards keep only the newest N runs of this runbook, targets and mode "
                             "[checks keep $PSRUNNER_KEEP_CHECKS, else 96, unless told]")(f)


def state_option_again(f):
    """--state-dir after a subcommand of a group that takes it too (`runs show ID --state-dir D`):
    without the environment variable, which the group's option reads, so it cannot override
    an explicit group option."""
    return state_option(f, envvar=None)


def runbooks_option(f):
    return click.option("--runbooks", "runbook_dirs", multiple=True, metavar="DIR",
                        type=click.Path(file_okay=False, path_type=Path),
                        help="look for runbooks in DIR first (repeatable); then $PSRUNNER_RUNBOOKS, "
                             "the user's and the system's config folders, then the built-ins")(f)


def param_options(f):
    f = click.option("--secret-file", "secret_files", multiple=True, metavar="NAME=PATH",
                     help="read secret parameter NAME from a file (never pass secrets on the command line)")(f)
    f = click.option("--params-file", type=click.Path(dir_okay=False), metavar="FILE",
                     help="TOML or JSON file of name = value parameters")(f)
    f = click.option("-p", "--param", "params", multiple=True, metavar="NAME=VALUE",
                     help="a runbook parameter (repeatable)")(f)
    return f


def verbosity(f):
    f = click.option("-v", "--verbose", count=True, help="more log output on stderr (-vv for debug)")(f)
    f = click.option("-q", "--quiet", is_flag=True, help="only errors on stderr; no progress lines")(f)
    return f


def setup_logging(verbose: int, quiet: bool) -> None:
    from .secrets import RedactingFilter
    level = logging.ERROR if quiet else (logging.WARNING, logging.INFO, logging.DEBUG)[min(verbose, 2)]
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("psrunner")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def gather_params(rb, params, params_file, secret_files, runbook_dirs=(), *, need_secrets=True, partial=False):
    from .api import applicable, resolve_params
    from .params import load_params_file, parse_assignments, tty_ask, tty_prompt
    # a params file (or secret files) written for a runbook whose parameters this one accepts
    # serves here too: what only that one takes is left out, with one note
    given, ignored = applicable(rb, load_params_file(params_file) if params_file else {}, runbook_dirs)
    given.update(parse_assignments(list(params)))
    files, ignored_files = applicable(rb, parse_assignments(list(secret_files), "--secret-file"), runbook_dirs)
    if ignored or ignored_files:
        names = sorted(set(ignored) | set(ignored_files))
        note(f"{len(names)} parameter(s) of {', '.join(rb.accepts_params_of)} do not apply to {rb.name} "
             f"and are ignored: {', '.join(names)}")
    asking = need_secrets and not partial and is_interactive()      # a person can answer
    return resolve_params(rb, given, secret_files=files, prompt=tty_prompt if need_secrets else None,
                          need_secrets=need_secrets, partial=partial, ask=tty_ask if asking else None)


def is_interactive() -> bool:
    """A person can answer: stdin is a terminal. Where stdout goes does not matter (`| tee`,
    `> plan.txt`): questions, sign-in codes and prompts go to stderr."""
    return sys.stdin.isatty()


def use_color() -> bool:
    """Colour in the report on stdout, only when stdout is a terminal (never in a file)."""
    return sys.stdout.isatty()


def note(text: str) -> None:
    """A line for the person on stderr, never mixed into what a script reads on stdout."""
    click.echo("\n".join(fill(f"note: {text}", terminal_width(sys.stderr, sys.stdout), hang="      ")), err=True)


def report(result: RunResult, **kw: Any) -> str:
    """A run's report for a person: coloured and wrapped when a terminal shows it."""
    from . import render_text
    return render_text.result(result, color=use_color(), width=terminal_width(), **kw)


def error_text(e: Any) -> str:
    """`error: ...` and its `fix: ...` line, each wrapped under itself, secrets redacted."""
    from .secrets import redact
    width = terminal_width(sys.stderr, sys.stdout)
    lines = fill(f"error: {redact(e.message)}", width, hang="       ")
    if e.hint:
        lines += fill(f"fix: {redact(e.hint)}", width, "  ", "     ")
    return "\n".join(lines)


def print_json(obj: Any) -> None:
    from .rundir import dumps
    click.echo(dumps(obj, indent=2))


def progress_sink(output: str, quiet: bool):
    if quiet:
        return None
    from .render_text import Progress
    return Progress(stream=sys.stderr, live=sys.stderr.isatty(), width=terminal_width(sys.stderr))


def exit_status(result: RunResult, output: str, *, strict: bool = False) -> int:
    """The process's exit status: psrunner's (runner.results.ExitCode), or with --output
    nagios the monitoring plugin's 0-3 (runner.outputs)."""
    code = result.exit_code(strict=strict)
    if output == "nagios":
        from .outputs import nagios_code
        return nagios_code(code)[0]
    return int(code)


def finish(result: RunResult, output: str, *, exit_now: bool = True, show_secret: bool = False,
            strict: bool = False) -> int:
    from . import outputs, render_text
    if output == "json":
        print_json(result.to_dict())
    elif output == "junit":
        click.echo(outputs.junit(result, strict=strict), nl=False)
    elif output == "nagios":
        click.echo(outputs.nagios(result, strict=strict)[0])
    else:
        click.echo(report(result, show_secret=show_secret, terminal=sys.stdout.isatty()))
    # a one-time password is shown once, on a terminal, never into a pipe or a file: on stderr
    # when the report went elsewhere (JSON, `| tee`) but a person is still watching
    if (output != "human" or not sys.stdout.isatty()) and sys.stderr.isatty():
        for line in render_text.one_time_passwords(result):
            click.echo(line, err=True)
    code = exit_status(result, output, strict=strict)
    if exit_now:
        sys.exit(code)
    return code


def requested_output(argv: list[str]) -> str:
    """The --output a command line asks for, read before click parses it, so that an error
    while parsing (or anything after) still answers in that form."""
    found = "human"
    for i, arg in enumerate(argv):
        if arg in ("-o", "--output") and i + 1 < len(argv):
            found = argv[i + 1]
        elif arg.startswith("--output="):
            found = arg.split("=", 1)[1]
        elif arg.startswith("-o") and len(arg) > 2 and not arg.startswith("--"):
            found = arg[2:]
    return found if found in REPORT_FORMATS else "human"


def fail(e: BaseException, code: int, output: str, say) -> None:
    """End with an error in the form asked for: one JSON document on stdout, a monitoring
    plugin's UNKNOWN line, or `say(...)` for people (stderr)."""
    from . import outputs
    if output == "json":
        print_json(outputs.error_document(e, code))
    elif output == "nagios":
        click.echo(outputs.nagios_error(e))
        sys.exit(outputs.NAGIOS_UNKNOWN[0])
    else:
        say()
    sys.exit(code)


def yes_option(f):
    return click.option("--yes", "-y", is_flag=True,
                        help="apply without asking (needed when stdin is not a terminal)")(f)
