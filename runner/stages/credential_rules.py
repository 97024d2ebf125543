"""What the tenant and a person decide about a new credential, apart from making it
(entra_credentials.py): how long it may live under the tenant's app management policies
(runner/graph/app_policies.py), what happens when a policy forbids it or Entra refuses it, and
the hand-over of a renewed credential, which only a person can do: the backup product keeps
signing in with the old one until someone enters the new one there."""

from __future__ import annotations

import datetime as _dt
import re
from typing import TYPE_CHECKING, Any

from ..errors import GraphError, InputError, stage_input
from ..results import Outcome, Status

if TYPE_CHECKING:
    from ..graph.app_policies import Limit, Limits


def days_of(d: _dt.timedelta) -> int:
    return round(d / _dt.timedelta(days=1))


NOUNS = {"secret": "client secret", "cert": "certificate"}


def within(limits: Limits, limit: Limit | None, days: int, min_days: int, prefix: str
            ) -> tuple[_dt.timedelta, list[str]]:
    """How long a new credential may live: `days`, or less where `limit` allows less. The
    messages say which policy shortened it, or that the policies could not be read. A policy
    that leaves no more than the renewal horizon (`<prefix>_min_days`) is an error: every run
    would renew."""
    noun = NOUNS[prefix]
    wanted = _dt.timedelta(days=days)
    if limits.unread:
        return wanted, [f"app management policies not read ({limits.unread}): a tenant policy may still "
                        f"shorten or refuse the {noun}"]
    valid = limits.shorter(limit, wanted)
    if valid >= wanted:
        return wanted, []
    if valid <= _dt.timedelta(days=min_days):
        horizon = stage_input(f"{prefix}_min_days")
        raise InputError(f"{limit} allows a new {noun} {days_of(valid)} days at most, no more than {horizon} "
                         f"({min_days}): it would be due for renewal at once", input=f"{prefix}_min_days",
                         hint=f"give {stage_input(f'{prefix}_min_days', days_of(valid) - 1)} or less")
    return valid, [f"valid {days_of(valid)} days, not {days}: the longest {limit} allows"]


def no_secrets(limit: Limit) -> Outcome:
    """A policy forbids client secrets on the application: a person decides what instead."""
    says = f"{limit} does not allow client secrets on this application"
    return Outcome(changed=False, status=Status.ACTION_REQUIRED, messages=[says], action={
        "summary": says + ".",
        "steps": ["Have the backup product sign in with the certificate credential instead of a client secret "
                  "(and stop asking for a secret), or",
                  "have an administrator exempt this application from the policy, then run again."]})


def policy_refused(e: GraphError, lifetime_input: str = "secret_lifetime_days") -> Outcome:
    """Entra refused a credential for a policy psrunner could not read beforehand."""
    from ..graph.app_policies import Limit, refusal

    code = refusal(e)
    if code == "CredentialTypeNotAllowedAsPerAppPolicy":
        return no_secrets(Limit(policy_named_in(e.message), "passwordAddition"))
    if code == "CredentialInvalidLifetimeAsPerAppPolicy":
        raise InputError(f"Entra refused the credential: {policy_named_in(e.message)} allows a shorter lifetime",
                         input=lifetime_input,
                         hint=f"give a smaller {stage_input(lifetime_input)}, or let psrunner read the policy "
                              "(Policy.Read.All for the sign-in) and shorten the lifetime itself") from None
    raise e


def given_within(limits: Limits, cert: Any) -> None:
    """A certificate given by the operator cannot be shortened: one that lives longer than
    the tenant allows is refused before anything is sent."""
    from ..graph.app_policies import parse_duration

    limit = limits.certificate_lifetime
    longest = parse_duration(limit.max_lifetime) if limit is not None else None
    if longest is not None and cert.not_after - cert.not_before > longest:
        raise InputError(f"certificate {cert.thumbprint} is valid {days_of(cert.not_after - cert.not_before)} days, "
                         f"longer than {limit} allows", input="certificate_path",
                         hint="give a certificate valid for a shorter time, or none: psrunner then generates one "
                              "the policy allows")


def policy_named_in(message: str) -> str:
    m = re.search(r"policy '([^']+)'", message or "")
    return f"app management policy ({m.group(1)})" if m else "an app management policy"


def last_end(creds: list[dict[str, Any]]) -> str:
    return max(str(c.get("endDateTime") or "") for c in creds)


def handed_over(out: Outcome, what: str, where: str | None, old: list[dict[str, Any]]) -> Outcome:
    """While an older credential of ours is still valid, the backup product may still sign in
    with it: entering the new one there is a person's chore, until the old one is removed or
    expires (then the stage is ok again by itself)."""
    if not old:
        return out
    ids = ", ".join(str(c.get("keyId")) for c in old)
    out.status = Status.ACTION_REQUIRED
    out.action = {
        "summary": f"A new {what} was made because the old one expires soon; the backup product still holds the old "
                   "one.",
        "steps": [f"Enter the new {what} from {where or 'the file of the run that made it'} in the backup product.",
                  f"The old {what} ({ids}) stays valid until {last_end(old)}; once the product uses the new one, "
                  "remove the old one from the application (Entra admin center: App registrations, Certificates & "
                  "secrets), or let it expire."]}
    return out
