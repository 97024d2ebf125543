"""The result contract, error classification, parameter serialization and the stage's input
checks, with small fakes (the real-client paths are in tests/integration)."""

from __future__ import annotations

import socket

import pytest
import requests
from pypsrp.exceptions import AuthenticationError, InvalidPSRPOperation, WinRMTransportError, WSManFaultError
from pypsrp.serializer import TaggedValue

from runner.errors import InputError
from runner.powershell.failures import classify_exception
from runner.powershell.result import check_result
from runner.powershell.serialize import ComplexObject, to_psrp_parameters
from runner.secrets import Secret
from runner.stages.powershell import template_parameters

GOOD = {"changed": True, "before": {"a": 1}, "after": {"a": 2}, "data": {"x": [1, "y", None]}, "messages": ["m"]}


def test_one_hashtable_of_primitives_passes():
    result, problem = check_result([dict(GOOD)])
    assert problem is None and result == GOOD


@pytest.mark.parametrize("output,needle", [
    ([], "no result object"),
    ([dict(GOOD), dict(GOOD)], "2 objects"),
    ([dict(GOOD), "stray"], "Out-Null"),
    (["text"], "instead of a result hashtable"),
    ([{**GOOD, "data": {"obj": ComplexObject("System.IO.FileInfo")}}], "System.IO.FileInfo object at result.data.obj"),
    ([{"before": 1}], "boolean 'changed'"),
    ([{"changed": "yes"}], "boolean 'changed'"),
    ([{**GOOD, "extra": 1}], "unknown keys: extra"),
    ([{**GOOD, "status": "done"}], "status 'done'"),
    ([{**GOOD, "messages": 5}], "messages"),
])
def test_anything_else_fails_with_a_clear_message(output, needle):
    result, problem = check_result(output)
    assert result is None and needle in problem


def test_messages_are_redacted_and_listified():
    Secret("Leaky-Value-77")
    result, _ = check_result([{"changed": False, "messages": "said Leaky-Value-77"}])
    assert result["messages"] == ["said ********"]


def _conn_error(inner: BaseException) -> requests.exceptions.ConnectionError:
    e = requests.exceptions.ConnectionError("HTTPSConnectionPool: Max retries exceeded")
    e.__context__ = inner
    return e


@pytest.mark.parametrize("exc,started,kind", [
    (AuthenticationError("Failed to authenticate the user x with basic"), False, "auth"),
    (requests.exceptions.SSLError("certificate verify failed"), False, "tls"),
    (requests.exceptions.ConnectTimeout("connect timed out"), True, "timeout-before-start"),
    (requests.exceptions.ReadTimeout("read timed out"), False, "timeout-before-start"),
    (requests.exceptions.ReadTimeout("read timed out"), True, "timeout-mid-run"),
    (_conn_error(ConnectionRefusedError(111, "Connection refused")), False, "connect"),
    (_conn_error(socket.gaierror(-2, "Name or service not known")), False, "dns"),
    (_conn_error(ConnectionResetError(104, "reset")), True, "broken-pool"),
    (WSManFaultError(0x8033805B, "m", "The request for the Windows Remote Shell with ShellId X failed because "
                     "the shell was not found on the server.", "", "", ""), True, "broken-pool"),
    (WSManFaultError(5, "m", "Access is denied.", "", "", ""), False, "auth"),
    (WSManFaultError(0x80338000, "m", "The WS-Management service cannot process the request.", "", "", ""),
     False, "protocol"),
    (InvalidPSRPOperation("Received a broken RunspacePoolState message"), True, "broken-pool"),
    (WinRMTransportError("http", 500, "boom"), False, "protocol"),
])
def test_classification(exc, started, kind):
    assert classify_exception(exc, started)[0] == kind


def test_serialized_parameters_use_securestrings_and_right_widths():
    values, needs_keys = to_psrp_parameters(
        {"Password": Secret("Sekret-Pa55"), "Pin": "1234", "Big": 2**40, "Ratio": 0.5, "Flag": True,
         "Skip": None, "List": ["a", 1]}, {"Pin"})
    assert needs_keys
    assert isinstance(values["Password"], TaggedValue) and values["Password"].tag == "SS"
    assert values["Password"].value == "Sekret-Pa55"
    assert values["Pin"].tag == "SS"
    assert values["Big"].tag == "I64" and values["Ratio"].tag == "Db"
    assert values["Flag"] is True and "Skip" not in values and values["List"] == ["a", 1]
    assert to_psrp_parameters({"A": "x"}, set()) == ({"A": "x"}, False)
    with pytest.raises(InputError):
        to_psrp_parameters({"L": [Secret("Sekret-Pa55")]}, set())
    with pytest.raises(InputError):
        to_psrp_parameters({"O": object()}, set())


# --------------------------------------------------------------------------- stage input checks

def test_template_inputs_map_to_declared_parameters_case_insensitively():
    params, secure = template_parameters("sharepoint/spo_tenant_settings", {
        "adminurl": "https://contoso-admin.sharepoint.com", "UserName": "a@b", "Password": Secret("Sekret-Pa55"),
        "LegacyAuthProtocolsEnabled": True, "ClientId": None})
    assert set(params) == {"AdminUrl", "UserName", "Password", "LegacyAuthProtocolsEnabled"}
    assert secure == {"Password"}


@pytest.mark.parametrize("inputs,bad", [
    ({"AdminUrl": "https://x", "Nope": 1}, "Nope"),
    ({"AdminUrl": "https://x", "Apply": True}, "Apply"),
    ({"UserName": "a"}, "AdminUrl"),
    ({"AdminUrl": "https://x", "UserName": Secret("Sekret-Pa55")}, "UserName"),
    ({"AdminUrl": "https://x", "Password": 5}, "Password"),
])
def test_template_input_errors_name_the_input(inputs, bad):
    with pytest.raises(InputError) as e:
        template_parameters("sharepoint/spo_tenant_settings", inputs)
    assert e.value.input == bad
