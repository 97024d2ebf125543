"""SOAP envelopes of the WSMan protocol ([MS-WSMV]) as the host simulator reads and writes them.

Requests are parsed with ElementTree into a small `WSManRequest`; responses are built from
string templates shaped like the ones a Windows WinRM service sends (same namespaces and
prefixes, RelatesTo echoing the request's MessageID, faults inside HTTP 500)."""

from __future__ import annotations

import re
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from xml.sax.saxutils import escape, quoteattr

NS = {
    "s": "http://www.w3.org/2003/05/soap-envelope",
    "wsa": "http://schemas.xmlsoap.org/ws/2004/08/addressing",
    "wsman": "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd",
    "wsmv": "http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd",
    "rsp": "http://schemas.microsoft.com/wbem/wsman/1/windows/shell",
    "wst": "http://schemas.xmlsoap.org/ws/2004/09/transfer",
    "pwsh": "http://schemas.microsoft.com/powershell",
    "cfg": "http://schemas.microsoft.com/wbem/wsman/1/config",
}

TRANSFER = "http://schemas.xmlsoap.org/ws/2004/09/transfer/"
SHELL = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/"
ACTIONS = {
    TRANSFER + "Create": "Create",
    TRANSFER + "Delete": "Delete",
    TRANSFER + "Get": "Get",
    SHELL + "Command": "Command",
    SHELL + "Send": "Send",
    SHELL + "Receive": "Receive",
    SHELL + "Signal": "Signal",
    SHELL + "Connect": "Connect",
    SHELL + "Disconnect": "Disconnect",
    SHELL + "Reconnect": "Reconnect",
}
COMMAND_STATE_DONE = SHELL + "CommandState/Done"
COMMAND_STATE_RUNNING = SHELL + "CommandState/Running"
SIGNAL_PS_CTRL_C = "powershell/signal/ctrl_c"
SIGNAL_CTRL_C = SHELL + "signal/ctrl_c"
SIGNAL_TERMINATE = SHELL + "signal/Terminate"

# WSManFault codes a Windows host answers with.
FAULT_OPERATION_TIMEOUT = 2150858793     # 0x80338029 ERROR_WSMAN_OPERATION_TIMEDOUT
FAULT_SHELL_NOT_FOUND = 2150858843       # 0x8033805B (UnexpectedSelectors)
FAULT_INTERNAL = 2147500037              # 0x80004005 E_FAIL: what the simulator cannot do

MSG_OPERATION_TIMEOUT = ("The WS-Management service cannot complete the operation within the time "
                         "specified in OperationTimeout.  ")
_DURATION = re.compile(r"^P(?:(?P<d>\d+)D)?(?:T(?:(?P<h>\d+)H)?(?:(?P<m>\d+)M)?(?:(?P<s>[\d.]+)S)?)?$")


class SoapError(Exception):
    """A request the simulator answers with a WSMan fault (HTTP 500)."""

    def __init__(self, code: int, message: str, *, subcode: str = "w:InternalError",
                 sender: bool = False, detail: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.subcode = subcode
        self.sender = sender
        self.detail = detail


def shell_not_found(shell_id: str) -> SoapError:
    return SoapError(
        FAULT_SHELL_NOT_FOUND,
        f"The request for the Windows Remote Shell with ShellId {shell_id} failed because the shell was "
        "not found on the server. Possible causes are: the specified ShellId is incorrect or the shell no "
        "longer exists on the server. Provide the correct ShellId or create a new shell and retry the "
        "operation. ",
        subcode="w:InvalidSelectors", sender=True,
        detail="http://schemas.dmtf.org/wbem/wsman/1/wsman/faultDetail/UnexpectedSelectors")


def command_not_found() -> SoapError:
    return SoapError(
        FAULT_SHELL_NOT_FOUND,
        "The Windows Remote Shell received a request to perform an operation on a command identifier that "
        "does not exist. Either the command has completed execution or the client specified an invalid "
        "command identifier. ",
        subcode="w:InvalidSelectors", sender=True,
        detail="http://schemas.dmtf.org/wbem/wsman/1/wsman/faultDetail/UnexpectedSelectors")


def parse_duration(text: str | None, default: float) -> float:
    """xs:duration as WSMan uses it (PT20S, PT60.000S) -> seconds."""
    m = _DURATION.match((text or "").strip())
    if not m:
        return default
    d, h, mi, s = (m.group(k) for k in "dhms")
    return int(d or 0) * 86400 + int(h or 0) * 3600 + int(mi or 0) * 60 + float(s or 0)


@dataclass
class WSManRequest:
    action_uri: str
    action: str                    # short name: Create, Command, ...
    message_id: str
    resource_uri: str
    max_envelope_size: int
    operation_timeout: float
    selectors: dict[str, str] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)
    body: ET.Element | None = None

    @property
    def shell_id(self) -> str | None:
        return self.selectors.get("ShellId")


