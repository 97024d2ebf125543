"""Values across the PSRP boundary, both ways (pypsrp's serializer seam).

Out: `to_psrp_parameters` turns stage inputs into PSRP parameter values, secrets as
SecureStrings (`TaggedValue("SS", ...)`, encrypted with the session key), integers with the
width PowerShell expects, None left out so the parameter keeps its default.

Back: `from_psrp` turns pypsrp's deserialized output into plain Python (dicts, lists,
primitives); any other object becomes a `ComplexObject` marker that keeps its type name, so
the result contract (result.py) can say which object broke it. The record readers take the
text an admin needs from pypsrp's stream records."""

from __future__ import annotations

from typing import Any

from ..errors import InputError
from ..secrets import Secret


def to_psrp_parameters(parameters: dict[str, Any], secure: set[str]) -> tuple[dict[str, Any], bool]:
    """PSRP values for the parameters, and whether any is a SecureString (the pool must then
    exchange a session key first). Names in `secure` travel as SecureStrings too."""
    from pypsrp.serializer import TaggedValue

    out: dict[str, Any] = {}
    needs_keys = False
    secure_lower = {n.lower() for n in secure}

    def value(v: Any, name: str) -> Any:
        if isinstance(v, Secret):
            raise InputError(f"parameter {name}: a secret inside a list or table cannot travel as a SecureString",
                             input=name, hint="pass the secret as its own [SecureString] parameter")
        if isinstance(v, bool) or isinstance(v, str) or v is None:
            return v
        if isinstance(v, int):
            return v if -2**31 <= v < 2**31 else TaggedValue("I64", v)
        if isinstance(v, float):
            return TaggedValue("Db", v)
        if isinstance(v, (list, tuple)):
            return [value(x, name) for x in v]
        if isinstance(v, dict):
            return {str(k): value(x, name) for k, x in v.items()}
        raise InputError(f"parameter {name}: a {type(v).__name__} cannot be sent to PowerShell", input=name,
                         hint="use strings, numbers, booleans, lists or tables")

    for name, v in parameters.items():
        if v is None:
            continue
        if isinstance(v, Secret) or name.lower() in secure_lower:
            text = v.reveal() if isinstance(v, Secret) else v
            if not isinstance(text, str):
                raise InputError(f"parameter {name} is declared secure but is not a string", input=name)
            out[name] = TaggedValue("SS", text)
            needs_keys = True
        else:
            out[name] = value(v, name)
    return out, needs_keys


class ComplexObject:
    """An output object that is not a primitive, a list or a hashtable (by its type name)."""

    def __init__(self, type_name: str) -> None:
        self.type_name = type_name

    def __repr__(self) -> str:
        return f"<{self.type_name}>"


def from_psrp(obj: Any, depth: int = 0) -> Any:
    """pypsrp's deserialized output as plain Python; complex objects as ComplexObject."""
    if depth > 20:
        return ComplexObject("(nested too deep)")
    if obj is None or isinstance(obj, (bool, int, float, str, ComplexObject)):
        return obj
    if isinstance(obj, dict):
        return {str(k): from_psrp(v, depth + 1) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [from_psrp(v, depth + 1) for v in obj]
    if isinstance(obj, bytes):
        return ComplexObject("byte[]")
    types = getattr(obj, "types", None) or getattr(obj, "_types", None) or [type(obj).__name__]
    return ComplexObject(str(types[0]).replace("Deserialized.", ""))


# --------------------------------------------------------------------------- stream records

def text_of(v: Any) -> str | None:
    """A record field as text; None when empty."""
    if v is None:
        return None
    s = str(v)
    return s if s and s != "None" else None


def record_message(rec: Any) -> str:
    """The message of a warning, verbose or debug record."""
    return text_of(getattr(rec, "message", None)) or text_of(rec) or ""


def information_message(rec: Any) -> str:
    """The message of an information record (Write-Information / Write-Host)."""
    data = getattr(rec, "message_data", None)
    if data is not None and not isinstance(data, (str, int, float, bool)):
        return text_of(data) or ""
    return text_of(data) or record_message(rec)


def progress_record(rec: Any) -> dict[str, Any]:
    return {"activity": text_of(getattr(rec, "activity", None)),
            "status": text_of(getattr(rec, "description", None)),
            "percent": getattr(rec, "percent_complete", None)}
