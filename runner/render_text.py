"""Human-readable output: runbook descriptions, live progress, and run reports.

Written for three readers: a careful admin (what will change, exactly), a helpdesk person
(plain words, what to do next), and a log file of a scheduled run (plain lines, no colour)."""

from __future__ import annotations

import os
import shlex
import sys
import threading
import time
from pathlib import Path
from typing import Any, Sequence, TextIO

from .catalog import BUILTIN, Entry
from .results import RunResult, RunStatus, StageResult, Status
from .runbook import Runbook, quoted_notice
from .secrets import Secret
from .text_width import fill, fill_after

LABEL = {
    ("plan", Status.OK): "ok",
    ("plan", Status.CHANGED): "would change",
    ("run", Status.OK): "ok",
    ("run", Status.CHANGED): "changed",
}
COLOURS = {Status.OK: "green", Status.CHANGED: "yellow", Status.FAILED: "red",
           Status.SKIPPED: "bright_black", Status.ACTION_REQUIRED: "magenta"}


def label(mode: str, status: Status) -> str:
    """A stage status as a person reads it: a check speaks like a plan (`would change`)."""
    return LABEL.get(("run" if mode == "run" else "plan", status), status.value)


def _style(text: str, status: Status, color: bool) -> str:
    if not color:
        return text
    import click
    return click.style(text, fg=COLOURS.get(status), bold=status in (Status.FAILED, Status.ACTION_REQUIRED))


def catalog(entries: Sequence[Entry]) -> list[str]:
    """`psrunner list`: name, audience, title; where a runbook came from when it is not built in."""
    width = max((len(e.name) for e in entries), default=10)
    aud = max([len("scheduled")] + [len(",".join(e.audiences)) for e in entries])
    out = []
    for e in entries:
        title = f"(cannot be read: {e.error})" if e.error else e.title
        where = "" if e.origin == BUILTIN else f"  [{e.origin}]"
        out.append(f"{e.name:<{width}}  {','.join(e.audiences):<{aud}}  {title}{where}")
    return out


def example_command(rb: Runbook, *, runbook_dirs: Sequence[str | Path] = (), given: str | None = None) -> str:
    """A command line that runs `rb` as found: its required parameters with their examples
    (secrets are never on a command line; `show` says where they come from)."""
    words = ["psrunner", "run"]
    if given and (given.endswith(".toml") or os.sep in given):
        words.append(given)
    else:
        words.append(rb.name)
        if rb.origin == "--runbooks":
            for d in runbook_dirs:
                words += ["--runbooks", str(d)]
    for p in rb.params.values():
        if p.required and p.default is None and not p.secret:
            value = p.example or (p.choices[0] if p.choices else p.name.upper())
            words += ["-p", f"{p.name}={value}"]
    return " ".join(shlex.quote(w) for w in words)


def show(rb: Runbook, *, runbook_dirs: Sequence[str | Path] = (), given: str | None = None) -> str:
    lines = [f"{rb.name}: {rb.title}", f"audience: {rb.audience}"]
    where = "built-in" if rb.source.startswith("builtin:") else f"{rb.source} ({rb.origin or 'file'})"
    lines.append(f"source: {where}")
    lines += [f"shadows: {s}" for s in rb.shadows]
    if rb.approval:
        lines.append(f"approval: in the portal a run waits for a member of {rb.approval} (not the requester)")
    lines.append("")
    if rb.description:
        lines += [rb.description.strip(), ""]
    if rb.rights:
        lines.append("Rights needed:")
        lines += [f"  - {r}" for r in rb.rights]
        lines.append("")
    if rb.params:
        lines.append("Parameters:")
        w = max(len(p.name) for p in rb.params.values())
        pad = " " * (w + 2)
        for p in rb.params.values():
            if p.required and p.default is None:
                flags = "required"
            elif p.default in (None, "", []):
                flags = "optional"
            else:
                flags = f"default {str(p.default).lower() if isinstance(p.default, bool) else p.default}"
            kind = p.type if p.type != "choice" else "|".join(p.choices)
            lines.append(f"  {p.name:<{w}}  {kind}, {flags}")
            if p.help:
                lines.append(f"  {pad}{p.help}")
            if p.secret:
                lines.append(f"  {pad}(secret: from ${p.env_var}, --secret-file {p.name}=PATH, or a prompt)")
        lines.append("")
    lines.append("Stages:")
    for i, s in enumerate(rb.stages, 1):
        template = os.path.basename(s.template) if s.template and os.path.isabs(s.template) else s.template
        extra = f"  [{template}]" if template else ""
        lines.append(f"  {i:>2}. {s.id:<24} {s.title}{extra}")
        if s.explain:
            lines.append(f"      {s.explain}")
    if rb.notices:
        lines += ["", "Platform notices:"]
        for n in rb.notices:
            lines += [f"  - {n.date}: {n.title}", f"      source: {n.source}"]
    lines += ["", "Example:", "  " + example_command(rb, runbook_dirs=runbook_dirs, given=given)]
    return "\n".join(lines)


