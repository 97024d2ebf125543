"""The Windows host simulator, driven by the real pypsrp client over loopback HTTP(S).

Test twins registered here: test/echo (echoes its parameters, marking SecureStrings),
test/streams (writes every stream), test/sleep (slow, stops on Signal), test/fail (throws)."""

from __future__ import annotations

import hashlib
import logging
import threading
import time

import pytest
import requests
from pypsrp.exceptions import AuthenticationError, WSManFaultError
from pypsrp.powershell import PowerShell, PSInvocationState, RunspacePool
from pypsrp.serializer import TaggedValue
from pypsrp.wsman import SelectorSet, WSMan

from runner.errors import InputError
from runner.sim.host import HostSimulator, serve, wait_or_stop
from runner.sim.ps_binding import bind, parse_signature
from runner.sim.twin_types import (
    ErrorSpec,
    HostState,
    SimSecureString,
    TwinError,
    TwinOutput,
    twin,
)

SECRET = "Tr0ub4dor&3-never-logged"


@twin("test/echo")
def _echo(state, world, params):
    out = {}
    for name, value in params.items():
        if isinstance(value, SimSecureString):
            out[name] = {"secure": True, "sha256": hashlib.sha256(value.value.encode()).hexdigest()}
        else:
            out[name] = value
    return TwinOutput(result={"changed": False, "params": out})


@twin("test/streams")
def _streams(state, world, params):
    return TwinOutput(
        result={"changed": True, "ratio": 0.1, "items": [1, "two", None, True], "nested": {"k": "v"}},
        errors=[ErrorSpec("soft failure", "Microsoft.PowerShell.Commands.WriteErrorException",
                          "ObjectNotFound", "SoftFail,test", target="thing-1")],
        warnings=["careful"], verbose=["step 1"], information=["fyi"])


SLEEP_LOG: list[str] = []


@twin("test/sleep")
def _sleep(state, world, params):
    SLEEP_LOG.append("started")
    if wait_or_stop(float(params.get("Seconds", 5))):
        SLEEP_LOG.append("stopped")
        return TwinOutput(result=None)
    SLEEP_LOG.append("finished")
    return TwinOutput(result={"slept": True})


@twin("test/fail")
def _fail(state, world, params):
    raise TwinError("Access is denied to the tenant.", exception_type="System.UnauthorizedAccessException",
                    category="PermissionDenied", fqid="TenantDenied,Set-Thing", target="contoso")


ECHO = "# psrunner-template: test/echo\n[CmdletBinding()]\nparam(\n  [string]$Name,\n  [int]$Count,\n  $Secret,\n  [string]$Text\n)\n$null\n"
STREAMS = "# psrunner-template: test/streams\n[CmdletBinding()]\nparam()\n"
SLEEP = "# psrunner-template: test/sleep\n[CmdletBinding()]\nparam([double]$Seconds)\n"
FAIL = "# psrunner-template: test/fail\n[CmdletBinding()]\nparam()\n"


@pytest.fixture
def sim():
    with HostSimulator() as s:
        yield s


def client(sim: HostSimulator, **kw) -> WSMan:
    args = {"port": sim.port, "ssl": sim.scheme == "https", "cert_validation": sim.ca_bundle or True,
            "auth": sim.auth, "username": sim.username, "password": sim.password,
            "operation_timeout": 5, "read_timeout": 10, "connection_timeout": 5}
    args.update(kw)
    return WSMan(sim.host, **args)


def run(pool: RunspacePool, script: str, params: dict | None = None) -> PowerShell:
    ps = PowerShell(pool)
    ps.add_script(script)
    if params:
        ps.add_parameters(params)
    ps.invoke()
    return ps


# ---- pool and pipelines ------------------------------------------------------------------

def test_pool_open_and_close_are_counted_once(sim):
    with RunspacePool(client(sim)) as pool:
        assert sim.shells == 1
        assert pool.is_alive()
    assert sim.shells == 0
    counts = sim.counter.by_action()
    assert (counts["Create"], counts["Delete"], sim.counter.pool_opens) == (1, 1, 1)


