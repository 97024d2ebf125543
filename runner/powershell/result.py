"""The template result contract, in one place: what every PowerShell template emits, how
the session checks it, and what a stage reports for it.

A template emits exactly one hashtable of primitives (strings, numbers, booleans, lists,
hashtables) and nothing else:

    changed   bool, required: changed (apply) or would change (plan)
    before    the state read before acting        after   the state after (or as planned)
    data      the stage's outputs (a hashtable)   messages  lines for the report
    status    ok | changed | action-required | failed | refused   (optional; overrides `changed`)
    action    for action-required: what a person must do (url, steps, ...)
    reason    why it failed, was refused or needs a person
    refusals  changes the platform refuses for good: a hashtable of item name ->
              @{ wanted = <the value asked for>; reason = '...'; since = 'YYYY-MM-DD' (optional) }

Two different refusals, kept apart on purpose:
- `status = 'refused'` is the host's own policy check declining the request before any
  change (an account outside the allowed OUs, a protected account: JEA's lesson, the host
  decides): the stage fails with exit code 2, like any input psrunner itself refuses, and
  `reason` says why.
- `refusals` is the platform answering a change it will never make again (a setting it no
  longer allows): asking again cannot help, so it is no failure, no change and no drift
  (runner.results.Refusal). The rest of the result stands as it is: `after` holds what the
  platform kept, `changed` says whether anything else changed.

`check_result` holds the session to it (anything else fails the invocation with a message
that says what was wrong); `decide_failure` decides whether an invocation failed, which is
not pypsrp's `had_errors` (true only for terminating errors): a FAILED or stopped pipeline,
any error record, a broken contract, or `status = 'failed'`; `outcome_from` maps an
invocation to a stage's Outcome. The simulator's twins build their results with
`template_result`, so a twin cannot emit what a template could not."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..results import Outcome, Refusal, Status
from ..secrets import redact
from .failures import ErrorRecordInfo
from .serialize import ComplexObject, from_psrp

RESULT_KEYS = frozenset({"changed", "before", "after", "data", "messages", "status", "action", "reason",
                         "refusals"})
RESULT_STATUSES = frozenset({"ok", "changed", "action-required", "failed", "refused"})


def template_result(*, changed: bool, before: Any = None, after: Any = None, data: Any = None,
                    messages: list[str] | tuple[str, ...] = (), status: str | None = None,
                    action: dict[str, Any] | None = None, reason: str | None = None,
                    refusals: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """The result hashtable a template emits, as a dict (for the simulator's twins)."""
    if not isinstance(changed, bool):
        raise TypeError(f"changed must be a bool, not {changed!r}")
    if status is not None and status not in RESULT_STATUSES:
        raise ValueError(f"status {status!r} is not one of {', '.join(sorted(RESULT_STATUSES))}")
    problem = _refusals_problem(refusals)
    if problem:
        raise ValueError(problem)
    result: dict[str, Any] = {"changed": changed, "before": before, "after": after, "data": data,
                              "messages": list(messages)}
    for key, value in (("status", status), ("action", action), ("reason", reason), ("refusals", refusals)):
        if value is not None:
            result[key] = value
    return result


def _refusals_problem(refusals: Any) -> str | None:
    """What is wrong with a result's `refusals`, or None."""
    if refusals is None:
        return None
    if not isinstance(refusals, dict):
        return "the result 'refusals' must be a hashtable of item name -> @{ wanted; reason; since }"
    for name, r in refusals.items():
        if not isinstance(r, dict) or "wanted" not in r or not isinstance(r.get("reason"), str) \
                or not isinstance(r.get("since", ""), (str, type(None))):
            return (f"the result 'refusals' entry {name!r} must be a hashtable with 'wanted', a 'reason' "
                    f"string and an optional 'since' date")
    return None


@dataclass
class Invocation:
    """What one pipeline did: its state, the one result object and every stream."""
    label: str
    state: str = "NotStarted"            # Completed | Failed | Stopped
    output: list[Any] = field(default_factory=list)
    result: dict[str, Any] | None = None
    errors: list[ErrorRecordInfo] = field(default_factory=list)
    streams: dict[str, list] = field(default_factory=dict)
    failed: bool = False
    failure: str | None = None
    duration: float = 0.0
    wsman_requests: int = 0
    pool_opened: bool = False

    @property
    def status(self) -> str | None:
        return (self.result or {}).get("status")


def check_result(output: list[Any]) -> tuple[dict[str, Any] | None, str | None]:
    """The result contract: exactly one hashtable of primitives with the known keys."""
    items = [from_psrp(o) for o in output]
    if not items:
        return None, ("the script emitted no result object "
                      "(expected one hashtable: changed, before, after, data, messages)")
    if len(items) > 1:
        kinds = ", ".join(_describe(i) for i in items[:5])
        return None, (f"the script emitted {len(items)} objects ({kinds}); exactly one result hashtable is expected "
                      f"(send other output to Out-Null)")
    result = items[0]
    if not isinstance(result, dict):
        return None, f"the script emitted {_describe(result)} instead of a result hashtable"
    bad = _first_complex(result, "result")
    if bad:
        return None, f"the result holds {bad}; only strings, numbers, booleans, lists and hashtables are allowed"
    if "changed" not in result or not isinstance(result["changed"], bool):
        return None, "the result hashtable has no boolean 'changed'"
    unknown = sorted(set(result) - RESULT_KEYS)
    if unknown:
        return None, f"the result hashtable has unknown keys: {', '.join(unknown)}"
    status = result.get("status")
    if status is not None and status not in RESULT_STATUSES:
        return None, f"the result status {status!r} is not one of {', '.join(sorted(RESULT_STATUSES))}"
    problem = _refusals_problem(result.get("refusals"))
    if problem:
        return None, problem
    msgs = result.get("messages")
    if msgs is None:
        result["messages"] = []
    elif isinstance(msgs, str):
        result["messages"] = [msgs]
    elif not isinstance(msgs, list):
        return None, "the result 'messages' must be a list of strings"
    result["messages"] = [redact(str(m)) for m in result["messages"]]
    return result, None


def _describe(v: Any) -> str:
    if isinstance(v, ComplexObject):
        return f"a {v.type_name} object"
    if isinstance(v, dict):
        return "a hashtable"
    if isinstance(v, list):
        return "a list"
    return f"a {type(v).__name__} value {str(v)[:40]!r}"


def _first_complex(v: Any, path: str) -> str | None:
    if isinstance(v, ComplexObject):
        return f"a {v.type_name} object at {path}"
    if isinstance(v, dict):
        for k, x in v.items():
            found = _first_complex(x, f"{path}.{k}")
            if found:
                return found
    if isinstance(v, list):
        for i, x in enumerate(v):
            found = _first_complex(x, f"{path}[{i}]")
            if found:
                return found
    return None


def decide_failure(inv: Invocation, problem: str | None) -> None:
    """Set `inv.failed` and `inv.failure` from the pipeline state, the error records and the
    result (`problem`: what check_result found wrong with it)."""
    result = inv.result
    if inv.state == "Failed":
        inv.failed = True
        inv.failure = ("the script stopped with a terminating error: " + str(inv.errors[-1])
                       if inv.errors else "the pipeline failed")
    elif inv.state == "Stopped":
        inv.failed, inv.failure = True, "the pipeline was stopped before it finished"
    elif inv.errors:
        inv.failed = True
        inv.failure = (f"the script wrote {len(inv.errors)} error record(s): "
                       + "; ".join(str(e) for e in inv.errors[:3]))
    elif problem:
        inv.failed, inv.failure = True, problem
    elif result is not None and result.get("status") == "failed":
        inv.failed = True
        inv.failure = str(result.get("reason") or "the script reported status 'failed'")
    if inv.failure:
        inv.failure = redact(inv.failure)


def outcome_from(inv: Invocation, *, label: str) -> Outcome:
    """What a stage reports for an invocation: the result's changed, before/after, data as
    outputs, messages, refusals and status (action-required with its action); a failed
    invocation is a failed stage with the error records."""
    result = inv.result or {}
    data = result.get("data")
    outputs = data if isinstance(data, dict) else ({} if data is None else {"data": data})
    out = Outcome(
        changed=bool(result.get("changed", False)),
        outputs=outputs,
        before=result.get("before"),
        after=result.get("after"),
        messages=list(result.get("messages") or []),
        warnings=list(inv.streams.get("warning", [])),
        streams=dict(inv.streams),
    )
    out.refusals = [Refusal(item=str(name), wanted=r.get("wanted"), reason=redact(str(r.get("reason"))),
                            since=r.get("since") or None)
                    for name, r in sorted((result.get("refusals") or {}).items())]
    if result.get("status") == "refused" and not inv.failed:
        out.status = Status.FAILED
        out.error = {"type": "Refused", "message": redact(str(result.get("reason") or f"{label} refused")),
                     "exit_code": 2}
    elif inv.failed:
        out.status = Status.FAILED
        out.error = {"type": "PowerShellError", "message": f"{label}: {inv.failure}", "state": inv.state,
                     "records": [e.to_dict() for e in inv.errors]}
        if result.get("reason"):
            out.error["reason"] = result["reason"]
    elif result.get("status") == "action-required":
        out.status = Status.ACTION_REQUIRED
        action = result.get("action")
        out.action = dict(action) if isinstance(action, dict) else {}
        if result.get("reason"):
            out.action.setdefault("reason", result["reason"])
    elif result.get("status") == "ok":
        out.status = Status.OK
    if not out.messages and not out.changed and out.status in (None, Status.OK):
        out.messages.append("nothing to change")
    elif result.get("status") == "changed":
        out.status = Status.CHANGED
    return out