def _summary(s: StageResult) -> str:
    if s.status == Status.FAILED and s.error:
        return s.error.get("message", "")
    if s.messages:
        return s.messages[0]
    return ""


def result(res: RunResult, *, color: bool = False, show_secret: bool = False, terminal: bool = False,
           width: int | None = None) -> str:
    """The report of a run, wrapped to `width` columns (None: not wrapped). `show_secret` adds
    a new client secret (asked for with --show-secret); `terminal` (a person is reading, not a
    pipe or a log) shows a one-time password once. Each distinct warning is printed once:
    a warning that quotes a platform notice points to it, as the notices close the report."""
    mode = res.mode
    head = {"plan": "Plan", "check": "Check"}.get(mode, "Run")
    lines = fill(res.headline, width) if res.headline else []
    lines += fill(f"{head} {res.run_id} of {res.runbook}: {res.status.value}", width, hang="  ")
    lines += _stage_rows(res, color, width)
    handoff = next((s.outputs.get("handoff") for s in res.stages
                    if s.kind == "report.handoff" and isinstance(s.outputs.get("handoff"), dict)), None)
    if handoff:
        lines += ["", *handoff_text(handoff, show_secret=show_secret, width=width)]
    if res.refusals:
        lines += ["", "Refused by the platform for good (not drift: `check --strict` counts them):"]
        lines += [ln for r in refusal_lines(res) for ln in fill(r, width, "  ", "  ")]
    actions = [s for s in res.stages if s.action]
    if actions:
        lines += ["", "Action required (a person must finish these):"]
        for s in actions:
            lines += action_lines(s, width, _notice_titles(res))
    passwords = one_time_passwords(res)
    if passwords:
        lines += [""] + (passwords if terminal else ["New password: (not shown here: this output is not a terminal)"])
    if res.notices:
        lines += ["", "Platform notices:"]
        for n in res.notices:
            lines += fill(f"- {n['date']}  {n['title']}", width, "  ", "  ")
            lines += fill(n["says"], width, "    ")
            lines += fill(f"Instead: {n['instead']}", width, "    ")
    m = res.metrics
    counts = ", ".join(f"{m.get(st.value.replace('-', '_'), 0)} {label(mode, st)}" for st in
                       (Status.OK, Status.CHANGED, Status.ACTION_REQUIRED, Status.FAILED, Status.SKIPPED)
                       if m.get(st.value.replace("-", "_")))
    lines += ["", f"{len(res.stages)} stages: {counts or 'none'}"]
    if res.run_dir:
        lines += fill(f"artifacts: {res.run_dir}", width, hang="  ")
    if mode == "run" and res.run_dir and res.status in (RunStatus.INTERRUPTED, RunStatus.FAILED):
        lines += fill(f"to continue: {resume_command(res.run_dir)}", width, hang="  ")
    return "\n".join(lines)


def _notice_titles(res: RunResult) -> dict[str, str]:
    """A notice as stages quote it -> its title, which the report names instead."""
    return {quoted_notice(n): n["title"] for n in res.notices}


