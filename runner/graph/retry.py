"""The one retry loop for Microsoft Graph and the sign-in service: every Graph request, every
round of a `$batch`, every token request goes through `RetryLoop.run`, so waiting, counting
attempts, honouring Retry-After, the replication-lag budget, the stage deadline and Ctrl-C
are decided in one place.

An attempt either returns its answer or raises `Again`, saying why it may be tried again:

- `TRANSIENT`: a dropped connection or a service error: exponential backoff with jitter.
- `THROTTLE`: 429 / 503 / 504: the longest Retry-After among the answers (capped), else
  backoff. Graph throttles per app and per tenant; clients that retry in step make it worse.
- `UNREACHABLE`: no connection could be made at all (a name that does not resolve, a
  refused or unanswered connection): a few tries (`RetryPolicy.unreachable_attempts`), since
  a service that cannot be reached seldom comes back within seconds, and a person waiting
  should hear so soon rather than after minutes of silence.
- `LAG`: an object created moments ago has not replicated yet (no SLA is documented;
  minutes are seen in practice): its own, longer backoff within a total budget per call
  (`RetryPolicy.lag_budget`), not counted against `max_attempts`.

Anything else an attempt raises ends the loop. When the attempts or the budget run out, the
last error is raised with a hint that re-running is safe; a wait that would outlive the
stage deadline raises it at once; an interrupt (Ctrl-C) raises Interrupted. A loop given
`tell` says each wait to the person watching (what failed, when the next try is)."""

from __future__ import annotations

import email.utils
import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from ..errors import Interrupted, RunnerError, StageTimeout

T = TypeVar("T")
TRANSIENT, THROTTLE, LAG, UNREACHABLE = "transient", "throttle", "lag", "unreachable"


@dataclass
class RetryPolicy:
    """How long to keep trying. Defaults suit a real tenant; tests shrink them."""
    max_attempts: int = 8            # per call, for throttling and transient errors
    retry_after_cap: float = 30.0    # never sleep longer than this for one Retry-After
    backoff_base: float = 1.0        # first backoff step (seconds) when no Retry-After
    backoff_cap: float = 30.0
    lag_budget: float = 180.0        # total seconds to wait out replication lag per call
    lag_base: float = 2.0
    lag_cap: float = 30.0
    unreachable_attempts: int = 3    # per call, when no connection can be made at all
    unreachable_base: float = 2.0    # first wait (seconds) before trying to connect again

    def backoff(self, attempt: int, rng: random.Random | None = None,
                base: float | None = None, cap: float | None = None) -> float:
        """Exponential backoff with "equal jitter": a delay in [d/2, d] where
        d = min(cap, base * 2**attempt). Half is guaranteed (progress), half is random
        (clients spread out)."""
        base = self.backoff_base if base is None else base
        cap = self.backoff_cap if cap is None else cap
        d = min(cap, base * (2 ** max(0, attempt)))
        r = (rng or random).random()
        return d / 2 + r * d / 2

    def throttle_delay(self, attempt: int, retry_after: str | None,
                       rng: random.Random | None = None, now: float | None = None) -> float:
        ra = parse_retry_after(retry_after, now=now)
        if ra is None:
            return self.backoff(attempt, rng)
        return min(ra, self.retry_after_cap)

    def lag_delay(self, attempt: int, rng: random.Random | None = None) -> float:
        return self.backoff(attempt, rng, base=self.lag_base, cap=self.lag_cap)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a Retry-After header: delta-seconds or an HTTP-date. None when absent or
    unreadable (the caller then backs off on its own); never negative."""
    if value is None:
        return None
    value = str(value).strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    now = time.time() if now is None else now
    return max(0.0, when.timestamp() - now)


class Again(Exception):
    """Raised by an attempt that may be tried again: `error` is what the caller gets when
    it may not, `why` what the log says while waiting."""

    def __init__(self, error: RunnerError, why: str, *, kind: str = TRANSIENT,
                 retry_after: Sequence[str | None] = ()) -> None:
        super().__init__(why)
        self.error, self.why, self.kind = error, why, kind
        self.retry_after = list(retry_after)     # the Retry-After headers of the answers


class RetryLoop:
    """Runs one call's attempts until one answers or the policy says stop.

    `wait(seconds)` returns True when interrupted (tests replace it to record the delays);
    `remaining()` gives the seconds left before the stage deadline (None: no deadline)."""

    def __init__(self, policy: RetryPolicy, *, wait: Callable[[float], bool], cancel: threading.Event,
                 remaining: Callable[[], float | None] = lambda: None, rng: random.Random | None = None,
                 log: logging.Logger | None = None, name: str = "graph",
                 tell: Callable[[str], None] | None = None) -> None:
        self.policy, self.wait, self.cancel, self.remaining = policy, wait, cancel, remaining
        self.rng = rng or random.Random()
        self.log = log or logging.getLogger("psrunner.graph")
        self.name = name
        self.tell = tell

    def run(self, attempt: Callable[[], T]) -> T:
        tries = lag_tries = unreachable = 0
        lag_waited = 0.0
        started = time.monotonic()
        while True:
            try:
                return attempt()
            except Again as again:
                err = again.error
                if again.kind == LAG:
                    delay = self.policy.lag_delay(lag_tries, self.rng)
                    lag_tries += 1
                    if lag_waited + delay > self.policy.lag_budget:
                        err.hint = (f"what was just created had still not replicated after {lag_waited:.0f} s "
                                    f"(limit {self.policy.lag_budget:.0f} s): re-run later (re-running is safe)")
                        raise err from None
                    lag_waited += delay
                    # items throttled in the same round wait for their Retry-After as well
                    delay = max([delay] + [self.policy.throttle_delay(tries, ra, self.rng)
                                           for ra in again.retry_after])
                    next_try = ""
                elif again.kind == UNREACHABLE:
                    unreachable += 1
                    if unreachable >= self.policy.unreachable_attempts:
                        err.message = f"{err.message} ({unreachable} tries in {time.monotonic() - started:.0f} s)"
                        raise err from None
                    delay = self.policy.backoff(unreachable - 1, self.rng, base=self.policy.unreachable_base)
                    next_try = f" (try {unreachable + 1} of {self.policy.unreachable_attempts})"
                else:
                    tries += 1
                    if tries >= self.policy.max_attempts:
                        raise err from None
                    if again.kind == THROTTLE and again.retry_after:
                        delay = max(self.policy.throttle_delay(tries - 1, ra, self.rng) for ra in again.retry_after)
                    else:
                        delay = self.policy.backoff(tries - 1, self.rng)
                    next_try = f" (try {tries + 1} of {self.policy.max_attempts})"
                if self.tell is not None:
                    self.tell(f"{again.why}: trying again in {delay:.1f} s{next_try}")
                self.sleep(delay, again.why, err)

    def sleep(self, seconds: float, why: str, last_error: Exception | None) -> None:
        left = self.remaining()
        if left is not None and seconds > left:
            if last_error is not None:
                raise last_error
            raise StageTimeout(f"stage deadline reached while waiting ({why})")
        if seconds > 0:
            self.log.info("%s: waiting %.1f s (%s)", self.name, seconds, why)
        if self.wait(max(0.0, seconds)) or self.cancel.is_set():
            raise Interrupted(f"interrupted while waiting to retry ({self.name})")