def test_script_with_parameters_returns_a_dict(sim):
    with RunspacePool(client(sim)) as pool:
        ps = run(pool, ECHO, {"Name": "web01", "Count": 3})
    assert ps.state == PSInvocationState.COMPLETED and not ps.had_errors
    assert ps.output == [{"changed": False, "params": {"Name": "web01", "Count": 3}}]
    assert sim.state.invocations[-1] == ("test/echo", {"Name": "web01", "Count": 3})


def test_two_pipelines_share_one_pool_and_request_counts(sim):
    with RunspacePool(client(sim)) as pool:
        after_open = sim.counter.requests
        first = run(pool, ECHO, {"Name": "a"})
        after_first = sim.counter.requests
        second = run(pool, ECHO, {"Name": "b"})
        after_second = sim.counter.requests
    assert first.output[0]["params"] == {"Name": "a"}
    assert second.output[0]["params"] == {"Name": "b"}
    counts = sim.counter.by_action()
    assert counts["Create"] == 1 and sim.counter.pool_opens == 1 and counts["Command"] == 2
    # open = Create + Receive; a pipeline = Command + one Receive; close = Delete
    assert after_open == 2
    assert after_first - after_open == 2 and after_second - after_first == 2
    assert sim.counter.requests == after_second + 1


def test_closing_a_pipeline_releases_it(sim):
    with RunspacePool(client(sim)) as pool:
        with PowerShell(pool) as ps:
            ps.add_script(ECHO).add_parameter("Name", "closed")
            assert ps.invoke()[0]["params"] == {"Name": "closed"}
        (shell,) = sim.engine.shells.values()
        assert shell.pipelines == {} and shell.pool.pipeline_table == {}
    assert sim.counter.by_action()["Signal"] == 1  # PowerShell.close() sends Terminate


def test_streams_arrive_and_output_types_survive(sim):
    with RunspacePool(client(sim)) as pool:
        ps = run(pool, STREAMS)
    assert ps.output == [{"changed": True, "ratio": 0.1, "items": [1, "two", None, True], "nested": {"k": "v"}}]
    assert [w.message for w in ps.streams.warning] == ["careful"]
    assert [v.message for v in ps.streams.verbose] == ["step 1"]
    assert [i.message_data for i in ps.streams.information] == ["fyi"]
    # a non-terminating error: recorded, yet the pipeline completes
    assert not ps.had_errors and ps.state == PSInvocationState.COMPLETED
    (err,) = ps.streams.error
    assert str(err) == "soft failure"
    assert err.fq_error == "SoftFail,test"
    assert err.exception.types[0] == "Microsoft.PowerShell.Commands.WriteErrorException"


def test_terminating_error_fails_the_pipeline_with_the_record(sim):
    with RunspacePool(client(sim)) as pool:
        ps = run(pool, FAIL)
        after = run(pool, ECHO, {"Name": "still-usable"})
    assert ps.had_errors and ps.state == PSInvocationState.FAILED and ps.output == []
    (err,) = ps.streams.error
    assert err.exception.adapted_properties["Message"] == "Access is denied to the tenant."
    assert err.exception.types[0] == "System.UnauthorizedAccessException"
    assert err.fq_error == "TenantDenied,Set-Thing"
    assert err.category == 18  # ErrorCategory.PermissionDenied
    assert err.reason == "UnauthorizedAccessException"
    assert err.target_name == "contoso"
    assert after.output[0]["params"] == {"Name": "still-usable"}


def test_unknown_parameter_fails_like_powershell(sim):
    with RunspacePool(client(sim)) as pool:
        ps = run(pool, ECHO, {"Name": "x", "Nmae": "typo"})
    assert ps.had_errors
    (err,) = ps.streams.error
    assert str(err) == "A parameter cannot be found that matches parameter name 'Nmae'."
    assert err.fq_error == "NamedParameterNotFound"
    assert err.exception.types[0] == "System.Management.Automation.ParameterBindingException"
    assert sim.state.invocations == []  # the twin never ran


def test_script_without_a_twin_fails_clearly(sim):
    with RunspacePool(client(sim)) as pool:
        ps = run(pool, "Get-Date")
    assert ps.had_errors and ps.streams.error[0].fq_error == "PsrunnerSimNoTwin"


