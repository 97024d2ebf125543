"""A stage kind that waits until a test opens its gate: runs that stay under way for as long as
a test needs (concurrency limits, live progress), without sleeping."""

from __future__ import annotations

import threading

from runner.registry import KINDS, KindSpec
from runner.results import Outcome

GATES: dict[str, threading.Event] = {}
SPEC = KindSpec("test.gate", __name__, "wait", None)


def wait(ctx, inputs):
    gate = GATES.setdefault(inputs["gate"], threading.Event())
    ctx.event("gate.waiting", gate=inputs["gate"])
    if not gate.wait(timeout=30):
        raise TimeoutError(f"gate {inputs['gate']} was never opened")
    return Outcome(changed=True, outputs={"passed": inputs["gate"]}, messages=[f"passed gate {inputs['gate']}"])


def install() -> None:
    KINDS[SPEC.name] = SPEC


def uninstall() -> None:
    KINDS.pop(SPEC.name, None)
    for g in GATES.values():
        g.set()
    GATES.clear()
