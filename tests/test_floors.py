"""The floors of runner/ (docs/architecture.md), guarded: no import circle among its modules,
no module importing a floor it may not use, no module outside the simulators grown past
~450 lines, and the commands people type first (`--help`, `list`, `show`) free of the heavy
libraries. Every import counts, also one inside a function or under TYPE_CHECKING: a lazy
import defers the cost, not the dependency.

A new module belongs to a floor: add it to FLOORS (by module name or package prefix)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "runner"
MAX_LINES = 450

# floor -> (modules or package prefixes ending in ".", floors it may import besides its own)
FLOORS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "foundation": (("runner", "runner.errors", "runner.secrets"), ()),
    "values": (("runner.values", "runner.results", "runner.derive", "runner.userfiles"), ("foundation",)),
    "language": (("runner.refs", "runner.conditions", "runner.registry", "runner.powershell.templates",
                  "runner.powershell.param_block", "runner.powershell.quoting"),
                 ("foundation", "values")),
    "records": (("runner.rundir", "runner.locks", "runner.refusals", "runner.retention"), ("foundation", "values")),
    "runbook": (("runner.runbook", "runner.runbook_loader", "runner.params", "runner.catalog",
                 "runner.user_terms"),
                ("foundation", "values", "language")),
    "transports": (("runner.graph", "runner.graph.", "runner.powershell", "runner.powershell."),
                   ("foundation", "values", "language")),
    "stages": (("runner.stages", "runner.stages."),
               ("foundation", "values", "language", "records", "runbook", "transports")),
    "engine": (("runner.engine", "runner.stage_thread"), ("foundation", "values", "language", "records", "runbook")),
    "front": (("runner.api", "runner.cli", "runner.cli_common", "runner.cli_examples", "runner.cli_fleet",
               "runner.executor", "runner.text_width", "runner.render_text", "runner.outputs", "runner.fleet", "runner.fleet.", "runner.portal",
               "runner.portal.", "runner.sim."),
              ("foundation", "values", "language", "records", "runbook", "transports", "stages", "engine")),
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in ROOT.rglob("*.py") if "sim" not in p.relative_to(ROOT).parts}


def imports_of(name: str, path: Path) -> set[str]:
    """The runner modules `name` imports, resolved (relative imports, `from pkg import mod`)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            targets = [f"{module}.{a.name}" if f"{module}.{a.name}" in MODULES else module
                       for a in node.names]
        else:
            continue
        found.update(t for t in targets if t.startswith("runner") and t != name)
    return found


def floor_of(module: str) -> str:
    best, length = None, -1
    for floor, (members, _) in FLOORS.items():
        for m in members:
            hit = module == m or (m.endswith(".") and module.startswith(m))
            if hit and len(m) > length:
                best, length = floor, len(m)
    if best is None:
        raise AssertionError(f"{module} is on no floor: add it to FLOORS in {Path(__file__).name}")
    return best


GRAPH = {name: imports_of(name, path) for name, path in MODULES.items()}


def test_every_module_has_a_floor():
    for name in MODULES:
        floor_of(name)


def test_no_import_circle():
    """Tarjan's strongly connected components over the import graph: each one larger than a
    module is a circle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(GRAPH.get(v, ())):
            if w not in MODULES:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    assert circles == [], f"import circles: {circles}"


def test_no_floor_imports_a_floor_it_may_not_use():
    bad = []
    for name, deps in sorted(GRAPH.items()):
        floor = floor_of(name)
        allowed = {floor, *FLOORS[floor][1]}
        for dep in sorted(deps):
            if floor_of(dep) not in allowed:
                bad.append(f"{name} ({floor}) imports {dep} ({floor_of(dep)})")
    assert bad == []


def test_modules_stay_small():
    sizes = {str(p.relative_to(ROOT.parent)): len(p.read_text(encoding="utf-8").splitlines())
             for p in MODULES.values()}
    over = sorted(f"{f} ({n})" for f, n in sizes.items() if n > MAX_LINES)
    assert over == [], f"over {MAX_LINES} lines: split by concern, with names that say what each part holds"


HEAVY = ("msal", "pypsrp", "cryptography", "jinja2", "starlette", "uvicorn")


@pytest.mark.parametrize("argv", [["--help"], ["list"], ["show", "m365-backup-access"]])
def test_first_commands_import_no_heavy_library(argv):
    code = ("import sys\nfrom runner.cli import main\n"
            f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         cwd=ROOT.parent)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"
