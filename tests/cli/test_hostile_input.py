"""Hostile input, walked case by case through the `psrunner` command (in process): parameters,
params files, secret files, runbooks, inventories, the state directory and the run records.
Each case is refused with exit 2 and a message that names the input as the user gave it, before any
network traffic, or is accepted as data that reaches PowerShell only as a parameter (never in
the script text). No case may end in a traceback. RELIABILITY.md quotes the number of cases
(test_reliability_figures.py checks it)."""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path
from typing import Callable

import pytest

from ..cli_invoke import psrunner

MAIN = "m365-backup-access"
BASE = ["-p", "tenant=contoso.onmicrosoft.com", "-p", "host=mgmt01.contoso.local"]
MB5 = "x" * 5_000_000
RUN = "20261102T101500Z-m365-backup-access-1a2b3c"


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("a network call while validating input")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.delenv("PSRUNNER_ALLOW_TEST_ENDPOINTS", raising=False)     # as an admin's machine is


# --------------------------------------------------------------------------- files the cases use

def write(tmp: Path, name: str, data: str | bytes, mode: int = 0o600) -> str:
    p = tmp / name
    p.write_bytes(data.encode() if isinstance(data, str) else data)
    p.chmod(mode)
    return str(p)


def fifo(tmp: Path) -> str:
    p = tmp / "pipe"
    os.mkfifo(p)
    return str(p)


def folder(tmp: Path) -> str:
    p = tmp / "a-folder"
    p.mkdir()
    return str(p)


def nested_toml(depth: int) -> str:
    return "x = " + "[" * depth + "]" * depth + "\n"


def runbook(tmp: Path, body: str, head: str = 'name = "hostile"\ntitle = "t"\n') -> str:
    return write(tmp, "book.toml", head + body, 0o644)


STAGE = '[[stages]]\nid = "s"\nkind = "local.file"\ninputs = { path = "${run.dir}/f", content = "x" }\n'


def param_runbook(tmp: Path, spec: str) -> str:
    return runbook(tmp, f"[params.p]\n{spec}\n{STAGE}")


def stage_runbook(tmp: Path, extra: str) -> str:
    return runbook(tmp, STAGE + extra)


def run_dir(tmp: Path, info: str | bytes | None = None, report: str | bytes | None = None) -> str:
    d = tmp / "state" / "runs" / RUN
    (d / "stages").mkdir(parents=True)
    good = {"run_id": d.name, "runbook": MAIN, "source": f"builtin:{MAIN}", "mode": "run", "status": "failed",
            "params": {}, "secret_sources": {}}
    write(d, "run.json", json.dumps(good) if info is None else info)
    if report is not None:
        write(d, "report.json", report)
    return d.name


# A case: (argv from a temporary folder, what the message must name). Exit 2 unless the case
# is in ACCEPTED below.
Case = tuple[Callable[[Path], list[str]], str]


def plan(*args: str) -> Callable[[Path], list[str]]:
    return lambda tmp: ["plan", MAIN, *BASE, *args]


def p(name: str, value: str) -> Case:
    return plan("-p", f"{name}={value}"), f"'{name}'"


A_TARGET = '[targets.a]\nparams = { tenant = "a.onmicrosoft.com" }\n'


def fleet(text: str | bytes | Callable[[Path], str], *args: str, mode: int = 0o644) -> Callable[[Path], list[str]]:
    """`psrunner fleet plan` of the main runbook over an inventory holding `text` (or the path
    `text(tmp)` gives)."""
    def argv(tmp: Path) -> list[str]:
        inv = text(tmp) if callable(text) else write(tmp, "fleet.toml", text, mode)
        return ["fleet", "plan", MAIN, "--state-dir", str(tmp / "state"), "-i", inv, *args]
    return argv


def target_param(name: str, value: str) -> Case:
    """An inventory target whose parameter `name` is `value` (refused for that target alone)."""
    return fleet(A_TARGET.replace("}", f", {name} = {json.dumps(value)} }}")), f"'{name}'"


