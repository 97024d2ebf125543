"""Runbooks: TOML files that declare parameters, targets and an ordered list of stages. This
module holds what a loaded runbook is; runbook_loader.py parses and checks the text, and
catalog.py finds runbook files by name.

Loading validates everything up front, so that a typo costs an exit code 2 and a message
naming the file, the key and what is allowed, never a half-run. Unknown keys are errors.

    name = "m365-backup-access"
    title = "..."
    audience = "admin"                 # admin | helpdesk | scheduled, or a list of them
    rights = ["..."]                   # what the operator needs, in words
    approval = "admin"                 # optional: in the portal, a run waits until a member of
                                       # this role (not the requester) approves it
    accepts_params_of = ["..."]        # runbooks whose params files serve this one too: what
                                       # only they take is ignored, with one note

    [params.tenant]
    type = "str"                       # str | int | bool | choice | secret | list | file
    required = true
    pattern = '^[a-z0-9.-]+$'
    help = "..."

    [targets.tenant]                   # a connection; type graph | psrp
    type = "graph"
    tenant = "${params.tenant}"
    when = "params.tenant != ''"       # optional: a run that leaves it unused skips its stages,
    unused = "no tenant given"         #   saying this

    [[stages]]
    id = "application"
    kind = "graph.application"
    target = "tenant"
    inputs = { display_name = "${params.app_name}" }
    when = "params.credential != 'secret'"
    on_failure = "stop"                # stop | continue
    timeout = 300
    concurrent = false                 # true: runs alongside the stage before it, using
                                       # nothing that one leaves (stage_thread.py)

    [[notices]]                        # a platform fact with its date and source; or one a
    id = "idcrl-blocked"               #   built-in runbook keeps, by id (written once):
    of = "m365-backup-access"

References (runner/refs.py): `${params.NAME}`, `${stages.ID.outputs.KEY}`,
`${stages.ID.status}`, `${stages.ID.diff.before}` / `.after`, `${run.id}`, optionally piped
through a derivation (`${params.tenant|spo_admin_url}`). A string that is exactly one
reference keeps the value's type; references inside a longer string are interpolated as text.
Conditions (`when`, a notice's `applies`, a parameter's `required_if`): runner/conditions.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

from .conditions import evaluate_condition
from .errors import ParamError, closest
from .refs import resolve_value


@dataclass(frozen=True)
class Param:
    name: str
    type: str = "str"
    required: bool = False
    default: Any = None
    pattern: str | None = None
    help: str = ""
    choices: tuple[str, ...] = ()
    env: str | None = None          # secrets: environment variable to read
    min: int | None = None
    max: int | None = None
    example: str | None = None
    required_if: str | None = None  # a condition over other params that makes this one required
    separator: str = ","             # lists given as text (-p): between items (";" for DNs)

    @property
    def secret(self) -> bool:
        return self.type == "secret"

    @property
    def env_var(self) -> str:
        return self.env or f"PSRUNNER_{self.name.upper()}"

    def to_dict(self) -> dict[str, Any]:
        d = {"name": self.name, "type": self.type, "required": self.required,
             "default": self.default, "help": self.help}
        if self.choices:
            d["choices"] = list(self.choices)
        if self.pattern:
            d["pattern"] = self.pattern
        if self.secret:
            d["env"] = self.env_var
        return d


@dataclass(frozen=True)
class Target:
    name: str
    type: str
    settings: dict[str, Any]         # as written: may hold ${params.NAME} references
    when: str | None = None          # a condition over params: false means this run does not use it
    unused: str = ""                 # why, in the user's words (what its skipped stages say)

    def used(self, params: dict[str, Any]) -> bool:
        """Whether this run uses the target; when it does not, its stages are skipped."""
        return self.when is None or bool(evaluate_condition(self.when, {"params": params, "stages": {}}))

    def skip_reason(self) -> str:
        return f"not run: {self.unused or f'target {self.name} is not used ({self.when} is false)'}"

    def resolved(self, params: dict[str, Any]) -> dict[str, Any]:
        """The settings with parameters filled in; an empty value means "not set"."""
        settings = resolve_value(self.settings, {"params": params}, where=f"targets.{self.name}")
        return {k: v for k, v in settings.items() if v is not None and v != ""}


@dataclass(frozen=True)
class Stage:
    id: str
    title: str
    kind: str
    template: str | None = None
    vars: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, Any] = field(default_factory=dict)
    when: str | None = None
    on_failure: str = "stop"
    timeout: float | None = None
    target: str | None = None
    explain: str = ""
    concurrent: bool = False      # runs alongside the stage before it (stage_groups)

    def to_dict(self) -> dict[str, Any]:
        d = {"id": self.id, "title": self.title, "kind": self.kind, "template": self.template,
             "target": self.target, "when": self.when, "on_failure": self.on_failure,
             "timeout": self.timeout, "explain": self.explain}
        if self.concurrent:
            d["concurrent"] = True
        return d


@dataclass(frozen=True)
class Notice:
    id: str
    title: str
    date: str
    says: str
    instead: str
    source: str                     # where the date and the facts come from: a URL or a document's title
    applies: str | None = None      # a `when` expression; None = always

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "date": self.date, "says": self.says,
                "instead": self.instead, "source": self.source}


def quoted_notice(notice: dict[str, Any]) -> str:
    """A platform notice (as `Notice.to_dict` gives it) in one line, as a stage quotes it in
    a warning or a note; the report knows the line and points to the notice instead of
    printing it again."""
    return f"{notice['date']}: {notice['says']} Instead: {notice['instead']}"


@dataclass(frozen=True)
class Runbook:
    name: str
    title: str
    description: str
    audiences: tuple[str, ...]       # who it is for; a read-only check may serve several
    rights: tuple[str, ...]
    params: dict[str, Param]
    targets: dict[str, Target]
    stages: tuple[Stage, ...]
    notices: tuple[Notice, ...]
    source: str                      # the file's path, or builtin:NAME
    approval: str | None = None      # the role that must approve a run started in the portal
    origin: str = ""                 # where the catalog found it: --runbooks, user, built-in ...
    shadows: tuple[str, ...] = ()    # same-named runbooks further down the search path
    accepts_params_of: tuple[str, ...] = ()   # runbooks whose params files serve this one too

    @property
    def audience(self) -> str:
        return ",".join(self.audiences)

    def stage(self, stage_id: str) -> Stage:
        for s in self.stages:
            if s.id == stage_id:
                return s
        ids = [s.id for s in self.stages]
        guess = closest(stage_id, ids)
        raise ParamError(f"runbook {self.name!r} has no stage {stage_id!r}", param="--stage",
                         hint=f"did you mean --stage {guess}? (stages: {', '.join(ids)})" if guess
                         else "choose one of: " + ", ".join(ids))

    def summary(self) -> dict[str, Any]:
        return {"name": self.name, "title": self.title, "audience": self.audience,
                "description": self.description.strip()}

    def to_dict(self) -> dict[str, Any]:
        return {**self.summary(), "description": self.description, "rights": list(self.rights),
                "approval": self.approval,
                "audiences": list(self.audiences), "source": self.source, "origin": self.origin,
                "shadows": list(self.shadows),
                "params": [p.to_dict() for p in self.params.values()],
                "targets": [{"name": t.name, "type": t.type} for t in self.targets.values()],
                "stages": [s.to_dict() for s in self.stages],
                "notices": [n.to_dict() for n in self.notices]}


def stage_groups(stages: Iterable[Stage]) -> list[list[Stage]]:
    """The stages in the order they run: each with the `concurrent` stages that follow it."""
    groups: list[list[Stage]] = []
    for stage in stages:
        if stage.concurrent and groups:
            groups[-1].append(stage)
        else:
            groups.append([stage])
    return groups