def parse_request(xml: bytes, default_envelope: int) -> WSManRequest:
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as exc:
        raise SoapError(FAULT_INTERNAL, f"The request is not well-formed XML: {exc}", sender=True,
                        subcode="w:InvalidMessageInformationHeader") from None
    header = root.find("s:Header", NS)
    body = root.find("s:Body", NS)
    if header is None:
        raise SoapError(FAULT_INTERNAL, "The SOAP envelope has no Header.", sender=True,
                        subcode="w:InvalidMessageInformationHeader")

    def text(path: str) -> str:
        el = header.find(path, NS)
        return (el.text or "").strip() if el is not None else ""

    action_uri = text("wsa:Action")
    try:
        envelope = int(text("wsman:MaxEnvelopeSize") or default_envelope)
    except ValueError:
        envelope = default_envelope
    selectors = {s.get("Name", ""): (s.text or "").strip()
                 for s in header.findall("wsman:SelectorSet/wsman:Selector", NS)}
    options = {o.get("Name", ""): (o.text or "").strip()
               for o in header.findall("wsman:OptionSet/wsman:Option", NS)}
    return WSManRequest(
        action_uri=action_uri,
        action=ACTIONS.get(action_uri, "Unsupported"),
        message_id=text("wsa:MessageID"),
        resource_uri=text("wsman:ResourceURI"),
        max_envelope_size=envelope,
        operation_timeout=parse_duration(text("wsman:OperationTimeout"), 60.0),
        selectors=selectors,
        options=options,
        body=body,
    )


_ENVELOPE_OPEN = (
    '<s:Envelope xml:lang="en-US" xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
    'xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" '
    'xmlns:x="http://schemas.xmlsoap.org/ws/2004/09/transfer" '
    'xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd" '
    'xmlns:rsp="http://schemas.microsoft.com/wbem/wsman/1/windows/shell" '
    'xmlns:p="http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd">'
)
ENVELOPE_OVERHEAD = 1024  # header + wrapper bytes around a response body, generously rounded up


def envelope(action_uri: str, relates_to: str, body: str) -> bytes:
    return (
        f"{_ENVELOPE_OPEN}<s:Header><a:Action>{escape(action_uri)}</a:Action>"
        f"<a:MessageID>uuid:{str(uuid.uuid4()).upper()}</a:MessageID>"
        "<a:To>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:To>"
        f"<a:RelatesTo>{escape(relates_to)}</a:RelatesTo></s:Header>"
        f"<s:Body>{body}</s:Body></s:Envelope>"
    ).encode()


def fault(relates_to: str, err: SoapError, machine: str) -> bytes:
    code = "s:Sender" if err.sender else "s:Receiver"
    detail = f"<w:FaultDetail>{escape(err.detail)}</w:FaultDetail>" if err.detail else ""
    body = (
        f"<s:Fault><s:Code><s:Value>{code}</s:Value><s:Subcode><s:Value>{escape(err.subcode)}</s:Value>"
        f"</s:Subcode></s:Code><s:Reason><s:Text xml:lang=\"en-US\">{escape(err.message)}</s:Text></s:Reason>"
        f"<s:Detail>{detail}<f:WSManFault xmlns:f=\"http://schemas.microsoft.com/wbem/wsman/1/wsmanfault\" "
        f"Code=\"{err.code}\" Machine={quoteattr(machine)}><f:Message>{escape(err.message)}</f:Message>"
        "</f:WSManFault></s:Detail></s:Fault>"
    )
    return envelope("http://schemas.dmtf.org/wbem/wsman/1/wsman/fault", relates_to, body)