def _stage_rows(res: RunResult, color: bool, width: int | None) -> list[str]:
    """One row per stage: status, id, what it did; then its other messages, warnings (each
    distinct one once per run) and the fix. Side by side when the terminal leaves the text at
    least 50 columns; else the text goes under the stage, indented."""
    idw = max((len(s.id) for s in res.stages), default=8)
    table = width is None or width - (2 + 15 + 1 + idw + 2) >= 50
    notices, seen = _notice_titles(res), set()
    out = []
    for s in res.stages:
        texts = [(_summary(s), ""), *((m, "") for m in s.messages[1:6])]
        for w in s.warnings:
            w = f"platform notice \"{notices[w]}\" (see below)" if w in notices else w
            if w not in seen:
                seen.add(w)
                texts.append((f"warning: {w}", "  "))
        if s.error and s.error.get("hint"):
            texts.append((f"fix: {s.error['hint']}", "     "))
        lab = _style(f"{label(res.mode, s.status):<15}", s.status, color)
        if table:
            indent = 2 + 15 + 1 + idw + 2
            first, rest = texts[0], texts[1:]
            out += fill_after(f"  {lab} {s.id:<{idw}}  ", indent, first[0], width, first[1])
        else:
            indent, rest = 6, texts
            out.append(f"  {lab} {s.id}")
        for text, hang in rest:
            if text:
                out += fill(text, width, " " * indent, hang)
    return [ln.rstrip() for ln in out]


def resume_command(run_dir: str) -> str:
    """The exact command that continues a run: `--state-dir` only when the run lives
    elsewhere than where `resume` looks by default."""
    import shlex
    from .rundir import RunDir, default_state_dir
    rd = RunDir.at(Path(run_dir))
    here = "" if rd.state_dir.resolve() == default_state_dir().resolve() else \
        f" --state-dir {shlex.quote(str(rd.state_dir))}"
    return f"psrunner resume {rd.run_id}{here}"


def one_time_passwords(res: RunResult) -> list[str]:
    """The lines that show a run's one-time passwords (for a terminal only)."""
    found = [s.outputs.get("one_time_password") for s in res.stages if isinstance(s.outputs, dict)]
    return [f"New password (shown once, kept nowhere): {p.reveal()}" for p in found if isinstance(p, Secret)]


def handoff_text(h: dict[str, Any], *, show_secret: bool = False, width: int | None = None) -> list[str]:
    """The values to copy into the backup product's "Add Microsoft 365 Organization
    Manually" form, and the consent state of the permissions: those granted by this run, or
    that a plan would grant, listed API by API."""
    out = ["Hand-off (for \"Add Microsoft 365 Organization Manually\"):"]
    labels = h.get("form_labels", {})
    form = dict(h.get("form", {}))
    if show_secret and form.get("secret_file"):
        try:
            form["Client secret value"] = Path(form["secret_file"]).read_text(encoding="utf-8").strip()
        except OSError as e:
            form["Client secret value"] = f"(cannot read the file: {e.strerror})"
    rows = [(labels.get(k, k), str(v)) for k, v in
            (*form.items(), *(h.get("pending") or {}).items(), *(h.get("not_requested") or {}).items())]
    lw = max((len(k) for k, _ in rows), default=10)
    for key, value in rows:
        out += fill_after(f"  {key:<{lw}}  ", lw + 4, value, width)
    summary = h.get("permissions_summary") or {}
    if summary:
        out.append("  Permissions: " + ", ".join(f"{n} {state}" for state, n in sorted(summary.items())))
        perms = h.get("permissions", [])
        from .graph.permissions import by_api
        for state, words in (("would-grant", "to grant"), ("added", "granted now")):
            pairs = [(p.get("resource"), p.get("permission")) for p in perms if p.get("state") == state]
            for api, names in by_api(pairs):
                out += fill(f"{words} on {api} ({len(names)}): " + ", ".join(names), width, "    ", "  ")
        for p in perms:
            if p.get("state") not in ("granted", "added", "would-grant"):
                out += fill(f"{p.get('state')}: {p.get('resource')} {p.get('permission')}"
                            + (f" ({p['note']})" if p.get("note") else ""), width, "    ", "  ")
    sp = h.get("sharepoint")
    if isinstance(sp, dict) and (sp.get("before") or sp.get("after")):
        out.append("  SharePoint settings:")
        before, after = sp.get("before") or {}, sp.get("after") or {}

        def shown(v: Any) -> str:
            return "(not read yet)" if v is None else str(v)
        for name in sorted(set(before) | set(after)):
            out.append(f"    {name}: {shown(before.get(name))} -> {shown(after.get(name))}")
        refused = sp.get("refused") or {}
        for name in sorted(refused):
            out += fill(f"refused by the platform: {name}: {refused[name]}", width, "    ", "  ")
    return out


