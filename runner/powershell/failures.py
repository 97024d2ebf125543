"""What went wrong, in an admin's terms: PowerShell error records and transport failures.

`error_record` keeps the fields of a pypsrp ErrorRecord an admin acts on (message, exception
type, category, FullyQualifiedErrorId, target, script stack trace), secrets redacted.
`classify_exception` sorts an exception from pypsrp or requests into a TransportError kind:
auth, connect, dns, tls, timeout-before-start, timeout-mid-run, broken-pool or protocol; each
kind has a hint naming what to check on the host. `retryable` is true only while the remote
pipeline cannot have started."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Any

from ..errors import TransportError, setting
from ..secrets import redact
from .serialize import text_of
from .settings import HostSettings

ERROR_CATEGORIES = (
    "NotSpecified", "OpenError", "CloseError", "DeviceError", "DeadlockDetected", "InvalidArgument",
    "InvalidData", "InvalidOperation", "InvalidResult", "InvalidType", "MetadataError",
    "NotImplemented", "NotInstalled", "ObjectNotFound", "OperationStopped", "OperationTimeout",
    "SyntaxError", "ParserError", "PermissionDenied", "ResourceBusy", "ResourceExists",
    "ResourceUnavailable", "ReadError", "WriteError", "FromStdErr", "SecurityError",
    "ProtocolError", "ConnectionError", "AuthenticationError", "LimitsExceeded", "QuotaExceeded",
    "NotEnabled",
)

# WSMan fault codes that mean the shell (our runspace pool) is gone on the server.
_SHELL_GONE_CODES = {
    0x8033805B,   # ERROR_WSMAN_UNEXPECTED_SELECTORS: the ShellId is not known (any more)
    0x803381B2,   # ERROR_WSMAN_SHELL_NOT_INITIALIZED
}
_OPERATION_TIMEOUT = 0x80338029


@dataclass
class ErrorRecordInfo:
    """A PowerShell error record, kept with the fields an admin needs to act on it."""
    message: str
    exception_type: str | None = None
    category: str | None = None
    fqid: str | None = None
    target: str | None = None
    script_stack_trace: str | None = None
    terminating: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v not in (None, "")}

    def __str__(self) -> str:
        extra = ", ".join(x for x in (self.exception_type, self.fqid, self.category) if x)
        return f"{self.message} ({extra})" if extra else self.message


def error_record(rec: Any) -> ErrorRecordInfo:
    """Fields of a pypsrp ErrorRecord(Message)."""
    exc = getattr(rec, "exception", None)
    exc_type = None
    exc_message = None
    if exc is not None:
        types = getattr(exc, "types", None) or []
        if types:
            exc_type = str(types[0]).replace("Deserialized.", "")
        props = dict(getattr(exc, "adapted_properties", {}) or {})
        props.update(getattr(exc, "extended_properties", {}) or {})
        exc_message = text_of(props.get("Message")) or text_of(exc)
    message = text_of(getattr(rec, "details_message", None)) or exc_message or text_of(rec) or "(no message)"
    cat = getattr(rec, "category", None)
    category = ERROR_CATEGORIES[cat] if isinstance(cat, int) and 0 <= cat < len(ERROR_CATEGORIES) else text_of(cat)
    target = text_of(getattr(rec, "target_name", None))
    if not target:
        tobj = getattr(rec, "target_object", None)
        target = text_of(tobj) if isinstance(tobj, (str, int)) else None
    return ErrorRecordInfo(
        message=redact(message), exception_type=exc_type, category=category,
        fqid=text_of(getattr(rec, "fq_error", None)), target=redact(target) if target else None,
        script_stack_trace=redact(text_of(getattr(rec, "script_stacktrace", None)) or "") or None)


def classify_exception(e: BaseException, started: bool) -> tuple[str, str]:
    """(kind, detail) for an exception from pypsrp / requests."""
    import requests
    from pypsrp.exceptions import (
        AuthenticationError,
        InvalidPSRPOperation,
        InvalidRunspacePoolStateError,
        WinRMTransportError,
        WSManFaultError,
    )

    detail = redact(_short(e))
    if isinstance(e, AuthenticationError) or _no_credential(e):
        return "auth", detail
    if isinstance(e, requests.exceptions.SSLError):
        return "tls", detail
    if isinstance(e, requests.exceptions.ConnectTimeout):
        return "timeout-before-start", detail
    if isinstance(e, requests.exceptions.ReadTimeout):
        return ("timeout-mid-run" if started else "timeout-before-start"), detail
    if isinstance(e, requests.exceptions.ConnectionError):
        if _caused_by(e, socket.gaierror) or "Name or service not known" in str(e) \
                or "NameResolutionError" in str(e) or "nodename nor servname" in str(e) \
                or "getaddrinfo failed" in str(e):
            return "dns", detail
        if _caused_by(e, ConnectionRefusedError) or "Connection refused" in str(e) \
                or "actively refused" in str(e):
            return "connect", detail
        return ("broken-pool" if started else "connect"), detail
    if isinstance(e, WSManFaultError):
        code = e.code if isinstance(e.code, int) else 0
        reason = e.reason or str(e)
        if code in _SHELL_GONE_CODES or "shell was not found" in str(reason).lower() \
                or "shellid" in str(reason).lower():
            return "broken-pool", redact(str(reason))
        if code == 5 or "access is denied" in str(reason).lower():
            return "auth", redact(str(reason))
        if code == _OPERATION_TIMEOUT:
            return ("timeout-mid-run" if started else "timeout-before-start"), redact(str(reason))
        return "protocol", redact(str(reason))
    if isinstance(e, (InvalidRunspacePoolStateError, InvalidPSRPOperation)):
        return "broken-pool", detail
    if isinstance(e, WinRMTransportError):
        if e.code == 401:
            return "auth", detail
        return "protocol", redact(f"HTTP {e.code}: {str(e.response_text)[:300]}")
    return "protocol", detail


def _no_credential(e: BaseException) -> bool:
    """True for pyspnego's refusal to start without credentials: no Kerberos ticket (kinit not
    run, or expired), or none it may use. A sign-in problem, not a protocol one."""
    try:
        from spnego.exceptions import CredentialsExpiredError, InvalidCredentialError, NoCredentialError
    except ImportError:  # pragma: no cover - pyspnego comes with pypsrp
        return False
    return _caused_by(e, (NoCredentialError, CredentialsExpiredError, InvalidCredentialError))


def _short(e: BaseException) -> str:
    text = str(e) or type(e).__name__
    # urllib3 wraps the real reason several layers deep; the last "(...)" part reads best.
    if "Caused by" in text:
        text = text.split("Caused by", 1)[1].strip(" ()")
    return text[:400]


def _caused_by(e: BaseException, cls: type | tuple[type, ...]) -> bool:
    seen = set()
    stack: list[Any] = [e]
    while stack:
        x = stack.pop()
        if x is None or id(x) in seen:
            continue
        seen.add(id(x))
        if isinstance(x, cls):
            return True
        stack.extend([getattr(x, "__cause__", None), getattr(x, "__context__", None),
                      getattr(x, "reason", None)])
        stack.extend(a for a in getattr(x, "args", ()) if isinstance(a, BaseException))
    return False


def transport_error(e: BaseException, started: bool, settings: HostSettings) -> TransportError:
    """The TransportError for an exception from pypsrp or requests: its kind, a message naming
    the endpoint, whether a retry is safe (not once the pipeline may have started), a hint."""
    host = settings.host
    where = f"{settings.endpoint}"
    kind, detail = classify_exception(e, started)
    msg = {
        "auth": f"{where}: authentication failed for {settings.username or '(current user)'} "
                f"with {settings.auth}" + (": no Kerberos ticket to present (run kinit first, or check "
                                           "KRB5CCNAME)" if _no_credential(e) else ""),
        "connect": f"{where}: connection failed: {detail}",
        "dns": f"{where}: the host name {host!r} does not resolve",
        "tls": f"{where}: TLS handshake failed: {detail}",
        "timeout-before-start": f"{where}: timed out before the command started: {detail}",
        "timeout-mid-run": f"{where}: timed out while the command was running (it may have run; "
                           f"not replayed): {detail}",
        "broken-pool": f"{where}: the PowerShell session broke: {detail}",
        "protocol": f"{where}: WinRM refused the request: {detail}",
    }[kind]
    retryable = kind in ("timeout-before-start",) or (kind in ("connect", "broken-pool") and not started)
    return TransportError(redact(msg), host=host, kind=kind, retryable=retryable, hint=hint_for(kind, settings))


_HINTS = {
    "auth": f"check {setting('username')} and {setting('password')}, and that the WinRM service allows "
            f"{setting('auth')} (`winrm get winrm/config/service/auth`); for Kerberos check the SPN "
            "(`setspn -L <host>`) and that you used the host's DNS name; for a JEA endpoint check the role "
            "capability grants this user",
    "connect": "check the WinRM listener on the host (`winrm enumerate winrm/config/listener`), that the "
               "service runs (`Get-Service WinRM`), and that the firewall allows TCP {port} "
               "(`Test-NetConnection <host> -Port {port}`)",
    "dns": f"check {setting('host')} (DNS, hosts file) or use the IP address; with Kerberos the SPN must match "
           "the name",
    "tls": f"give {setting('ca_bundle')}: the PEM file of the CA that signed the host's WinRM HTTPS certificate; "
           "check that the certificate names this host; do not turn validation off",
    "timeout-before-start": "the command did not start, so a retry is safe; check the host is responsive and "
                            "the network path (proxy, firewall on TCP {port}); raise the stage timeout if it is slow",
    "timeout-mid-run": "the command may have run on the host and was not replayed: check the host's state "
                       "before running again, and raise the stage timeout if the work is slow",
    "broken-pool": "the host closed the PowerShell session (WinRM restarted, MaxShellsPerUser/idle timeout, or "
                   "memory limit: `winrm get winrm/config/winrs`); running again opens a new session",
    "protocol": f"check {setting('configuration_name')} (`Get-PSSessionConfiguration` on the host) and the "
                "WinRM logs (Event Viewer: Microsoft-Windows-WinRM/Operational)",
}


def hint_for(kind: str, settings: HostSettings) -> str:
    return _HINTS[kind].replace("{port}", str(settings.effective_port))
