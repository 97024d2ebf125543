"""Parsing and checking a runbook's TOML text (the format: runner/runbook.py; finding the
files: runner/catalog.py).

`parse` checks everything up front: keys, types, names, references, conditions, stage kinds
and their targets, templates (packaged, or a file beside the runbook, confined to its
folder) and each template stage's inputs against the template's param() block, raising
RunbookError naming the file, the key and what is allowed."""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from .conditions import check_condition, stages_named
from .errors import ParamError, RunbookError
from .refs import REF_RE, iter_refs
from .registry import KINDS, TARGETS
from .runbook import Notice, Param, Runbook, Stage, Target, stage_groups
from .values import clip, coerce

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

AUDIENCES = ("admin", "helpdesk", "scheduled")
# "file": a path on this machine that must name an existing file when given (checked before
# anything runs, so a typo costs exit 2, not a half-run).
PARAM_TYPES = ("str", "int", "bool", "choice", "secret", "list", "file")
ON_FAILURE = ("stop", "continue")
NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
ROLE_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")    # a portal role, as a policy file names it
STAGE_ID_RE = re.compile(r"^[a-z][a-z0-9_-]*$")
ENV_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
MAX_TIMEOUT = 7 * 24 * 3600.0     # a stage deadline beyond a week is a typo

RUNBOOK_KEYS = {"name", "title", "description", "audience", "rights", "approval", "params", "targets",
                "stages", "notices", "accepts_params_of"}
PARAM_KEYS = {"type", "required", "required_if", "default", "pattern", "help", "choices", "env", "min",
              "max", "example", "separator"}
STAGE_KEYS = {"id", "title", "kind", "template", "vars", "inputs", "when", "on_failure",
              "timeout", "target", "explain", "concurrent"}
NOTICE_KEYS = {"id", "title", "date", "applies", "says", "instead", "source"}
BORROWED_NOTICE_KEYS = {"id", "of"}   # a notice another built-in runbook declares, named by its id


