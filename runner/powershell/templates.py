"""PowerShell templates: one strict Jinja2 environment over `ps_templates/`, what templates
exist, their parameters, and rendering.

Jinja2 decides a script's *structure* (which blocks, loops over static lists); data travels
as PSRP parameters bound by the template's param() block (read by param_block.py). Where a
template must print a value, it goes through a quoting filter (quoting.py), so user data
never becomes PowerShell code. Jinja2 is imported to render only: listing templates and
reading their parameters does not need it.

Templates are found through importlib.resources on the `ps_templates` package, so a source
checkout and an installed wheel behave the same. Every rendered script starts with
`# psrunner-template: <id>` (the simulator picks the twin by it; people reading a recorded
script see where it came from)."""

from __future__ import annotations

import functools
import os
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Iterable

from ..errors import TemplateError
from .param_block import ParamDecl, parse_param_block
from .quoting import QUOTING_FILTERS, xml_attr

PACKAGE = "ps_templates"
PS_SUFFIX = ".ps1.j2"
HEADER_PREFIX = "# psrunner-template: "
TEMPLATE_ID = re.compile(r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$")


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
    "ALLOWED_RIGHTS", "ALLOWED_SCOPES", "RenderedScript", "header_id", "is_template_file", "list_templates",
    "render_permission_xml", "render_template", "template_params", "template_source",
]