CASES: dict[str, Case] = {
    # ---- parameters on the command line
    "tenant empty": p("tenant", ""),
    "tenant with spaces": p("tenant", "not a tenant"),
    "tenant with a shell command": p("tenant", "contoso.com; rm -rf /"),
    "tenant command substitution": p("tenant", "$(whoami).onmicrosoft.com"),
    "tenant path traversal": p("tenant", "../../etc/passwd"),
    "tenant NUL": p("tenant", "contoso\x00.com"),
    "tenant 5 MB": p("tenant", MB5),
    "host with a semicolon": p("host", "bad host;rm"),
    "host with a newline": p("host", "mgmt01\nevil"),
    "host as an option": p("host", "-oProxyCommand=calc"),
    "host 300 characters": p("host", "a" * 300),
    "host 300 hex digits": p("host", "ab" * 150),
    "host with a user": p("host", "admin@mgmt01"),
    "host_port 0": p("host_port", "0"),
    "host_port 65536": p("host_port", "65536"),
    "host_port negative": p("host_port", "-1"),
    "host_port text": p("host_port", "https"),
    "host_port float": p("host_port", "5986.5"),
    "host_port exponent": p("host_port", "1e3"),
    "host_https maybe": p("host_https", "maybe"),
    "host_auth digest": p("host_auth", "digest"),
    "cloud mars": p("cloud", "mars"),
    "graph_auth password": p("graph_auth", "password"),
    "graph_client_id not a guid": p("graph_client_id", "not-a-guid"),
    "app_name 5 MB": p("app_name", MB5),
    "app_name empty": p("app_name", ""),
    "app_name too long": p("app_name", "a" * 121),
    "app_unique_name leading dash": p("app_unique_name", "-bad"),
    "app_unique_name with a space": p("app_unique_name", "a b"),
    "app_domain with a backtick": p("app_domain", "evil`nhost"),
    "host_user 5 MB": p("host_user", MB5),
    "secret_lifetime_days 0": p("secret_lifetime_days", "0"),
    "secret_lifetime_days 731": p("secret_lifetime_days", "731"),
    "secret_lifetime_days huge": p("secret_lifetime_days", "1" * 400),
    "secret_renew_days text": p("secret_renew_days", "soon"),
    "admin_url http": p("admin_url", "http://contoso-admin.sharepoint.com"),
    "admin_url javascript": p("admin_url", "javascript:alert(1)"),
    "spo_module_version latest": p("spo_module_version", "latest"),
    "spo_thumbprint short": p("spo_thumbprint", "ABCD"),
    "legacy_auth perhaps": p("legacy_auth", "perhaps"),
    "credential all": p("credential", "all"),
    "sharepoint_backend onprem": p("sharepoint_backend", "onprem"),
    "graph_endpoint http": p("graph_endpoint", "http://127.0.0.1:18999"),
    "graph_endpoint another host": p("graph_endpoint", "https://graph.example.net"),
    "graph_endpoint file url": p("graph_endpoint", "file:///etc/passwd"),
    "graph_endpoint with credentials": p("graph_endpoint", "https://user:pw@graph.microsoft.com"),
    "authority_host http": p("authority_host", "http://login.microsoftonline.com"),
    "authority_host another host": p("authority_host", "https://login.example.net"),
    "unknown parameter": p("nope", "1"),
    "unknown parameter 5 MB name": (plan("-p", MB5 + "=1"), "unknown parameter"),
    "parameter without a name": (plan("-p", "=x"), "unknown parameter"),
    "parameter without a value": (plan("-p", "tenant"), "-p 'tenant' is not of the form key=value"),
    "host_password on the command line": p("host_password", "hunter2"),
    "graph_ca_bundle missing": p("graph_ca_bundle", "/nonexistent/ca.pem"),
    "graph_ca_bundle a folder": (lambda t: plan("-p", f"graph_ca_bundle={folder(t)}")(t), "'graph_ca_bundle'"),
    "graph_ca_bundle /dev/null": (plan("-p", "graph_ca_bundle=/dev/null"), "is a device"),
    "graph_ca_bundle a FIFO": (lambda t: plan("-p", f"graph_ca_bundle={fifo(t)}")(t), "is a FIFO"),
    "graph_ca_bundle DER": (lambda t: plan("-p", f"graph_ca_bundle={write(t, 'ca.der', bytes(range(48)))}")(t),
                            "'graph_ca_bundle'"),
    "graph_ca_bundle text": (lambda t: plan("-p", f"graph_ca_bundle={write(t, 'ca.pem', 'hello')}")(t),
                             "holds no PEM certificate"),
    "graph_ca_bundle a broken PEM": (
        lambda t: plan("-p", f"graph_ca_bundle={write(t, 'ca.pem', '-----BEGIN CERTIFICATE-----' + chr(10) + 'AAAA' + chr(10) + '-----END CERTIFICATE-----' + chr(10))}")(t),
        "cannot be read as PEM certificates"),
    "host_ca_bundle text": (lambda t: plan("-p", f"host_ca_bundle={write(t, 'ca.pem', 'hello')}")(t),
                            "'host_ca_bundle'"),
    "host_ca_bundle a FIFO": (lambda t: plan("-p", f"host_ca_bundle={fifo(t)}")(t), "is a FIFO"),
    "certificate_path not a certificate": (
        lambda t: plan("-p", "credential=certificate", "-p", f"certificate_path={write(t, 'app.pfx', 'not a pfx')}")(t),
        "'certificate_path'"),
    "certificate_path empty": (
        lambda t: plan("-p", "credential=both", "-p", f"certificate_path={write(t, 'app.pem', '')}")(t),
        "'certificate_path'"),
    "certificate_path PEM without key": (
        lambda t: plan("-p", "credential=certificate", "-p",
                       f"certificate_path={Path(__file__).resolve().parents[1] / 'data' / 'cert-only.pem'}")(t),
        "holds no private key"),
    "graph_certificate not a certificate": (
        lambda t: plan("-p", "graph_auth=certificate", "-p", "graph_client_id=11111111-1111-1111-1111-111111111111",
                       "-p", f"graph_certificate={write(t, 'op.pem', '-----BEGIN PRIVATE KEY-----')}")(t),
        "'graph_certificate'"),

    # ---- params files
    "params file latin-1": (lambda t: plan("--params-file", write(t, "p.toml", "app_name = 'caf\xe9'".encode("latin-1")))(t),
                            "not UTF-8 text (byte 0xe9"),
    "params file UTF-16": (lambda t: plan("--params-file", write(t, "p.toml", "app_name = 'x'".encode("utf-16")))(t),
                           "is UTF-16 text"),
    "params file UTF-16 without BOM": (
        lambda t: plan("--params-file", write(t, "p.toml", "app_name = 'x'".encode("utf-16-le")))(t), "UTF-16"),
    "params file nested 5000 deep": (lambda t: plan("--params-file", write(t, "p.toml", nested_toml(5000)))(t),
                                     "p.toml' is nested too deeply"),
    "params JSON nested 5000 deep": (lambda t: plan("--params-file", write(t, "p.json", "[" * 5000 + "]" * 5000))(t),
                                     "p.json' is nested too deeply"),
    "params JSON array": (lambda t: plan("--params-file", write(t, "p.json", "[1, 2]"))(t), "must hold name = value"),
    "params file bad TOML": (lambda t: plan("--params-file", write(t, "p.toml", "tenant = 'unclosed"))(t),
                             "cannot be read"),
    "params file missing": (plan("--params-file", "/nonexistent/p.toml"), "does not exist"),
    "params file a folder": (lambda t: plan("--params-file", folder(t))(t), "is a directory"),
    "params file a FIFO": (lambda t: plan("--params-file", fifo(t))(t), "is a FIFO"),
    "params file /dev/null": (plan("--params-file", "/dev/null"), "is a device"),
    "params file 2 MB": (lambda t: plan("--params-file", write(t, "p.toml", "# " + "x" * 2_000_000))(t),
                         "the limit is"),
    "params file holding a secret": (lambda t: plan("--params-file", write(t, "p.toml", "host_password = 'x'"))(t),
                                     "'host_password' cannot be given"),
    "params file unknown key": (lambda t: plan("--params-file", write(t, "p.toml", "colour = 'red'"))(t), "'colour'"),
    "params file port as text": (lambda t: plan("--params-file", write(t, "p.toml", "host_port = 'abc'"))(t),
                                 "'host_port'"),
    "params file bool as list": (lambda t: plan("--params-file", write(t, "p.toml", "host_https = [1]"))(t),
                                 "'host_https'"),
    "params file value a table": (lambda t: plan("--params-file", write(t, "p.toml", "app_name = { a = 1 }"))(t),
                                  "'app_name'"),
    "params file value 5 MB": (lambda t: plan("--params-file", write(t, "p.toml", f"host_user = '{'y' * 900_000}'"))(t),
                               "'host_user'"),
    "params file NUL bytes": (lambda t: plan("--params-file", write(t, "p.toml", b"app_name = 'a'\x00\x00"))(t),
                              "NUL bytes"),

    # ---- secret files
    "secret file readable by others": (
        lambda t: plan("--secret-file", f"host_password={write(t, 's', 'pw', 0o644)}")(t), "readable by others"),
    "secret file a FIFO": (lambda t: plan("--secret-file", f"host_password={fifo(t)}")(t), "is a FIFO"),
    "secret file a folder": (lambda t: plan("--secret-file", f"host_password={folder(t)}")(t), "is a directory"),
    "secret file /dev/null": (plan("--secret-file", "host_password=/dev/null"), "is a device"),
    "secret file missing": (plan("--secret-file", "host_password=/nonexistent/s"), "does not exist"),
    "secret file latin-1": (lambda t: plan("--secret-file", f"host_password={write(t, 's', b'caf' + bytes([0xe9]))}")(t),
                            "not UTF-8"),
    "secret file UTF-16": (lambda t: plan("--secret-file", f"host_password={write(t, 's', 'pw'.encode('utf-16'))}")(t),
                           "UTF-16"),
    "secret file for a non-secret": (lambda t: plan("--secret-file", f"tenant={write(t, 's', 'x')}")(t),
                                     "'tenant' is not a secret parameter"),
    "secret file for an unknown name": (lambda t: plan("--secret-file", f"nope={write(t, 's', 'x')}")(t), "'nope'"),
    "secret file 100 KB": (lambda t: plan("--secret-file", f"host_password={write(t, 's', 'z' * 100_000)}")(t),
                           "the limit is"),
    "secret file without =": (plan("--secret-file", "host_password"), "--secret-file"),
    "secret file empty": (lambda t: plan("-p", "host_auth=basic", "-p", "host_user=admin", "--secret-file",
                                         f"host_password={write(t, 's', '')}")(t), "'host_password'"),

    # ---- runbooks
    "runbook latin-1": (lambda t: ["show", write(t, "b.toml", "name = 'caf\xe9'".encode("latin-1"))], "not UTF-8"),
    "runbook UTF-16": (lambda t: ["show", write(t, "b.toml", "name = 'x'".encode("utf-16"))], "UTF-16"),
    "runbook nested 5000 deep": (lambda t: ["show", runbook(t, nested_toml(5000))], "nested too deeply"),
    "runbook min text": (lambda t: ["show", param_runbook(t, 'type = "int"\nmin = "x"')], "params.p.min"),
    "runbook min on text": (lambda t: ["show", param_runbook(t, 'type = "str"\nmin = 1')], "params.p.min"),
    "runbook min above max": (lambda t: ["show", param_runbook(t, 'type = "int"\nmin = 5\nmax = 1')], "params.p.min"),
    "runbook env a number": (lambda t: ["show", param_runbook(t, 'type = "secret"\nenv = 5')], "params.p.env"),
    "runbook env with a space": (lambda t: ["show", param_runbook(t, 'type = "secret"\nenv = "A B"')], "params.p.env"),
    "runbook required no": (lambda t: ["show", param_runbook(t, 'required = "no"')], "params.p.required"),
    "runbook help a number": (lambda t: ["show", param_runbook(t, "help = 5")], "params.p.help"),
    "runbook pattern a number": (lambda t: ["show", param_runbook(t, "pattern = 5")], "params.p.pattern"),
    "runbook pattern not a regex": (lambda t: ["show", param_runbook(t, 'pattern = "(["')], "params.p.pattern"),
    "runbook type unknown": (lambda t: ["show", param_runbook(t, 'type = "float"')], "params.p.type"),
    "runbook type a list": (lambda t: ["show", param_runbook(t, "type = [1]")], "params.p.type"),
    "runbook choices empty": (lambda t: ["show", param_runbook(t, 'type = "choice"\nchoices = []')], "params.p.choices"),
    "runbook default unfit": (lambda t: ["show", param_runbook(t, 'type = "int"\ndefault = "x"')], "params.p.default"),
    "runbook secret default": (lambda t: ["show", param_runbook(t, 'type = "secret"\ndefault = "x"')],
                               "params.p.default"),
    "runbook when not x 20000": (lambda t: ["show", stage_runbook(t, 'when = "' + "not " * 20_000 + 'true"\n')],
                                 "stages.s.when"),
    "runbook when 300 parentheses": (lambda t: ["show", stage_runbook(t, 'when = "' + "(" * 300 + ")" * 300 + '"\n')],
                                     "stages.s.when"),
    "runbook when calls a function": (lambda t: ["show", stage_runbook(t, "when = \"__import__('os')\"\n")],
                                      "stages.s.when"),
    "runbook when reads a dunder": (lambda t: ["show", stage_runbook(t, 'when = "params.__class__"\n')],
                                    "stages.s.when"),
    "runbook when a lambda": (lambda t: ["show", stage_runbook(t, 'when = "(lambda: 1)()"\n')], "stages.s.when"),
    "runbook timeout nan": (lambda t: ["show", stage_runbook(t, "timeout = nan\n")], "stages.s.timeout"),
    "runbook timeout inf": (lambda t: ["show", stage_runbook(t, "timeout = inf\n")], "stages.s.timeout"),
    "runbook timeout negative": (lambda t: ["show", stage_runbook(t, "timeout = -1\n")], "stages.s.timeout"),
    "runbook timeout true": (lambda t: ["show", stage_runbook(t, "timeout = true\n")], "stages.s.timeout"),
    "runbook unknown key": (lambda t: ["show", runbook(t, "colour = 'red'\n" + STAGE)], "colour"),
    "runbook target type a list": (lambda t: ["show", runbook(t, "[targets.x]\ntype = [1]\n" + STAGE)],
                                   "targets.x.type"),
    "runbook stage target a list": (lambda t: ["show", stage_runbook(t, "target = [1]\n")], "stages.s.target"),
    "runbook unknown kind": (lambda t: ["show", runbook(t, '[[stages]]\nid = "s"\nkind = "rm.rf"\n')],
                             "stages.s.kind"),
    "runbook duplicate stage": (lambda t: ["show", runbook(t, STAGE + STAGE)], "duplicate stage id"),
    "runbook unknown reference": (lambda t: ["show", runbook(t, '[[stages]]\nid = "s"\nkind = "local.file"\n'
                                                               'inputs = { path = "${params.nope}" }\n')],
                                  "names no parameter"),
    "runbook notices a number": (lambda t: ["show", runbook(t, STAGE, head='name = "h"\ntitle = "t"\nnotices = 5\n')],
                                 "notices"),
    "runbook stages a table": (lambda t: ["show", runbook(t, "[stages]\nid = 1\n")], "stages"),
    "runbook bad name": (lambda t: ["show", runbook(t, STAGE, head='name = "Bad Name"\ntitle = "t"\n')], "name"),
    "runbook audience": (lambda t: ["show", runbook(t, STAGE, head='name = "h"\ntitle = "t"\naudience = "root"\n')],
                         "audience"),
    "runbook 5 MB": (lambda t: ["show", write(t, "big.toml", "#" * 5_000_000)], "the limit is"),
    "runbook a FIFO": (lambda t: ["show", fifo(t)], "is a FIFO"),
    "runbook unknown derivation": (lambda t: ["show", runbook(t, '[[stages]]\nid = "s"\nkind = "local.file"\n'
                                                                 'inputs = { path = "${run.dir|rm}" }\n')],
                                   "unknown derivation"),

    # ---- inventories (psrunner fleet)
    "inventory latin-1": (fleet(A_TARGET.replace("a.onmicrosoft", "caf\xe9").encode("latin-1")), "is not UTF-8"),
    "inventory UTF-16": (fleet(A_TARGET.encode("utf-16")), "is UTF-16 text"),
    "inventory nested 5000 deep": (fleet(nested_toml(5000)), "nested too deeply"),
    "inventory a FIFO": (fleet(fifo), "is a FIFO"),
    "inventory /dev/null": (fleet(lambda t: "/dev/null"), "is a device"),
    "inventory 20 MB": (fleet("#" * 20_000_000), "the limit is"),
    "inventory not TOML": (fleet("[targets.a\n"), "fleet.toml"),
    "inventory no targets": (fleet("[defaults]\ndeadline = 60\n"), "has no targets"),
    "inventory unknown table": (fleet("[hosts.a]\n" + A_TARGET), "'hosts'"),
    "inventory target a path": (fleet(A_TARGET.replace("[targets.a]", '[targets."../../etc"]')), "'../../etc'"),
    "inventory target name with a newline": (fleet(A_TARGET.replace("[targets.a]", '[targets."a\\nb"]')),
                                             "is not a plain name"),
    "inventory target 200,000-character name": (fleet(A_TARGET.replace("[targets.a]", f'[targets.{"a" * 200_000}]')),
                                                "is not a plain name"),
    "inventory target not a table": (fleet("[targets]\na = 5\n"), "targets.a must be a table"),
    "inventory params a list": (fleet("[targets.a]\nparams = [1]\n"), "targets.a.params must be a table"),
    "inventory groups a string": (fleet(A_TARGET + 'groups = "prod"\n'), "targets.a.groups"),
    "inventory deadline nan": (fleet(A_TARGET + "deadline = nan\n"), "targets.a.deadline"),
    "inventory deadline inf": (fleet(A_TARGET + "deadline = inf\n"), "targets.a.deadline"),
    "inventory deadline 1e300": (fleet(A_TARGET + "deadline = 1e300\n"), "targets.a.deadline"),
    "inventory deadline negative": (fleet(A_TARGET + "deadline = -5\n"), "targets.a.deadline"),
    "inventory deadline 10^20 days": (fleet(A_TARGET + 'deadline = "99999999999999999999d"\n'),
                                      "targets.a.deadline"),
    "inventory literal secret others can read": (fleet(A_TARGET + 'secrets = { host_password = "hunter2" }\n'),
                                                 "targets.a.secrets.host_password"),
    "inventory secret reference a number": (fleet(A_TARGET + "secrets = { host_password = 5 }\n", mode=0o600),
                                            "targets.a.secrets.host_password"),
    "inventory secret file /dev/zero": (fleet(A_TARGET + 'secrets = { host_password = { file = "/dev/zero" } }\n'),
                                        "'host_password'"),
    "inventory secret from an unset variable": (
        fleet(A_TARGET + 'secrets = { host_password = { env = "PSRUNNER_TEST_UNSET_VARIABLE" } }\n'),
        "PSRUNNER_TEST_UNSET_VARIABLE"),
    "inventory host with a shell command": target_param("host", "mgmt01; rm -rf /"),
    "inventory tenant 5 MB": target_param("tenant", MB5),
    "inventory parameter unknown": target_param("tenant_nope", "x"),
    "inventory --limit names nothing": (fleet(A_TARGET, "--limit", "europa"), "--limit"),
    "inventory --shard 4 of 3": (fleet(A_TARGET, "--shard", "4/3"), "--shard"),

    # ---- the state directory and run records
    "state dir on a file": (lambda t: ["plan", MAIN, *BASE, "--state-dir", write(t, "f", "x")], "--state-dir"),
    "state dir in /proc": (lambda t: ["plan", MAIN, *BASE, "--state-dir", "/proc/psrunner-state"], "--state-dir"),
    "runs show corrupt run.json": (lambda t: ["runs", "--state-dir", str(t / "state"), "show",
                                              run_dir(t, info="{not json")], f"{RUN}: run.json is unreadable"),
    "runs show run.json a list": (lambda t: ["runs", "--state-dir", str(t / "state"), "show", run_dir(t, info="[1]")],
                                  f"{RUN}: run.json is corrupt"),
    "runs show corrupt report": (lambda t: ["runs", "--state-dir", str(t / "state"), "show",
                                            run_dir(t, report='{"run_id": 5}')], f"{RUN}: its records are corrupt"),
    "runs show report not UTF-8": (lambda t: ["runs", "--state-dir", str(t / "state"), "show",
                                              run_dir(t, report=b"\xff\xfe\xfa")], f"{RUN}: report.json is unreadable"),
    "resume corrupt run.json": (lambda t: ["resume", "--state-dir", str(t / "state"), run_dir(t, info="{")],
                                f"{RUN}: run.json is unreadable"),
    "resume run.json without keys": (lambda t: ["resume", "--state-dir", str(t / "state"), run_dir(t, info="{}")],
                                     f"{RUN}: run.json is corrupt"),
    "resume a path": (lambda t: ["resume", "--state-dir", str(t / "state"), "../../etc"], "is not a run id"),
    "runs prune older than 10^20 days": (lambda t: ["runs", "--state-dir", str(t / "state"), "prune", "--older-than",
                                                   "99999999999999999999d"], "--older-than"),
    "runs show a path": (lambda t: ["runs", "--state-dir", str(t / "state"), "show", "../x"], "is not a run id"),
}

