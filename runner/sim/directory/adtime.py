"""Active Directory's two ways of writing time, and the conversions both directory backends use.

- Points in time (pwdLastSet, lockoutTime, badPasswordTime, lastLogonTimestamp,
  msDS-UserPasswordExpiryTimeComputed) are FILETIMEs: 100-nanosecond ticks since 1601-01-01
  UTC. 0 means "never happened"; 0x7FFFFFFFFFFFFFFF means "never" (no expiry).
- Durations of the domain policy (maxPwdAge, minPwdAge, lockoutDuration,
  lockOutObservationWindow) are NEGATIVE tick counts; 0x8000000000000000 (-2**63) means
  "never"/"forever".

Source: Microsoft Learn, "Pwd-Last-Set attribute", "Lockout-Duration attribute" and MS-ADTS
3.1.1.4.4 (the computed msDS-UserPasswordExpiryTimeComputed)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

TICKS_PER_SECOND = 10_000_000
EPOCH = datetime(1601, 1, 1, tzinfo=timezone.utc)
NEVER = 0x7FFFFFFFFFFFFFFF        # a point in time that never comes
FOREVER = -(2 ** 63)              # a policy duration without end


def to_filetime(moment: datetime) -> int:
    """A timezone-aware datetime as FILETIME ticks."""
    delta = moment - EPOCH
    return (delta.days * 86_400 + delta.seconds) * TICKS_PER_SECOND + delta.microseconds * 10


def from_filetime(ticks: int | None) -> datetime | None:
    """FILETIME ticks as a UTC datetime; None for 0 ("never happened") and NEVER, which is how
    the ActiveDirectory module shows them (an empty PasswordLastSet, AccountLockoutTime ...)."""
    if not ticks or ticks >= NEVER or ticks < 0:
        return None
    return EPOCH + timedelta(microseconds=ticks // 10)


def duration_to_ticks(span: timedelta | None) -> int:
    """A policy duration as the negative tick count the domain object stores (None: forever)."""
    if span is None:
        return FOREVER
    return -int(span.total_seconds() * TICKS_PER_SECOND)


def ticks_to_duration(ticks: int) -> timedelta:
    """The domain object's negative tick count as a positive timedelta; "forever" and 0 both
    read as 00:00:00, as Get-ADDefaultDomainPasswordPolicy shows them."""
    if ticks == FOREVER or ticks == 0:
        return timedelta(0)
    return timedelta(microseconds=abs(ticks) // 10)