def parse(text: str, source: str = "<string>", *, origin: str = "", folder: Path | None = None) -> Runbook:
    """A runbook from TOML text. `folder` is where the file lies: a stage's template may be
    a file in it (`template = "unlock.ps1.j2"`); without one only packaged templates exist."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise RunbookError(f"not valid TOML: {e}", file=source,
                           hint="check quoting and brackets at the line named") from None
    except RecursionError:
        raise RunbookError("tables or arrays are nested too deeply", file=source,
                           hint="a runbook needs a few levels of nesting at most") from None
    v = _Validator(source, folder)
    v.keys(data, RUNBOOK_KEYS, "")
    name = v.req_str(data, "name")
    if not STAGE_ID_RE.match(name):
        v.fail("name", f"{name!r} is not a valid runbook name", "use lowercase letters, digits and -")
    audiences = data.get("audience", "admin")
    audiences = [audiences] if isinstance(audiences, str) else audiences
    if not isinstance(audiences, list) or not audiences or any(a not in AUDIENCES for a in audiences):
        v.fail("audience", f"{data.get('audience')!r} is not allowed",
               "one of " + ", ".join(AUDIENCES) + ", or a list of them")
    rights = data.get("rights", [])
    if not isinstance(rights, list) or not all(isinstance(r, str) for r in rights):
        v.fail("rights", "must be a list of strings", None)
    approval = data.get("approval")
    if approval is not None and (not isinstance(approval, str) or not ROLE_RE.match(approval)):
        v.fail("approval", f"{approval!r} is not a role name",
               'name the role whose members approve a run, e.g. approval = "admin"')
    accepts = data.get("accepts_params_of", [])
    if not isinstance(accepts, list) or not all(isinstance(r, str) and STAGE_ID_RE.match(r) for r in accepts):
        v.fail("accepts_params_of", "must be a list of runbook names", 'e.g. accepts_params_of = ["m365-backup-access"]')

    params = {n: v.param(n, spec) for n, spec in v.table(data, "params").items()}
    for p in params.values():
        if p.required_if is not None:
            try:
                if not isinstance(p.required_if, str):
                    raise ValueError("required_if must be a condition string")
                check_condition(p.required_if, {k: q for k, q in params.items() if not q.secret}, [])
            except ValueError as e:
                v.fail(f"params.{p.name}.required_if", str(e), "name non-secret parameters: params.NAME")
    targets = {n: v.target(n, spec, params) for n, spec in v.table(data, "targets").items()}
    raw_stages = data.get("stages", [])
    if not isinstance(raw_stages, list) or not raw_stages:
        v.fail("stages", "must be a non-empty array of tables ([[stages]])", None)
    stages: list[Stage] = []
    for i, spec in enumerate(raw_stages):
        stages.append(v.stage(i, spec, params, targets, [s.id for s in stages],
                              running=[s.id for s in stage_groups(stages)[-1]] if stages else []))
    if not isinstance(data.get("notices", []), list):
        v.fail("notices", "must be an array of tables ([[notices]])", None)
    notices = tuple(v.notice(i, n, params) for i, n in enumerate(data.get("notices", [])))
    for tname, t in targets.items():
        v.refs(t.settings, f"targets.{tname}", params, [])
    return Runbook(name=name, title=v.req_str(data, "title"),
                   description=v.opt_str(data, "description", ""), audiences=tuple(audiences),
                   rights=tuple(rights), approval=approval, params=params, targets=targets, stages=tuple(stages),
                   notices=notices, source=source, origin=origin,
                   accepts_params_of=tuple(accepts))


class _Validator:
    def __init__(self, source: str, folder: Path | None) -> None:
        self.source = source
        self.folder = folder

    def fail(self, key: str, msg: str, hint: str | None) -> None:
        raise RunbookError(msg, file=self.source, key=key, hint=hint)

    def keys(self, d: dict, allowed: set[str], where: str) -> None:
        for k in d:
            if k not in allowed:
                self.fail(f"{where}{k}", "unknown key",
                          "allowed keys here: " + ", ".join(sorted(allowed)))

    def table(self, d: dict, key: str) -> dict:
        t = d.get(key, {})
        if not isinstance(t, dict):
            self.fail(key, "must be a table", None)
        return t

    def req_str(self, d: dict, key: str, where: str = "") -> str:
        if key not in d:
            self.fail(where + key, "is required", None)
        if not isinstance(d[key], str) or not d[key].strip():
            self.fail(where + key, "must be a non-empty string", None)
        return d[key]

    def opt_str(self, d: dict, key: str, default: str, where: str = "") -> str:
        val = d.get(key, default)
        if not isinstance(val, str):
            self.fail(where + key, "must be a string", None)
        return val

    def param(self, name: str, spec: Any) -> Param:
        where = f"params.{name}."
        if not NAME_RE.match(name):
            self.fail(f"params.{name}", "is not a valid parameter name",
                      "use lowercase letters, digits and _ (starting with a letter)")
        if not isinstance(spec, dict):
            self.fail(f"params.{name}", "must be a table", None)
        self.keys(spec, PARAM_KEYS, where)
        ptype = spec.get("type", "str")
        if ptype not in PARAM_TYPES:
            self.fail(where + "type", f"{ptype!r} is not a parameter type", "one of: " + ", ".join(PARAM_TYPES))
        choices = spec.get("choices", [])
        if ptype == "choice" and (not isinstance(choices, list) or not choices
                                  or not all(isinstance(c, str) for c in choices)):
            self.fail(where + "choices", "a choice parameter needs a non-empty list of strings", None)
        if ptype != "choice" and choices:
            self.fail(where + "choices", "only choice parameters take choices", None)
        for key in ("pattern", "help", "example", "required_if"):
            if key in spec and not isinstance(spec[key], str):
                self.fail(where + key, "must be a string", None)
        if "required" in spec and not isinstance(spec["required"], bool):
            self.fail(where + "required", f"{clip(repr(spec['required']))} is not true or false",
                      "write required = true or required = false (no quotes)")
        if "env" in spec and (not isinstance(spec["env"], str) or not ENV_RE.match(spec["env"])):
            self.fail(where + "env", f"{clip(repr(spec['env']))} is not an environment variable name",
                      "e.g. env = \"PSRUNNER_HOST_PASSWORD\"")
        for key in ("min", "max"):
            if key in spec and (ptype != "int" or not isinstance(spec[key], int) or isinstance(spec[key], bool)):
                self.fail(where + key, f"{key} must be a whole number, on an int parameter",
                          "write e.g. min = 1 (no quotes) on a parameter of type = \"int\"")
        if isinstance(spec.get("min"), int) and isinstance(spec.get("max"), int) and spec["min"] > spec["max"]:
            self.fail(where + "min", f"min ({spec['min']}) is above max ({spec['max']})", None)
        pattern = spec.get("pattern")
        if pattern is not None:
            try:
                re.compile(pattern)
            except re.error as e:
                self.fail(where + "pattern", f"not a valid regular expression: {e}", None)
        if ptype == "secret" and "default" in spec:
            self.fail(where + "default", "a secret cannot have a default",
                      "secrets come from the environment, a file or a prompt")
        p = Param(name=name, type=ptype, required=spec.get("required", False),
                  default=spec.get("default"), pattern=pattern, help=spec.get("help", ""),
                  choices=tuple(choices), env=spec.get("env"), min=spec.get("min"),
                  max=spec.get("max"), example=spec.get("example"), required_if=spec.get("required_if"),
                  separator=spec.get("separator", ","))
        if not isinstance(p.separator, str) or len(p.separator) != 1 or ptype != "list" and "separator" in spec:
            self.fail(where + "separator", "a list parameter's separator is one character", None)
        if p.default is not None and not (isinstance(p.default, str) and REF_RE.search(p.default)):
            try:
                coerce(p, p.default)
            except ParamError as e:
                self.fail(where + "default", f"default does not fit the parameter: {e.message}", None)
        return p

    def target(self, name: str, spec: Any, params: dict[str, Param]) -> Target:
        if not isinstance(spec, dict):
            self.fail(f"targets.{name}", "must be a table", None)
        ttype = spec.get("type")
        if not isinstance(ttype, str) or ttype not in TARGETS:
            self.fail(f"targets.{name}.type", f"{ttype!r} is not a target type",
                      "one of: " + ", ".join(TARGETS))
        when, unused = spec.get("when"), spec.get("unused", "")
        if when is not None:
            try:
                if not isinstance(when, str):
                    raise ValueError("must be a string expression")
                check_condition(when, {k: q for k, q in params.items() if not q.secret}, [])
            except ValueError as e:
                self.fail(f"targets.{name}.when", str(e), "a condition over non-secret parameters: params.NAME != ''")
        if not isinstance(unused, str) or (unused and when is None):
            self.fail(f"targets.{name}.unused", "a sentence for a target with a `when`", None)
        return Target(name, ttype, {k: v for k, v in spec.items() if k not in ("type", "when", "unused")},
                      when=when, unused=unused)

    def stage(self, i: int, spec: Any, params: dict[str, Param], targets: dict[str, Target],
              earlier: list[str], running: Sequence[str] = ()) -> Stage:
        """One [[stages]] table. `running`: the stages a `concurrent` one would run alongside."""
        if not isinstance(spec, dict):
            self.fail(f"stages[{i}]", "must be a table", None)
        sid = spec.get("id")
        where = f"stages[{i}]." if not isinstance(sid, str) else f"stages.{sid}."
        self.keys(spec, STAGE_KEYS, where)
        sid = self.req_str(spec, "id", where)
        if not STAGE_ID_RE.match(sid):
            self.fail(where + "id", f"{sid!r} is not a valid stage id", "use lowercase letters, digits, _ and -")
        if sid in earlier:
            self.fail(where + "id", f"duplicate stage id {sid!r}", "stage ids must be unique")
        kind = self.req_str(spec, "kind", where)
        if kind not in KINDS:
            self.fail(where + "kind", f"{kind!r} is not a stage kind",
                      "one of: " + ", ".join(sorted(KINDS)))
        kspec = KINDS[kind]
        template = spec.get("template")
        if kspec.uses_template and kind != "sharepoint.appinv_grant":
            if not isinstance(template, str):
                self.fail(where + "template", f"stage kind {kind} needs a template",
                          "name one from ps_templates/, e.g. sharepoint/spo_module, or a .ps1.j2 file "
                          "beside the runbook")
            template = self.template(where, template)
        elif template is not None and not kspec.uses_template:
            self.fail(where + "template", f"stage kind {kind} takes no template", None)
        target = spec.get("target")
        if target is not None and not isinstance(target, str):
            self.fail(where + "target", "must be the name of a target", None)
        if kspec.target_type:
            candidates = [t for t in targets.values() if t.type == kspec.target_type]
            if target is None:
                if len(candidates) != 1:
                    self.fail(where + "target", f"stage kind {kind} needs a {kspec.target_type} target",
                              "declare [targets.NAME] type = \"%s\" and set target = \"NAME\"" % kspec.target_type)
                target = candidates[0].name
            elif target not in targets or targets[target].type != kspec.target_type:
                self.fail(where + "target", f"{target!r} is not a {kspec.target_type} target",
                          "targets of that type: " + (", ".join(t.name for t in candidates) or "none"))
        elif target is not None:
            self.fail(where + "target", f"stage kind {kind} runs locally and takes no target", None)
        on_failure = spec.get("on_failure", "stop")
        if on_failure not in ON_FAILURE:
            self.fail(where + "on_failure", f"{on_failure!r} is not allowed", "one of: stop, continue")
        timeout = spec.get("timeout")
        if timeout is not None and (not isinstance(timeout, (int, float)) or isinstance(timeout, bool)
                                    or not 0 < timeout <= MAX_TIMEOUT):
            self.fail(where + "timeout", f"must be a positive number of seconds, at most {MAX_TIMEOUT:.0f} (a week)",
                      None)
        concurrent = spec.get("concurrent", False)
        if not isinstance(concurrent, bool):
            self.fail(where + "concurrent", "must be true or false", None)
        if concurrent:
            if not earlier:
                self.fail(where + "concurrent", "the first stage has no stage to run alongside",
                          "remove concurrent = true")
            self.alongside(spec, where, running)
        inputs = spec.get("inputs", {})
        if not isinstance(inputs, dict):
            self.fail(where + "inputs", "must be a table", None)
        svars = spec.get("vars", {})
        if not isinstance(svars, dict):
            self.fail(where + "vars", "must be a table", None)
        self.refs(inputs, where + "inputs", params, earlier)
        if kind == "powershell.template":
            self.template_inputs(where, template, inputs)
        elif kind == "sharepoint.module":     # the template's parameters and the host's facts
            self.template_inputs(where, template, {k: v for k, v in inputs.items() if k != "host_facts"})
        when = spec.get("when")
        if when is not None:
            if not isinstance(when, str):
                self.fail(where + "when", "must be a string expression", None)
            try:
                check_condition(when, params, earlier)
            except ValueError as e:
                self.fail(where + "when", str(e),
                          "use params.NAME, stages.ID.status / .outputs.KEY, literals, "
                          "==, !=, in, not in, and, or, not")
        return Stage(id=sid, title=spec.get("title", sid), kind=kind, template=template,
                     vars=svars, inputs=inputs, when=when, on_failure=on_failure,
                     timeout=float(timeout) if timeout else None, target=target,
                     explain=spec.get("explain", ""), concurrent=concurrent)

    def alongside(self, spec: dict[str, Any], where: str, running: Sequence[str]) -> None:
        """A concurrent stage starts before the stages it runs alongside end: it may not use
        what they leave (their outputs, status or diff), in its inputs or its condition."""
        used = {ref.split(".")[1] for ref, _ in iter_refs(spec.get("inputs", {})) if ref.startswith("stages.")}
        when = spec.get("when")
        if isinstance(when, str):
            try:
                used |= stages_named(when)
            except SyntaxError:
                pass            # said when the condition is checked
        clash = [sid for sid in running if sid in used]
        if clash:
            self.fail(where + "concurrent", f"runs alongside stage {clash[0]!r} but uses what it leaves",
                      f"take concurrent = true away, or refer only to stages before {running[0]!r}")

    def template(self, where: str, template: str) -> str:
        """A packaged template id, or the absolute path of a template file in the runbook's
        folder (a link or `..` that leaves the folder is refused: the runbook's author vouches
        for its folder, not for the rest of the disk)."""
        from .powershell.templates import PS_SUFFIX, list_templates  # no Jinja2
        if not template.endswith(PS_SUFFIX):
            if template not in list_templates():
                self.fail(where + "template", f"no template {template!r}",
                          f"one of: {', '.join(list_templates())}; or a {PS_SUFFIX} file beside the runbook")
            return template
        if self.folder is None:
            self.fail(where + "template", f"a template file ({template}) needs a runbook file in a folder",
                      "load the runbook from its file, or name a packaged template")
        folder = self.folder.resolve()
        path = (folder / template).resolve()
        if Path(template).is_absolute() or not path.is_relative_to(folder):
            self.fail(where + "template", f"{template!r} is outside the runbook's folder",
                      f"put the template in {folder} and name it relative to it")
        if not path.is_file():
            self.fail(where + "template", f"no template file {template!r} beside the runbook",
                      f"create {path}, or name a packaged template")
        return str(path)

    def template_inputs(self, where: str, template: str, inputs: dict[str, Any]) -> None:
        """Stage inputs of a template stage are the template's PowerShell parameters."""
        from .powershell.templates import template_params  # Jinja2 only; no network libraries
        declared = {p.name.lower(): p for p in template_params(template)}
        for name in inputs:
            if name.lower() not in declared:
                self.fail(f"{where}inputs.{name}", f"template {template} has no parameter {name!r}",
                          "its parameters: " + ", ".join(p.name for p in declared.values() if p.name != "Apply"))
            if name.lower() == "apply":
                self.fail(f"{where}inputs.{name}", "Apply is set by psrunner (false in plan, true in run)", None)
        for p in declared.values():
            if p.mandatory and p.name.lower() not in {n.lower() for n in inputs}:
                self.fail(f"{where}inputs", f"template {template} needs parameter {p.name!r}",
                          f"add {p.name} = \"${{params.NAME}}\" to the stage's inputs")

    def notice(self, i: int, spec: Any, params: dict[str, Param]) -> Notice:
        if not isinstance(spec, dict):
            self.fail(f"notices[{i}]", "must be a table", None)
        if "of" in spec:
            spec = self.borrowed_notice(i, spec)
        self.keys(spec, NOTICE_KEYS, f"notices[{i}].")
        applies = spec.get("applies")
        if applies is not None:
            try:
                check_condition(applies, params, [])
            except ValueError as e:
                self.fail(f"notices[{i}].applies", str(e), None)
        return Notice(id=self.req_str(spec, "id", f"notices[{i}]."),
                      title=self.req_str(spec, "title", f"notices[{i}]."),
                      date=self.req_str(spec, "date", f"notices[{i}]."),
                      says=self.req_str(spec, "says", f"notices[{i}]."),
                      instead=self.req_str(spec, "instead", f"notices[{i}]."),
                      source=self.req_str(spec, "source", f"notices[{i}]."), applies=applies)

    def borrowed_notice(self, i: int, spec: dict[str, Any]) -> dict[str, Any]:
        """`{ id = "idcrl-blocked", of = "m365-backup-access" }`: the notice as that built-in
        runbook declares it, so a platform fact is written once, where it is kept up to date."""
        self.keys(spec, BORROWED_NOTICE_KEYS, f"notices[{i}].")
        lender, nid = spec.get("of"), self.req_str(spec, "id", f"notices[{i}].")
        file = resources.files("runner") / "runbooks" / f"{lender}.toml"
        if not (isinstance(lender, str) and STAGE_ID_RE.match(lender) and file.is_file()):
            self.fail(f"notices[{i}].of", f"{lender!r} is not a built-in runbook", None)
        found = [n for n in tomllib.loads(file.read_text(encoding="utf-8")).get("notices", [])
                 if isinstance(n, dict) and n.get("id") == nid]
        if not found:
            self.fail(f"notices[{i}].id", f"built-in runbook {lender} has no notice {nid!r}", None)
        return found[0]

    def refs(self, value: Any, where: str, params: dict[str, Param], earlier: list[str]) -> None:
        for ref, derive in iter_refs(value):
            parts = ref.split(".")
            if parts[0] == "params":
                if len(parts) != 2 or parts[1] not in params:
                    self.fail(where, f"reference ${{{ref}}} names no parameter",
                              "parameters: " + ", ".join(params))
            elif parts[0] == "stages":
                if len(parts) < 3 or parts[1] not in earlier or parts[2] not in ("outputs", "status", "changed", "diff"):
                    self.fail(where, f"reference ${{{ref}}} names no earlier stage output",
                              "use ${stages.ID.outputs.KEY} with an ID that comes earlier")
            elif parts[0] == "run" and parts[1:] in (["id"], ["dir"]):
                pass
            else:
                self.fail(where, f"reference ${{{ref}}} is not understood",
                          "use ${params.NAME} or ${stages.ID.outputs.KEY}")
            if derive is not None:
                from .derive import DERIVATIONS
                if derive not in DERIVATIONS:
                    self.fail(where, f"unknown derivation |{derive}", "one of: " + ", ".join(DERIVATIONS))