def operation_timeout() -> SoapError:
    return SoapError(FAULT_OPERATION_TIMEOUT, MSG_OPERATION_TIMEOUT, subcode="w:TimedOut")


def shell_xml(shell_id: str, resource_uri: str, owner: str, client_ip: str, *,
              input_streams: str = "stdin pr", output_streams: str = "stdout") -> str:
    return (
        f"<rsp:Shell><rsp:ShellId>{escape(shell_id)}</rsp:ShellId>"
        f"<rsp:ResourceUri>{escape(resource_uri)}</rsp:ResourceUri>"
        f"<rsp:Owner>{escape(owner)}</rsp:Owner><rsp:ClientIP>{escape(client_ip)}</rsp:ClientIP>"
        "<rsp:IdleTimeOut>PT7200.000S</rsp:IdleTimeOut>"
        f"<rsp:InputStreams>{escape(input_streams)}</rsp:InputStreams>"
        f"<rsp:OutputStreams>{escape(output_streams)}</rsp:OutputStreams>"
        "<rsp:MaxIdleTimeOut>PT2147483.647S</rsp:MaxIdleTimeOut><rsp:Locale>en-US</rsp:Locale>"
        "<rsp:DataLocale>en-US</rsp:DataLocale><rsp:CompressionMode>NoCompression</rsp:CompressionMode>"
        "<rsp:ProfileLoaded>Yes</rsp:ProfileLoaded><rsp:Encoding>UTF8</rsp:Encoding>"
        "<rsp:BufferMode>Block</rsp:BufferMode><rsp:State>Connected</rsp:State>"
        "<rsp:ShellRunTime>P0DT0H0M0S</rsp:ShellRunTime><rsp:ShellInactivity>P0DT0H0M0S</rsp:ShellInactivity>"
        "</rsp:Shell>"
    )


def create_response(address: str, resource_uri: str, shell: str, shell_id: str) -> str:
    return (
        f"<x:ResourceCreated><a:Address>{escape(address)}</a:Address><a:ReferenceParameters>"
        f"<w:ResourceURI>{escape(resource_uri)}</w:ResourceURI><w:SelectorSet>"
        f"<w:Selector Name=\"ShellId\">{escape(shell_id)}</w:Selector></w:SelectorSet>"
        f"</a:ReferenceParameters></x:ResourceCreated>{shell}"
    )


def receive_response(chunks: list[str], command_id: str | None, done: bool) -> str:
    cid = f" CommandId={quoteattr(command_id)}" if command_id else ""
    streams = "".join(f'<rsp:Stream Name="stdout"{cid}>{c}</rsp:Stream>' for c in chunks)
    state = ""
    if command_id and done:
        state = (f'<rsp:CommandState{cid} State="{COMMAND_STATE_DONE}">'
                 "<rsp:ExitCode>0</rsp:ExitCode></rsp:CommandState>")
    return f"<rsp:ReceiveResponse>{streams}{state}</rsp:ReceiveResponse>"


STREAM_OVERHEAD = 96     # <rsp:Stream Name="stdout" CommandId="<36-char id>"> + close tag (88)
STATE_OVERHEAD = 260     # <rsp:CommandState ...><rsp:ExitCode>0</rsp:ExitCode></rsp:CommandState>


def config_response(max_envelope_kb: int) -> str:
    return (
        '<cfg:Config xmlns:cfg="http://schemas.microsoft.com/wbem/wsman/1/config">'
        f"<cfg:MaxEnvelopeSizekb>{max_envelope_kb}</cfg:MaxEnvelopeSizekb>"
        "<cfg:MaxTimeoutms>60000</cfg:MaxTimeoutms><cfg:MaxBatchItems>32000</cfg:MaxBatchItems>"
        "<cfg:MaxProviderRequests>4294967295</cfg:MaxProviderRequests></cfg:Config>"
    )
