"""Reading the files a person names (a runbook, a params file, a secret file, a CA bundle):
what they must be before psrunner reads them, and a clear error naming the input when they
are not.

A regular file only: a directory, a FIFO (reading one blocks until someone writes), a device
(`/dev/null` reads as empty, `/dev/zero` never ends) or a socket is refused by name. A size
limit, so a mistaken path to a disk image costs an error, not the machine's memory. Text is
UTF-8; a UTF-8 byte order mark is accepted (Windows PowerShell 5.1's `Set-Content -Encoding
UTF8` and Notepad write one), UTF-16 is recognised and named (PowerShell's `>` and `Out-File`
write it by default), and any other undecodable byte is reported with its offset."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .errors import InputError

MiB = 1024 * 1024

_BOMS = ((b"\xff\xfe\x00\x00", "UTF-32"), (b"\x00\x00\xfe\xff", "UTF-32"),
         (b"\xff\xfe", "UTF-16"), (b"\xfe\xff", "UTF-16"))


def _kind_of(mode: int) -> str | None:
    """What a non-regular file is, in words; None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def check_regular(path: str | os.PathLike[str], *, what: str, input: str, hint: str | None = None) -> os.stat_result:
    """The stat of `path`, a regular file; InputError naming `input` otherwise."""
    p = Path(path).expanduser()
    try:
        st = p.stat()
    except FileNotFoundError:
        raise InputError(f"{what} {str(path)!r} does not exist", input=input, hint=hint) from None
    except OSError as e:
        raise InputError(f"{what} {str(path)!r} cannot be read: {e.strerror or e}", input=input,
                         hint=hint) from None
    kind = _kind_of(st.st_mode)
    if kind is not None:
        raise InputError(f"{what} {str(path)!r} is {kind}, not a file", input=input,
                         hint=hint or "give the path of a regular file") from None
    return st


def read_bytes(path: str | os.PathLike[str], *, what: str, input: str, limit: int = MiB,
               hint: str | None = None) -> bytes:
    """The content of a regular file of at most `limit` bytes."""
    st = check_regular(path, what=what, input=input, hint=hint)
    if st.st_size > limit:
        raise InputError(f"{what} {str(path)!r} is {st.st_size:,} bytes; the limit is {limit:,}", input=input,
                         hint=hint or "check the path: this is not the file meant")
    try:
        with open(Path(path).expanduser(), "rb") as f:
            data = f.read(limit + 1)
    except OSError as e:
        raise InputError(f"{what} {str(path)!r} cannot be read: {e.strerror or e}", input=input,
                         hint=hint) from None
    if len(data) > limit:
        raise InputError(f"{what} {str(path)!r} is larger than {limit:,} bytes", input=input, hint=hint)
    return data


def decode_text(data: bytes, *, what: str, input: str) -> str:
    """UTF-8 text (a byte order mark dropped); UTF-16/32 and other encodings named."""
    for bom, name in _BOMS:
        if data.startswith(bom):
            raise InputError(f"{what} is {name} text; psrunner reads UTF-8", input=input,
                             hint="save it as UTF-8 (PowerShell: Set-Content -Encoding utf8; Notepad: "
                                  "Save as, Encoding UTF-8)")
    if b"\x00" in data:
        head = data[:64]
        if head[1::2].count(0) == len(head[1::2]) or head[0::2].count(0) == len(head[0::2]):
            raise InputError(f"{what} looks like UTF-16 text without a byte order mark; psrunner reads UTF-8",
                             input=input, hint="save it as UTF-8")
        raise InputError(f"{what} holds NUL bytes: it is not a text file", input=input,
                         hint="check the path: this is not the file meant")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise InputError(f"{what} is not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start})",
                         input=input, hint="save it as UTF-8") from None


def read_text(path: str | os.PathLike[str], *, what: str, input: str, limit: int = MiB,
              hint: str | None = None) -> str:
    """A regular UTF-8 text file of at most `limit` bytes, as text."""
    data = read_bytes(path, what=what, input=input, limit=limit, hint=hint)
    return decode_text(data, what=f"{what} {str(path)!r}", input=input)


def check_ca_bundle(path: str | os.PathLike[str], *, input: str) -> None:
    """A CA bundle as TLS reads it: a regular file of PEM certificates. A DER file, a PFX or
    a key is refused here, before a run, rather than as a failed handshake later."""
    import ssl

    hint = "give a PEM file holding the CA certificates to trust (-----BEGIN CERTIFICATE----- blocks)"
    data = read_bytes(path, what="CA bundle", input=input, limit=16 * MiB, hint=hint)
    if b"-----BEGIN CERTIFICATE-----" not in data:
        raise InputError(f"CA bundle {str(path)!r} holds no PEM certificate", input=input, hint=hint)
    try:
        ssl.create_default_context(cafile=str(Path(path).expanduser()))
    except (ssl.SSLError, ValueError) as e:
        raise InputError(f"CA bundle {str(path)!r} cannot be read as PEM certificates: {e}", input=input,
                         hint=hint) from None
