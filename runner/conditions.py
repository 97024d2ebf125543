"""Conditions: the small expression language of a stage's `when`, a notice's `applies` and a
parameter's `required_if`.

    params.credential in ['secret', 'both']
    params.host_user != '' and stages.application.status == 'changed'

Names are `params.NAME` and `stages.ID.status / .changed / .outputs.KEY`; the operators are
==, !=, in, not in, and, or, not; literals are strings, numbers, booleans and lists. It is
parsed with Python's `ast` and checked node by node against that list, never `eval`ed, so a
runbook cannot run code. `check_condition` runs when a runbook loads (a typo costs exit 2);
`evaluate_condition` when a stage is about to run."""

from __future__ import annotations

import ast
from collections.abc import Collection
from typing import Any

_ALLOWED_NODES = (ast.Expression, ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.Not,
                  ast.Compare, ast.Eq, ast.NotEq, ast.In, ast.NotIn, ast.Constant, ast.List,
                  ast.Tuple, ast.Attribute, ast.Name, ast.Load)


# A condition is a line or two of text; these bounds keep a hostile one (`not not not ...`
# twenty thousand times) from exhausting Python's parser and the evaluator's recursion.
MAX_LENGTH = 1000
MAX_DEPTH = 32


def _depth(tree: ast.AST) -> int:
    deepest, todo = 0, [(tree, 1)]
    while todo:
        node, d = todo.pop()
        deepest = max(deepest, d)
        todo.extend((child, d + 1) for child in ast.iter_child_nodes(node))
    return deepest


def check_condition(expr: str, params: Collection[str], earlier: Collection[str]) -> ast.Expression:
    """Parse a condition and check it uses only the small allowed language and names only
    `params` (parameter names) and `earlier` (ids of the stages before it). ValueError says
    what is wrong."""
    if len(expr) > MAX_LENGTH:
        raise ValueError(f"the condition is {len(expr):,} characters long; the limit is {MAX_LENGTH}")
    try:
        tree = ast.parse(expr, mode="eval")
    except SyntaxError as e:
        raise ValueError(f"cannot parse condition {expr[:80]!r}: {e.msg}") from None
    except (RecursionError, MemoryError):
        raise ValueError(f"condition {expr[:80]!r}… is nested too deeply") from None
    if _depth(tree) > MAX_DEPTH:
        raise ValueError(f"condition {expr[:80]!r} is nested more than {MAX_DEPTH} levels deep")
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED_NODES):
            raise ValueError(f"condition {expr!r} uses {type(node).__name__}, which is not allowed")
        if isinstance(node, ast.Name) and node.id not in ("params", "stages"):
            raise ValueError(f"condition {expr!r} names {node.id!r}; only params and stages exist")
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if node.value.id == "params" and node.attr not in params:
                raise ValueError(f"condition {expr!r} names no parameter {node.attr!r}")
            if node.value.id == "stages" and node.attr not in earlier:
                raise ValueError(f"condition {expr!r} names no earlier stage {node.attr!r}")
    return tree


def stages_named(expr: str) -> set[str]:
    """The stage ids a checked condition reads (`stages.ID...`)."""
    return {node.attr for node in ast.walk(ast.parse(expr, mode="eval"))
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "stages"}


def evaluate_condition(expr: str, scope: dict[str, Any]) -> Any:
    """Evaluate a checked `when` expression over {"params": {...}, "stages": {...}}."""
    tree = ast.parse(expr, mode="eval")

    def ev(node: ast.AST) -> Any:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, (ast.List, ast.Tuple)):
            return [ev(e) for e in node.elts]
        if isinstance(node, ast.Name):
            return scope[node.id]
        if isinstance(node, ast.Attribute):
            base = ev(node.value)
            return base.get(node.attr) if isinstance(base, dict) else None
        if isinstance(node, ast.UnaryOp):
            return not ev(node.operand)
        if isinstance(node, ast.BoolOp):
            vals = (ev(v) for v in node.values)
            return all(vals) if isinstance(node.op, ast.And) else any(vals)
        if isinstance(node, ast.Compare):
            left = ev(node.left)
            for op, comp in zip(node.ops, node.comparators, strict=False):
                right = ev(comp)
                ok = {ast.Eq: lambda a, b: a == b, ast.NotEq: lambda a, b: a != b,
                      ast.In: lambda a, b: a in (b or []), ast.NotIn: lambda a, b: a not in (b or [])
                      }[type(op)](left, right)
                if not ok:
                    return False
                left = right
            return True
        raise ValueError(f"unsupported expression node {type(node).__name__}")  # pragma: no cover

    return ev(tree)
