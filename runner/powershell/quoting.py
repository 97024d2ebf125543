"""Quoting filters: the only way a value Jinja2 prints into a PowerShell script (or the
appinv.aspx XML) gets there, so user data never becomes PowerShell code.

- `ps_str`   a single-quoted PowerShell literal ('' doubles every quote PowerShell treats as
             a single quote: ' U+2018 U+2019 U+201A U+201B); nothing inside is expanded.
- `ps_bool`  $true / $false (bools only).
- `ps_int`   a decimal integer (ints only, not bools).
- `ps_array` @(...) of the above.
- `xml_attr` an XML attribute value in double quotes, escaped.

Each refuses a Secret (secrets travel as SecureString parameters) and an Unknown (plan mode:
not known yet)."""

from __future__ import annotations

import re
import sys
from typing import Any, Callable, Iterable
from xml.sax.saxutils import quoteattr

from ..secrets import Secret
from ..values import Unknown

# The characters PowerShell's tokenizer treats as a single quote (CharTraits.IsSingleQuote).
SINGLE_QUOTES = "'\u2018\u2019\u201a\u201b"
_SINGLE_QUOTE_RE = re.compile(f"([{SINGLE_QUOTES}])")


class QuotingError(ValueError):
    """A value a quoting filter refuses (wrong type, a Secret, an unknown value)."""


# --------------------------------------------------------------------------- filters

def _refuse_special(value: Any, filter_name: str) -> None:
    jinja2 = sys.modules.get("jinja2")
    if jinja2 is not None and isinstance(value, jinja2.Undefined):
        value._fail_with_undefined_error()  # StrictUndefined: "'name' is undefined"

    if isinstance(value, Secret):
        raise QuotingError(f"{filter_name}: a secret cannot be printed into a script; pass it as a "
                           f"SecureString parameter through the template's param() block")
    if isinstance(value, Unknown):
        raise QuotingError(f"{filter_name}: {value!r} is not known yet (plan mode); pass it as a "
                           f"parameter instead of printing it into the script")


def ps_str(value: Any) -> str:
    """A single-quoted PowerShell string literal whose content is exactly `value`."""
    _refuse_special(value, "ps_str")
    if not isinstance(value, str):
        raise QuotingError(f"ps_str expects a string, got {type(value).__name__}")
    if "\x00" in value:
        raise QuotingError("ps_str: a NUL character cannot travel inside a script")
    return "'" + _SINGLE_QUOTE_RE.sub(r"\1\1", value) + "'"


def ps_bool(value: Any) -> str:
    _refuse_special(value, "ps_bool")
    if not isinstance(value, bool):
        raise QuotingError(f"ps_bool expects true or false, got {type(value).__name__} {value!r}")
    return "$true" if value else "$false"


def ps_int(value: Any) -> str:
    _refuse_special(value, "ps_int")
    if isinstance(value, bool) or not isinstance(value, int):
        raise QuotingError(f"ps_int expects an integer, got {type(value).__name__} {value!r}")
    return str(value)


def ps_array(values: Any) -> str:
    """@(item, ...) where each item is quoted by its type (str, int, bool)."""
    _refuse_special(values, "ps_array")
    if isinstance(values, (str, bytes, dict)) or not isinstance(values, Iterable):
        raise QuotingError(f"ps_array expects a list, got {type(values).__name__}")
    items = []
    for v in values:
        if isinstance(v, bool):
            items.append(ps_bool(v))
        elif isinstance(v, int):
            items.append(ps_int(v))
        elif isinstance(v, str):
            items.append(ps_str(v))
        else:
            _refuse_special(v, "ps_array")
            raise QuotingError(f"ps_array items must be strings, integers or booleans, got {type(v).__name__}")
    return "@(" + ", ".join(items) + ")"


QUOTING_FILTERS: dict[str, Callable[[Any], str]] = {
    "ps_str": ps_str, "ps_bool": ps_bool, "ps_int": ps_int, "ps_array": ps_array,
}


def xml_attr(value: Any) -> str:
    """An XML attribute value in double quotes, escaped (for the .xml.j2 templates)."""
    _refuse_special(value, "xml_attr")
    if isinstance(value, bool):
        value = "true" if value else "false"
    if not isinstance(value, (str, int)):
        raise QuotingError(f"xml_attr expects a string, got {type(value).__name__}")
    return quoteattr(str(value))