def test_securestring_arrives_as_simsecurestring_and_is_never_logged(sim, caplog):
    caplog.set_level(logging.DEBUG)
    with RunspacePool(client(sim)) as pool:
        pool.exchange_keys()
        ps = run(pool, ECHO, {"Name": "n", "Secret": TaggedValue("SS", SECRET)})
    assert ps.output[0]["params"]["Secret"] == {"secure": True,
                                                "sha256": hashlib.sha256(SECRET.encode()).hexdigest()}
    assert sim.counter.by_action()["Send"] == 1  # the PUBLIC_KEY message
    assert caplog.records, "debug logging was captured"
    assert SECRET not in caplog.text
    assert SECRET not in repr(sim.state.invocations)


HOSTILE = {
    "quotes": "it's \"quoted\" ''",
    "subexpr": "$(Remove-Item C:\\ -Recurse) ${env:PATH} @(1)",
    "backticks": "`n`r`0 ``",
    "statements": "a; b && c | d & e",
    "newlines": "line1\nline2\r\nline3\n",
    "unicode": "Zürich ☃ 日本語 \U0001F600 \u200b",
    "xmlish": "<Obj RefId=\"0\"/> ]]> &amp; _x0041_",
    "big": "x" * 10_240,
}


@pytest.mark.parametrize("key", sorted(HOSTILE))
def test_hostile_values_arrive_unchanged(sim, key):
    with RunspacePool(client(sim)) as pool:
        ps = run(pool, ECHO, {"Text": HOSTILE[key]})
    assert ps.output[0]["params"]["Text"] == HOSTILE[key]
    assert sim.state.invocations[-1][1]["Text"] == HOSTILE[key]


def test_payloads_are_cut_to_the_clients_envelope_size(sim):
    big = "".join(chr(0x41 + i % 26) for i in range(60_000))
    with RunspacePool(client(sim, max_envelope_size=20_480)) as pool:
        before = sim.counter.by_action()
        ps = run(pool, ECHO, {"Text": big})
        after = sim.counter.by_action()
    assert ps.output[0]["params"]["Text"] == big
    assert after["Send"] > before["Send"]          # the client fragmented its Command
    assert after["Receive"] - before["Receive"] >= 4  # and the simulator its output
    assert sim.counter.largest_response <= 20_480


# ---- timeouts, signals, faults -----------------------------------------------------------

def test_receive_long_poll_ends_in_the_operation_timeout_fault(sim):
    SLEEP_LOG.clear()
    with RunspacePool(client(sim, operation_timeout=1)) as pool:
        ps = PowerShell(pool)
        ps.add_script(SLEEP).add_parameter("Seconds", 30)
        ps.begin_invoke()
        start = time.monotonic()
        with pytest.raises(WSManFaultError) as info:
            pool.shell.receive("stdout", command_id=ps._command_id)
        assert info.value.code == 2150858793
        assert 0.8 <= time.monotonic() - start < 3
        ps.stop()


def test_stop_signals_the_running_twin(sim):
    SLEEP_LOG.clear()
    with RunspacePool(client(sim, operation_timeout=1)) as pool:
        ps = PowerShell(pool)
        ps.add_script(SLEEP).add_parameter("Seconds", 30)
        ps.begin_invoke()
        ps.poll_invoke()   # one long-poll that times out: still running
        assert ps.state == PSInvocationState.RUNNING
        start = time.monotonic()
        ps.stop()
        assert ps.state == PSInvocationState.STOPPED
        deadline = time.monotonic() + 3
        while "stopped" not in SLEEP_LOG and time.monotonic() < deadline:
            threading.Event().wait(0.01)
        assert SLEEP_LOG == ["started", "stopped"]
        assert time.monotonic() - start < 2
        assert run(pool, ECHO, {"Name": "after-stop"}).output[0]["params"] == {"Name": "after-stop"}
    assert sim.counter.by_action()["Signal"] == 1


def test_wrong_password_is_an_authentication_error(sim):
    with pytest.raises(AuthenticationError):
        RunspacePool(client(sim, password="not-it")).open()
    sim.faults.set("wrong_password")
    with pytest.raises(AuthenticationError):
        RunspacePool(client(sim)).open()
    sim.faults.clear()
    with RunspacePool(client(sim)) as pool:
        assert run(pool, ECHO, {"Name": "ok"}).output
    assert sim.counter.pool_opens == 1


