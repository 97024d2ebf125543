"""The tables BENCHMARKS.md and README.md show, written from bench/results.json.

Each table sits between two markers, `<!-- bench:NAME -->` and `<!-- /bench:NAME -->`; what is
between them is replaced, the rest of the file is left as it is. tests/test_bench_docs.py
checks that the committed files match the committed results."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from .harness import HERE, Figure, figures

ROOT = HERE.parent
SCENARIOS = (("fresh-secret", "fresh onboarding, secret"), ("fresh-both", "fresh onboarding, secret + certificate"),
             ("rerun", "converged re-run"), ("check", "`check`, converged"), ("offboard", "offboarding"))


def latest_table(results: dict[str, Any]) -> str:
    """Every figure: section, figure, measured, goal, met."""
    rows = ["| figure | measured | goal | |", "|---|---:|---|---|"]
    for sec in results["sections"]:
        rows.append(f"| **{sec['title']}** | | | |")
        if sec["error"]:
            rows.append(f"| failed: {sec['error']} | | | |")
        for f in sec["figures"]:
            fig = Figure(**f)
            verdict = "" if fig.met is None else ("met" if fig.met else "**missed**")
            rows.append(f"| {fig.title} | {fig.shown()} | {fig.goal or ''} | {verdict} |")
    for what in results.get("not_measured", {}).values():
        rows.append(f"| **{what}** | not measured yet | | |")
    m = results["machine"]
    rows.append("")
    rows.append(f"Measured {results['generated']} on {m['cpus']} x {m['cpu'] or 'unknown CPU'}, "
                f"{m['platform']}, Python {m['python']}"
                + (f", load average {' / '.join(str(x) for x in m['load_average'])}" if m.get("load_average") else "")
                + ".")
    return "\n".join(rows)


def requests_table(results: dict[str, Any]) -> str:
    """Graph requests and round trips per scenario (what README.md shows)."""
    figs = figures(results)
    rows = ["| | Graph requests (sign-in included) | sequential round trips |", "|---|---:|---:|"]
    for key, title in SCENARIOS:
        req, rt = figs.get(f"graph.{key}.requests"), figs.get(f"graph.{key}.round-trips")
        if req and rt:
            rows.append(f"| {title} | {Figure(**req).shown()} | {Figure(**rt).shown()} |")
    wsman = figs.get("wsman.total.requests")
    if wsman:
        rows.append("")
        rows.append(f"A converged run sends the Windows host {Figure(**wsman).shown()} WSMan requests (its four "
                    "host stages, and closing the one runspace pool they share).")
    return "\n".join(rows)


TABLES = {"BENCHMARKS.md": {"latest": latest_table}, "README.md": {"requests": requests_table}}


def replace_between(text: str, name: str, body: str) -> str:
    """`text` with the part between the markers of table `name` replaced by `body`."""
    pattern = re.compile(rf"(<!-- bench:{name} -->\n).*?(\n<!-- /bench:{name} -->)", re.S)
    if not pattern.search(text):
        raise ValueError(f"no <!-- bench:{name} --> ... <!-- /bench:{name} --> markers")
    return pattern.sub(lambda m: m.group(1) + body + m.group(2), text, count=1)


def rendered(results: dict[str, Any]) -> dict[Path, str]:
    """Each documentation file as it should read with these results."""
    out = {}
    for file, tables in TABLES.items():
        path = ROOT / file
        text = path.read_text(encoding="utf-8")
        for name, make in tables.items():
            text = replace_between(text, name, make(results))
        out[path] = text
    return out


def update_docs(results: dict[str, Any]) -> list[Path]:
    """Rewrite the tables; the files that changed."""
    changed = []
    for path, text in rendered(results).items():
        if path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            changed.append(path)
    return changed
