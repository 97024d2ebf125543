"""PowerShell templates: one strict Jinja2 environment over `ps_templates/`, the quoting
filters, and the parser that reads each template's param() block.

Jinja2 decides a script's *structure* (which blocks, loops over static lists); data travels
as PSRP parameters bound by the template's param() block. Where a template must print a
value, it goes through a quoting filter, so user data never becomes PowerShell code:

- `ps_str`   a single-quoted PowerShell literal ('' doubles every quote PowerShell treats as
             a single quote: ' U+2018 U+2019 U+201A U+201B); nothing inside is expanded.
- `ps_bool`  $true / $false (bools only).
- `ps_int`   a decimal integer (ints only, not bools).
- `ps_array` @(...) of the above.

Templates are found through importlib.resources on the `ps_templates` package, so a source
checkout and an installed wheel behave the same. Every rendered script starts with
`# psrunner-template: <id>` (the simulator picks the twin by it; people reading a recorded
script see where it came from)."""

from __future__ import annotations

import functools
import os
import re
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Iterable
from xml.sax.saxutils import quoteattr

from ..errors import TemplateError

PACKAGE = "ps_templates"
PS_SUFFIX = ".ps1.j2"
HEADER_PREFIX = "# psrunner-template: "
TEMPLATE_ID = re.compile(r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$")

# The characters PowerShell's tokenizer treats as a single quote (CharTraits.IsSingleQuote).
SINGLE_QUOTES = "'\u2018\u2019\u201a\u201b"
_SINGLE_QUOTE_RE = re.compile(f"([{SINGLE_QUOTES}])")


class QuotingError(ValueError):
    """A value a quoting filter refuses (wrong type, a Secret, an unknown value)."""


# --------------------------------------------------------------------------- filters

def _refuse_special(value: Any, filter_name: str) -> None:
    from ..secrets import Secret
    from ..values import Unknown

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


# --------------------------------------------------------------------------- environment

def _root():
    return resources.files(PACKAGE)


def _import_jinja():
    import jinja2

    return jinja2


@functools.lru_cache(maxsize=1)
def _environment():
    jinja2 = _import_jinja()

    class ResourceLoader(jinja2.BaseLoader):
        """Loads templates through importlib.resources (works from a wheel or a zip)."""

        def get_source(self, environment, template):
            node = _source_node(template)
            if node is None:
                raise jinja2.TemplateNotFound(template)
            where = template if is_template_file(template) else f"{PACKAGE}/{template}"
            return node.read_text(encoding="utf-8"), where, lambda: True

        def list_templates(self):
            return sorted(_walk(_root(), ""))

    env = jinja2.Environment(
        loader=ResourceLoader(),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(QUOTING_FILTERS)
    env.filters["xml_attr"] = xml_attr
    return env


def _walk(node, prefix: str) -> Iterable[str]:
    for child in node.iterdir():
        name = child.name
        if name.startswith((".", "_")):
            continue
        if child.is_dir():
            yield from _walk(child, f"{prefix}{name}/")
        elif name.endswith(".j2"):
            yield prefix + name


def list_templates() -> list[str]:
    """The ids of the PowerShell templates, e.g. "sharepoint/spo_module". Read from the
    package without Jinja2, so loading or showing a runbook does not import it."""
    return [n[: -len(PS_SUFFIX)] for n in sorted(_walk(_root(), "")) if n.endswith(PS_SUFFIX)]


def is_template_file(template: str) -> bool:
    """A template of a runbook's own: the absolute path of a .ps1.j2 file beside the runbook
    (the runbook loader resolves and confines it), not a packaged template id."""
    return isinstance(template, str) and template.endswith(PS_SUFFIX) and os.path.isabs(template)


def header_id(template: str) -> str:
    """What the script's first line names: the packaged id, or `local/NAME` for a file (the
    host simulator finds a twin by it; the folder on this machine is nobody's business)."""
    return f"local/{os.path.basename(template)[: -len(PS_SUFFIX)]}" if is_template_file(template) else template


def _file_of(template_id: str) -> str:
    if is_template_file(template_id):
        return template_id
    if not isinstance(template_id, str) or not TEMPLATE_ID.match(template_id):
        raise TemplateError(f"template id {template_id!r} is not of the form family/name",
                            input="template", hint="pick one of: " + ", ".join(list_templates()))
    return template_id + PS_SUFFIX


def _source_node(name: str) -> Any:
    """The resource holding template file `name` ("sharepoint/spo_module.ps1.j2"), or None."""
    if is_template_file(name):
        return Path(name) if os.path.isfile(name) else None
    node = _root()
    for part in name.split("/"):
        if part in ("", ".", ".."):
            return None
        node = node.joinpath(part)
    return node if node.is_file() else None


def template_source(template_id: str) -> str:
    """The raw Jinja2 source of a PowerShell template (read without Jinja2)."""
    node = _source_node(_file_of(template_id))
    if node is None:
        raise TemplateError(f"no template {template_id!r}", input="template", template=template_id,
                            hint="pick one of: " + ", ".join(list_templates()))
    return node.read_text(encoding="utf-8")


# --------------------------------------------------------------------------- rendering

@dataclass(frozen=True)
class RenderedScript:
    id: str
    text: str


def _template_line(exc: BaseException, filename: str) -> int | None:
    """The template line an exception came from (Jinja rewrites tracebacks to template lines)."""
    line = getattr(exc, "lineno", None)
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == filename:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _render(file: str, template_id: str, variables: dict[str, Any]) -> str:
    jinja2 = _import_jinja()
    env = _environment()
    _check_variables(variables, template_id)
    try:
        template = env.get_template(file)
    except jinja2.TemplateNotFound:
        raise TemplateError(f"no template {template_id!r}", input="template", template=template_id,
                            hint="pick one of: " + ", ".join(list_templates())) from None
    except jinja2.TemplateSyntaxError as e:
        raise TemplateError(f"{template_id}: line {e.lineno}: {e.message}", input="template",
                            template=template_id, line=e.lineno) from None
    try:
        return template.render(**variables)
    except Exception as e:  # UndefinedError, QuotingError, anything a filter raised
        line = _template_line(e, template.filename or "")
        where = f"{template_id}: line {line}" if line else template_id
        msg = getattr(e, "message", None) or str(e)
        raise TemplateError(f"{where}: {msg}", input="vars", template=template_id, line=line,
                            hint="template variables choose structure only; data goes in stage "
                                 "inputs (PowerShell parameters)") from None


def _check_variables(variables: dict[str, Any], template_id: str) -> None:
    from ..secrets import Secret

    def walk(v: Any, path: str) -> None:
        if isinstance(v, Secret):
            raise TemplateError(f"{template_id}: template variable {path} is a secret; secrets travel "
                                f"as SecureString parameters, never in script text",
                                input=f"vars.{path}", template=template_id)
        if isinstance(v, dict):
            for k, x in v.items():
                walk(x, f"{path}.{k}")
        elif isinstance(v, (list, tuple)):
            for i, x in enumerate(v):
                walk(x, f"{path}[{i}]")

    if not isinstance(variables, dict):
        raise TemplateError(f"{template_id}: template variables must be a table", input="vars",
                            template=template_id)
    for k, v in variables.items():
        walk(v, k)


def render_template(template_id: str, variables: dict[str, Any] | None = None) -> RenderedScript:
    """Render a PowerShell template. Raises TemplateError naming the template and line."""
    file = _file_of(template_id)
    body = _render(file, template_id, dict(variables or {}))
    text = f"{HEADER_PREFIX}{header_id(template_id)}\n{body}"
    return RenderedScript(template_id, text)


# --------------------------------------------------------------------------- param() blocks

@dataclass(frozen=True)
class ParamDecl:
    name: str
    type: str            # as written, lower-cased, without brackets: "string", "bool", "securestring"
    mandatory: bool
    secure: bool


_SECURE_TYPES = {"securestring", "system.security.securestring"}


def _strip_comments(src: str) -> str:
    """Remove Jinja comments, PowerShell block comments and line comments (outside strings)."""
    src = re.sub(r"\{#.*?#\}", "", src, flags=re.S)
    out, i, n = [], 0, len(src)
    while i < n:
        c = src[i]
        if src.startswith("<#", i):
            j = src.find("#>", i + 2)
            i = n if j < 0 else j + 2
            continue
        if c == "#":
            j = src.find("\n", i)
            i = n if j < 0 else j
            continue
        if c in SINGLE_QUOTES:
            j = i + 1
            while j < n:
                if src[j] in SINGLE_QUOTES:
                    if j + 1 < n and src[j + 1] in SINGLE_QUOTES:
                        j += 2
                        continue
                    break
                j += 1
            out.append(src[i:j + 1])
            i = j + 1
            continue
        if c == '"':
            j = i + 1
            while j < n and src[j] != '"':
                j += 2 if src[j] == "`" else 1
            out.append(src[i:j + 1])
            i = j + 1
            continue
        out.append(c)
        i += 1
    return "".join(out)


def _balanced(src: str, start: int) -> int:
    """Index just past the bracket that closes src[start] ('(' or '[')."""
    pairs = {"(": ")", "[": "]", "{": "}"}
    stack = []
    i = start
    while i < len(src):
        c = src[i]
        if c in pairs:
            stack.append(pairs[c])
        elif stack and c == stack[-1]:
            stack.pop()
            if not stack:
                return i + 1
        elif c in SINGLE_QUOTES or c == '"':
            q = c
            i += 1
            while i < len(src) and not (src[i] == q or (q != '"' and src[i] in SINGLE_QUOTES)):
                i += 1
        i += 1
    raise ValueError("unbalanced brackets")


def _split_top(src: str) -> list[str]:
    parts, depth, cur, i = [], 0, [], 0
    while i < len(src):
        c = src[i]
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif c in SINGLE_QUOTES or c == '"':
            j = i + 1
            while j < len(src) and not (src[j] == c or (c != '"' and src[j] in SINGLE_QUOTES)):
                j += 1
            cur.append(src[i:j + 1])
            i = j + 1
            continue
        if c == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(c)
        i += 1
    if "".join(cur).strip():
        parts.append("".join(cur))
    return parts


_PARAM_KW = re.compile(r"(?i)(?<![\w$-])param\s*\(")
_VAR = re.compile(r"\$(?P<name>[A-Za-z_]\w*)")


def _declaration(chunk: str) -> ParamDecl:
    """One `[attr(...)] [type] $Name = default` declaration."""
    i, attrs = 0, []
    while i < len(chunk):
        c = chunk[i]
        if c == "[":
            end = _balanced(chunk, i)
            attrs.append(chunk[i + 1:end - 1].strip())
            i = end
        elif c == "$":
            break
        else:
            i += 1
    var = _VAR.match(chunk, i)
    if not var:
        raise ValueError(f"cannot read parameter declaration: {chunk.strip()[:60]!r}")
    ptype, mandatory = "object", False
    for a in attrs:
        paren = a.find("(")
        if paren < 0:
            ptype = re.sub(r"\s+", "", a).lower()
        elif a[:paren].strip().lower() == "parameter":
            args = a[paren:].lower()
            if re.search(r"\bmandatory\b(?!\s*=\s*\$false)", args):
                mandatory = True
    return ParamDecl(var.group("name"), ptype, mandatory, ptype in _SECURE_TYPES)


def parse_param_block(source: str) -> list[ParamDecl]:
    """Read the script-level param() block: names, types, Mandatory, SecureString.

    A small parser on purpose: tree-sitter is a test dependency, and the runbook loader needs
    this at load time. Template param() blocks are static PowerShell (no Jinja inside); the
    template tests cross-check this parser against tree-sitter-powershell."""
    src = _strip_comments(source)
    m = _PARAM_KW.search(src)
    if not m:
        return []
    open_at = m.end() - 1
    body = src[open_at + 1:_balanced(src, open_at) - 1]
    return [_declaration(chunk) for chunk in _split_top(body) if chunk.strip()]


def template_params(template_id: str) -> list[ParamDecl]:
    """The parameters a template declares (the runbook loader checks stage inputs against them)."""
    try:
        return parse_param_block(template_source(template_id))
    except ValueError as e:
        raise TemplateError(f"{template_id}: param() block: {e}", input="template",
                            template=template_id) from None


# --------------------------------------------------------------------------- AppPermissionRequests XML

ALLOWED_SCOPES = (
    "http://sharepoint/content/tenant",
    "http://sharepoint/content/sitecollection",
    "http://sharepoint/content/sitecollection/web",
    "http://sharepoint/content/sitecollection/web/list",
)
ALLOWED_RIGHTS = ("Read", "Write", "Manage", "FullControl")
PERMISSION_XML_TEMPLATE = "sharepoint/app_permission_request.xml.j2"


def render_permission_xml(scope: str, right: str, app_only: bool) -> str:
    """The AppPermissionRequests XML an admin pastes into appinv.aspx, validated by parsing."""
    if scope not in ALLOWED_SCOPES:
        raise TemplateError(f"scope {scope!r} is not an app permission scope", input="scope",
                            hint="use one of: " + ", ".join(ALLOWED_SCOPES))
    if right not in ALLOWED_RIGHTS:
        raise TemplateError(f"right {right!r} is not an app permission right", input="right",
                            hint="use one of: " + ", ".join(ALLOWED_RIGHTS))
    if not isinstance(app_only, bool):
        raise TemplateError("app_only must be true or false", input="app_only")
    text = _render(PERMISSION_XML_TEMPLATE, PERMISSION_XML_TEMPLATE,
                   {"scope": scope, "right": right, "app_only": app_only})
    try:
        root = ET.fromstring(text)
    except ET.ParseError as e:  # pragma: no cover - the template is fixed; the test renders it
        raise TemplateError(f"{PERMISSION_XML_TEMPLATE}: rendered XML does not parse: {e}",
                            template=PERMISSION_XML_TEMPLATE) from None
    req = root.find("AppPermissionRequest")
    if (root.tag != "AppPermissionRequests" or req is None
            or root.get("AllowAppOnlyPolicy") != ("true" if app_only else "false")
            or req.get("Scope") != scope or req.get("Right") != right):
        raise TemplateError(f"{PERMISSION_XML_TEMPLATE}: rendered XML does not say what was asked",
                            template=PERMISSION_XML_TEMPLATE)  # pragma: no cover
    return text.strip() + "\n"


__all__ = [
    "ALLOWED_RIGHTS", "ALLOWED_SCOPES", "ParamDecl", "QuotingError", "RenderedScript",
    "header_id", "is_template_file", "list_templates", "parse_param_block", "ps_array", "ps_bool", "ps_int", "ps_str",
    "render_permission_xml", "render_template", "template_params", "template_source",
]