def test_refused_connection_then_recovery(sim):
    pool = RunspacePool(client(sim))
    pool.open()
    sim.faults.set("refuse")
    with pytest.raises(requests.exceptions.ConnectionError):
        run(pool, ECHO, {"Name": "x"})
    with pytest.raises(requests.exceptions.ConnectionError):
        RunspacePool(client(sim)).open()
    sim.faults.clear("refuse")
    with RunspacePool(client(sim)) as again:
        assert run(again, ECHO, {"Name": "back"}).output[0]["params"] == {"Name": "back"}


def test_hang_makes_the_client_time_out_and_stop_stays_prompt():
    sim = HostSimulator().start()
    try:
        pool = RunspacePool(client(sim, operation_timeout=1, read_timeout=0.5, reconnection_backoff=0))
        pool.open()
        sim.faults.set("hang")
        ps = PowerShell(pool)
        ps.add_script(ECHO).add_parameter("Name", "never")
        ps.begin_invoke()
        start = time.monotonic()
        with pytest.raises(requests.exceptions.ReadTimeout):
            ps.poll_invoke()
        assert time.monotonic() - start < 8  # 1 try + 5 retries of 0.5 s
        assert sim.counter.by_action()["Receive"] >= 2
    finally:
        start = time.monotonic()
        sim.stop()
        assert time.monotonic() - start < 2


def test_slow_delays_every_response(sim):
    with RunspacePool(client(sim)) as pool:
        sim.faults.set("slow", seconds=0.3)
        start = time.monotonic()
        ps = run(pool, ECHO, {"Name": "slow"})
        assert time.monotonic() - start >= 0.6  # Command + Receive
        sim.faults.clear("slow")
    assert ps.output


def test_break_pool_drops_the_shell_mid_pipeline(sim):
    pool = RunspacePool(client(sim))
    pool.open()
    sim.faults.set("break_pool")
    with pytest.raises(WSManFaultError) as info:
        run(pool, ECHO, {"Name": "lost"})
    assert info.value.code == 2150858843
    assert sim.state.invocations[-1][0] == "test/echo"  # it ran before the shell went away
    assert not pool.is_alive()
    assert "break_pool" not in sim.faults
    with RunspacePool(client(sim)) as pool2:
        assert run(pool2, ECHO, {"Name": "fresh"}).output


def test_injected_terminating_and_non_terminating_errors(sim):
    with RunspacePool(client(sim)) as pool:
        sim.faults.set("terminating_error", message="boom", fqid="Injected")
        ps = run(pool, ECHO, {"Name": "a"})
        assert ps.had_errors and str(ps.streams.error[0]) == "boom" and ps.streams.error[0].fq_error == "Injected"
        sim.faults.set("non_terminating_error", message="meh")
        ps = run(pool, ECHO, {"Name": "b"})
        assert not ps.had_errors and [str(e) for e in ps.streams.error] == ["meh"]
        assert ps.output[0]["params"] == {"Name": "b"}
        ps = run(pool, ECHO, {"Name": "c"})  # both were used up
        assert not ps.had_errors and ps.streams.error == []


def test_config_get_and_unsupported_actions(sim):
    wsman = client(sim)
    wsman.update_max_payload_size()  # Get on the config resource
    assert wsman.max_envelope_size == 500 * 1024
    with pytest.raises(WSManFaultError, match="does not implement"):
        wsman.enumerate("http://schemas.microsoft.com/wbem/wsman/1/windows/shell")
    with pytest.raises(WSManFaultError) as info:
        wsman.delete("http://schemas.microsoft.com/powershell/Microsoft.PowerShell",
                     selector_set=_selectors(ShellId="00000000-0000-0000-0000-000000000000"))
    assert info.value.code == 2150858843


def _selectors(**values):
    sel = SelectorSet()
    for k, v in values.items():
        sel.add_option(k, v)
    return sel


def test_unknown_fault_kind_is_an_input_error(sim):
    with pytest.raises(InputError, match="Unknown host simulator fault"):
        sim.faults.set("explode")


# ---- NTLM over HTTP ----------------------------------------------------------------------