# Hostile values that are fine as data: accepted, and they reach PowerShell only as
# parameters, never in the script text (checked against the host simulator: the scripts the
# run recorded as sent, and the parameters the host received).
ACCEPTED: dict[str, str] = {
    "spo_user": "admin@contoso.com'; Stop-Computer -Force; '",
    "spo_module_source": "C:\\mods\\$(Remove-Item C:\\ -Recurse)",
    "spo_password": "p'w\"d$(Stop-Computer)`n;#",
    "app_name": "Backup <# block comment",
}
PS_PARAMETER = {"spo_user": "UserName", "spo_module_source": "OfflineSourcePath"}


@pytest.mark.parametrize("case", list(CASES))
def test_hostile_input_is_refused_naming_it(tmp_path, no_network, case):
    argv, names = CASES[case]
    r = psrunner(*argv(tmp_path), catch=True)
    assert r.exception is None or isinstance(r.exception, SystemExit), (case, r.exception)     # no traceback
    assert "Traceback" not in r.output
    assert r.exit_code == 2, (case, r.output[-2000:])
    assert names in r.output, (case, names, r.output[-2000:])
    assert len(r.output) < 4000, (case, "the message echoes the whole input")
    assert not any((tmp_path / "state" / "runs").glob("*/stages/*.json"))                    # no stage ran


