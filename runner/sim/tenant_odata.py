"""The OData query options the simulated Graph understands: $filter (eq, ne, in,
startswith, any() on string collections, and/or/not, parentheses), $select, $top and
$skiptoken paging. Anything else is refused with the error Graph gives, so a client that
relies on an unsupported option finds out here rather than in production."""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections.abc import Callable
from typing import Any

Predicate = Callable[[dict[str, Any]], bool]

_TOKEN = re.compile(r"""\s*(?:
    (?P<str>'(?:[^']|'')*') |
    (?P<guid>[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}) |
    (?P<num>-?\d+(?:\.\d+)?) |
    (?P<punct>[(),:]) |
    (?P<word>[A-Za-z_$@][A-Za-z0-9_./$@]*)
)""", re.VERBOSE)


class QueryError(Exception):
    """A query option Graph would refuse; `code` is the Graph error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def _tokenize(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise QueryError("BadRequest", f"Invalid filter clause: syntax error at position {pos} in '{text}'.")
        kind = m.lastgroup or ""
        out.append((kind, m.group(kind)))
        pos = m.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return out


def _either(a: Predicate, b: Predicate) -> Predicate:
    return lambda o: a(o) or b(o)


def _both(a: Predicate, b: Predicate) -> Predicate:
    return lambda o: a(o) and b(o)


def _fold(v: Any) -> Any:
    return v.lower() if isinstance(v, str) else v


class _Parser:
    """Recursive descent over the token list, producing a predicate on stored objects."""

    def __init__(self, text: str, fields: set[str], collections: set[str], resource: str) -> None:
        self.toks = _tokenize(text)
        self.i = 0
        self.fields, self.collections, self.resource = fields, collections, resource

    def peek(self, k: int = 0) -> tuple[str, str] | None:
        j = self.i + k
        return self.toks[j] if j < len(self.toks) else None

    def take(self, value: str | None = None) -> tuple[str, str]:
        tok = self.peek()
        if tok is None or (value is not None and tok[1].lower() != value):
            raise QueryError("BadRequest", f"Invalid filter clause: expected '{value or 'more'}'.")
        self.i += 1
        return tok

    def unsupported(self, field: str) -> QueryError:
        return QueryError("Request_UnsupportedQuery",
                          f"Unsupported or invalid query filter clause specified for property '{field}' "
                          f"of resource '{self.resource}'.")

    def literal(self) -> Any:
        kind, val = self.take()
        if kind == "str":
            return val[1:-1].replace("''", "'")
        if kind == "guid":
            return val
        if kind == "num":
            return float(val) if "." in val else int(val)
        if kind == "word" and val.lower() in ("true", "false", "null"):
            return {"true": True, "false": False, "null": None}[val.lower()]
        raise QueryError("BadRequest", f"Invalid filter clause: '{val}' is not a literal.")

    def parse(self) -> Predicate:
        pred = self.expr()
        if self.peek() is not None:
            raise QueryError("BadRequest", f"Invalid filter clause: unexpected '{self.peek()[1]}'.")  # type: ignore[index]
        return pred

    def expr(self) -> Predicate:
        left = self.conj()
        while self.peek() and self.peek()[1].lower() == "or":  # type: ignore[index]
            self.take()
            right = self.conj()
            left = _either(left, right)
        return left

    def conj(self) -> Predicate:
        left = self.unary()
        while self.peek() and self.peek()[1].lower() == "and":  # type: ignore[index]
            self.take()
            right = self.unary()
            left = _both(left, right)
        return left

    def unary(self) -> Predicate:
        tok = self.peek()
        if tok is None:
            raise QueryError("BadRequest", "Invalid filter clause: unexpected end.")
        if tok[1].lower() == "not":
            self.take()
            inner = self.unary()
            return lambda o: not inner(o)
        if tok[1] == "(":
            self.take("(")
            inner = self.expr()
            self.take(")")
            return inner
        if tok[1].lower() == "startswith":
            self.take()
            self.take("(")
            field = self.field()
            self.take(",")
            prefix = self.literal()
            self.take(")")
            return lambda o: isinstance(o.get(field), str) and o[field].lower().startswith(str(prefix).lower())
        return self.comparison()

    def field(self) -> str:
        kind, name = self.take()
        if kind != "word":
            raise QueryError("BadRequest", f"Invalid filter clause: '{name}' is not a property.")
        return name

    def comparison(self) -> Predicate:
        name = self.field()
        if "/" in name:  # collection/any(x: x eq 'v')
            coll, _, fn = name.partition("/")
            if fn.lower() != "any" or coll not in self.collections:
                raise self.unsupported(coll)
            self.take("(")
            var = self.field()
            self.take(":")
            if self.field() != var:
                raise QueryError("BadRequest", "Invalid filter clause: lambda variable mismatch.")
            self.take("eq")
            value = _fold(self.literal())
            self.take(")")
            return lambda o: any(_fold(x) == value for x in (o.get(coll) or []))
        if name not in self.fields:
            raise self.unsupported(name)
        op = self.take()[1].lower()
        if op in ("eq", "ne"):
            value = _fold(self.literal())
            if op == "eq":
                return lambda o: _fold(o.get(name)) == value
            return lambda o: _fold(o.get(name)) != value
        if op == "in":
            self.take("(")
            values = [_fold(self.literal())]
            while self.peek() and self.peek()[1] == ",":  # type: ignore[index]
                self.take(",")
                values.append(_fold(self.literal()))
            self.take(")")
            return lambda o: _fold(o.get(name)) in values
        raise QueryError("Request_UnsupportedQuery", f"Unsupported query operator '{op}' in filter clause.")


def parse_filter(text: str, fields: set[str], collections: set[str], resource: str) -> Predicate:
    return _Parser(text, fields, collections, resource).parse()


def parse_select(text: str, allowed: set[str], type_name: str) -> list[str]:
    names = [s.strip() for s in text.split(",") if s.strip()]
    for n in names:
        if n not in allowed:
            raise QueryError("BadRequest", f"Could not find a property named '{n}' on type '{type_name}'.")
    return names


def encode_skiptoken(offset: int) -> str:
    raw = json.dumps({"o": offset, "n": uuid.uuid4().hex[:8]}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_skiptoken(token: str) -> int:
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        offset = int(data["o"])
        if offset < 0:
            raise ValueError
        return offset
    except (ValueError, KeyError, TypeError):
        raise QueryError("Directory_ExpiredPageToken", "The specified page token value has expired and can no "
                         "longer be included in your request.") from None