def refusal_lines(res: RunResult) -> list[str]:
    """Each refusal: what was asked, since when the platform refuses it, which run met it
    first, why, and how to stop asking."""
    out = []
    for stage_id, r in res.refusals:
        wanted = str(r.wanted).lower() if isinstance(r.wanted, bool) else r.wanted
        first = f"; first met by run {r.first_run}" if r.first_run and r.first_run != res.run_id else ""
        out.append(f"{r.item} = {wanted} ({stage_id}): refused since {r.since or '?'}{first}")
        out.append(f"  {r.reason}")
        if r.fix:
            out.append(f"  {r.fix}")
    return out


def action_text(s: StageResult) -> str:
    """What a person must do for one stage, unwrapped (for a page, a ticket, an e-mail)."""
    return "\n".join(ln[2:] for ln in action_lines(s, None, {}))


def action_lines(s: StageResult, width: int | None, notices: dict[str, str]) -> list[str]:
    """The steps of a stage's action, wrapped; XML to paste is never wrapped, and a note that
    quotes a platform notice points to it."""
    a: dict[str, Any] = s.action or {}
    out = fill(f"{s.title} ({s.id})", width, "  ")
    if a.get("summary"):
        out += fill(a["summary"], width, "  ")
    for i, step in enumerate(a.get("steps", []), 1):
        out += fill(f"{i}. {step}", width, "    ", "   ")
    for key in ("url", "app_id", "app_domain"):
        if a.get(key):
            out += fill(f"{key.replace('_', ' ')}: {a[key]}", width, "    ", "  ")
    if a.get("xml"):
        out.append("    XML to paste:")
        out += ["      " + ln for ln in str(a["xml"]).splitlines()]
    if a.get("notice"):
        note = a["notice"]
        note = f"see the platform notice \"{notices[note]}\" below" if note in notices else note
        out += fill(f"note: {note}", width, "    ", "  ")
    return out


class Progress:
    """Live progress on stderr: on a terminal, the running stage with its elapsed time on
    one updating line; elsewhere, one plain line when a stage starts and one when it ends."""

    def __init__(self, stream: TextIO = sys.stderr, live: bool = False, width: int | None = None) -> None:
        self.stream = stream
        self.live = live
        self.width = width              # the updating line must fit, or it cannot be redrawn
        self._running: dict[str, tuple[str, float]] = {}    # stage id -> (title, started); several
                                                             # when stages run alongside
        self._lock = threading.Lock()
        self._ticker: threading.Thread | None = None
        self._stop = threading.Event()
        self.mode = "plan"

    def __call__(self, ev: dict[str, Any]) -> None:
        t = ev["type"]
        d = ev.get("data", {})
        if t == "run.start":
            self.mode = d.get("mode", "plan")
        elif t == "stage.start":
            with self._lock:
                self._running[ev["stage"]] = (d.get("title", ""), time.monotonic())
            if self.live:
                self._start_ticker()
            else:
                self._write(f"... {ev['stage']}: {d.get('title', '')}\n")
        elif t == "stage.end":
            with self._lock:
                self._running.pop(ev["stage"], None)
            status = Status(d["status"])
            line = f"{label(self.mode, status):<15} {ev['stage']} ({d.get('duration', 0):.1f} s)"
            self._write(("\r\033[K" if self.live else "") + line + "\n")
        elif "say" in d:            # a line for the person watching, e.g. why sign-in waits
            said = "\n".join(fill(str(d["say"]), self.width, "  ", "  "))
            self._write(("\r\033[K" if self.live else "") + said + "\n")
        elif t == "run.end":
            self._stop.set()

    def _write(self, text: str) -> None:
        with self._lock:
            self.stream.write(text)
            self.stream.flush()

    def _start_ticker(self) -> None:
        if self._ticker and self._ticker.is_alive():
            return
        self._stop.clear()

        def tick() -> None:
            while not self._stop.wait(0.2):
                with self._lock:
                    cur = next(((sid, *v) for sid, v in self._running.items()), None)
                if cur:
                    sid, title, t0 = cur
                    line = f"  running       {sid}: {title} ({time.monotonic() - t0:.0f} s)"
                    self._write("\r\033[K" + (line[:self.width - 1] if self.width else line))
        self._ticker = threading.Thread(target=tick, daemon=True)
        self._ticker.start()