def test_hostile_data_reaches_powershell_only_as_parameters(tmp_path):
    from runner import api
    from runner.secrets import Secret
    from runner.sim.demo import sim_params, simulators

    rb = api.load_runbook(MAIN)
    with simulators() as (world, tenant, host):
        given = {**sim_params(tenant, host, world), **ACCEPTED, "spo_password": Secret(ACCEPTED["spo_password"])}
        values, _ = api.resolve_params(rb, given, environ={})
        result = api.plan(rb, values, state_dir=tmp_path / "state")
        sent = {tid: params for tid, params in host.state.invocations}
    assert result.stage("spo-settings").status.value != "failed", result.stage("spo-settings").messages
    scripts = "".join(p.read_text() for p in (Path(result.run_dir) / "scripts").glob("*.ps1"))
    assert scripts and all(value not in scripts for value in ACCEPTED.values())
    assert sent["sharepoint/spo_tenant_settings"][PS_PARAMETER["spo_user"]] == ACCEPTED["spo_user"]
    assert sent["sharepoint/spo_module"][PS_PARAMETER["spo_module_source"]] == ACCEPTED["spo_module_source"]
    assert sent["sharepoint/spo_tenant_settings"]["Password"] == "********"        # a SecureString


def test_a_utf8_byte_order_mark_is_fine(tmp_path, no_network):
    pf = write(tmp_path, "p.toml", "\ufeffapp_name = 'Backup'\n".encode("utf-8"))
    r = psrunner("render", MAIN, "--stage", "host-facts", *BASE, "--params-file", pf)
    assert r.exit_code == 0, r.output


def test_the_corpus_is_large_enough():
    assert len(CASES) + len(ACCEPTED) >= 100


def test_runs_lists_a_corrupt_run_without_failing(tmp_path):
    run_dir(tmp_path, info="{not json")
    r = psrunner("runs", "--state-dir", str(tmp_path / "state"))
    assert r.exit_code == 0 and "corrupt" in r.output


if sys.platform == "win32":  # pragma: no cover
    pytestmark = pytest.mark.skip(reason="FIFOs and POSIX modes")