def test_ntlm_over_http_with_message_encryption():
    state = HostState()
    with HostSimulator(state=state, scheme="http", auth="ntlm") as sim:
        assert sim.ca_bundle is None
        with RunspacePool(client(sim, auth="ntlm", encryption="always")) as pool:
            pool.exchange_keys()
            ps = run(pool, ECHO, {"Name": "over-ntlm", "Secret": TaggedValue("SS", SECRET)})
        assert ps.output[0]["params"]["Name"] == "over-ntlm"
        assert ps.output[0]["params"]["Secret"]["secure"] is True
        assert sim.counter.encrypted == sim.counter.requests > 0
        # plain SOAP over HTTP is refused, as WinRM does with AllowUnencrypted=false
        plain = requests.post(f"http://127.0.0.1:{sim.port}/wsman", data=b"<s:Envelope/>", timeout=5)
        assert plain.status_code == 401 and "Negotiate" in plain.headers["WWW-Authenticate"]
        with pytest.raises(AuthenticationError):
            RunspacePool(client(sim, auth="ntlm", password="wrong")).open()


def test_basic_over_plain_http_is_refused():
    with HostSimulator(scheme="http", auth="basic") as sim:
        with pytest.raises(AuthenticationError):
            RunspacePool(client(sim, encryption="never")).open()
        assert sim.counter.requests == 0


def test_bad_constructor_arguments_are_input_errors():
    with pytest.raises(InputError, match="scheme"):
        HostSimulator(scheme="ftp")
    with pytest.raises(InputError, match="auth"):
        HostSimulator(auth="digest")
    with pytest.raises(InputError, match="needs the keytab"):
        HostSimulator(auth="kerberos")              # Kerberos needs its service's keys


# ---- parameter binding (no network) ------------------------------------------------------

def test_param_block_parsing():
    sig = parse_signature(
        "# psrunner-template: x\n<# comment with param($Nope) #>\n[CmdletBinding(SupportsShouldProcess)]\n"
        "param(\n  [Parameter(Mandatory = $true)][ValidateScript({ $_ -ne '' })][string]$TenantName,\n"
        "  [switch]$Force,\n  [string[]]$Names = @('a', \"$b\"),\n  $Plain = $env:X\n)\n"
        "function Inner { param($NotMine) }\n")
    assert [p.name for p in sig.params] == ["TenantName", "Force", "Names", "Plain"]
    assert [p.mandatory for p in sig.params] == [True, False, False, False]
    assert sig.params[1].switch and sig.advanced and sig.should_process


def test_binding_rules():
    script = "[CmdletBinding()]\nparam([Parameter(Mandatory)]$TenantName, [switch]$Force, $TenantId)\n"
    assert bind(script, [("tenantname", "c"), ("Force", None), ("Verbose", None)]) == \
        {"TenantName": "c", "Force": True, "Verbose": True}
    with pytest.raises(TwinError) as amb:
        bind(script, [("Tenant", "c")])
    assert amb.value.spec.fqid == "AmbiguousParameter"
    assert bind(script, [("TenantN", "c")]) == {"TenantName": "c"}
    with pytest.raises(TwinError) as missing:
        bind(script, [("Force", None)])
    assert missing.value.spec.fqid == "MissingMandatoryParameter"
    # a simple (non-advanced) script puts unknown names in $args instead of failing
    assert bind("param($A)\n", [("B", 1), (None, 2)]) == {"A": 2}


def test_serve_runs_until_told_to_stop():
    lines: list[str] = []
    ready, stop = threading.Event(), threading.Event()
    thread = threading.Thread(target=serve, kwargs={"port": 0, "echo": lines.append, "ready": ready,
                                                            "stop": stop},
                              daemon=True)
    thread.start()
    assert ready.wait(10)
    endpoint = lines[0].split(" on ", 1)[1].split(" ", 1)[0]
    port = int(endpoint.rsplit(":", 1)[1].split("/", 1)[0])
    ca = next(line.split(": ", 1)[1] for line in lines if "CA bundle" in line)
    wsman = WSMan("localhost", port=port, cert_validation=ca, auth="basic", username="psrunner-admin",
                  password="Sim-Host-Pa55!", operation_timeout=5, read_timeout=10)
    with RunspacePool(wsman) as pool:
        assert run(pool, ECHO, {"Name": "served"}).output[0]["params"] == {"Name": "served"}
    stop.set()
    thread.join(5)
    assert not thread.is_alive()
