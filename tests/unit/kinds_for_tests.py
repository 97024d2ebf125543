"""Small stage kinds and a fake connector for engine tests (unit level: no network)."""

from __future__ import annotations

import threading
import time

from runner.errors import StageFailed
from runner.results import Outcome, Status

WORLD: dict = {}


def reset() -> None:
    WORLD.clear()
    WORLD.update(values={}, calls=[], fail=set(), interrupts=0, closed=0, slow_started=threading.Event())


def ensure_value(ctx, inputs):
    """Sets WORLD['values'][key] = value; ok when already equal."""
    WORLD["calls"].append(ctx.stage_id)
    if ctx.stage_id in WORLD["fail"]:
        raise StageFailed(f"{ctx.stage_id} was told to fail", hint="clear the failure")
    key, value = inputs["key"], inputs.get("value")
    current = WORLD["values"].get(key)
    out = {"key": key, "value": value, "seen": inputs.get("seen")}
    if current == value:
        out["stored"] = current
        return Outcome(changed=False, outputs=out, messages=[f"{key} is {value}"])
    if ctx.apply:
        WORLD["values"][key] = value
        out["stored"] = value        # known only once applied
    return Outcome(changed=True, outputs=out, before=current, after=value,
                   messages=[f"{key}: {current} -> {value}"])


def slow(ctx, inputs):
    conn = ctx.target()
    WORLD["slow_started"].set()
    t_end = time.monotonic() + float(inputs.get("seconds", 30))
    while time.monotonic() < t_end and not conn.stopped:
        time.sleep(0.02)
    return Outcome(changed=False, messages=["finished"])


def meet(ctx, inputs):
    """Waits (up to 5 s) until `inputs["parties"]` stages have reached it: only stages that
    run at the same time can all pass; `fail` fails after the meeting."""
    barrier = WORLD.setdefault("barrier", threading.Barrier(int(inputs.get("parties", 2)), timeout=5))
    barrier.wait()
    WORLD["calls"].append(ctx.stage_id)
    if inputs.get("fail"):
        raise StageFailed(f"{ctx.stage_id} failed after the meeting")
    time.sleep(float(inputs.get("linger", 0)))
    return Outcome(changed=True, outputs={"met": ctx.stage_id}, messages=[f"{ctx.stage_id} met"])


def crash(ctx, inputs):
    raise ValueError("crashed holding " + ctx.params["password"].reveal())


def needs_person(ctx, inputs):
    return Outcome(status=Status.ACTION_REQUIRED, action={"summary": "do it", "steps": ["one", "two"]})


class FakeConnector:
    def __init__(self, settings):
        self.settings = settings
        self.stopped = False

    def interrupt(self):
        self.stopped = True
        WORLD["interrupts"] += 1

    def close(self):
        WORLD["closed"] += 1

    def metrics(self):
        return {"fake_requests": 3}


def opener(target_type, settings, env):
    return FakeConnector(settings)
