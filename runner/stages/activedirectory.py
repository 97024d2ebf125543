"""The `activedirectory.reset_password` stage kind: a one-time password the domain accepts,
set on the host by its template, handed over once and kept nowhere.

Why a kind of its own and not a template stage: the password is made here, between two runs
of the same template. The first (Apply = $false) applies the guardrails and reads what a
password must meet (the account's fine-grained policy, else the domain's; the names it must
not contain); the second sets it. So it is generated with `secrets` against the policy the
DC states, travels only as a SecureString parameter, and is refused by nothing but a DC
whose rules were not stated (then the AD module's message, exit 1, nothing changed:
Set-ADAccountPassword is the first write).

Hand-over: to `password_file` (0600) when given; else to the person at the terminal, once,
in the result (a Secret: masked in every record, event, report and log). Without either the
stage refuses before it contacts the host, unless the password was given: whoever gave it
knows it, and it is not handed back."""

from __future__ import annotations

import secrets
from typing import Any

from ..errors import InputError, stage_input
from ..powershell.result import outcome_from
from ..results import Outcome, Status
from ..secrets import Secret, register, write_private
from .base import StageContext
from .powershell import invoke, template_parameters

# No look-alikes (0/O, 1/l/I) and no quotes: it is read out on the phone and typed by hand.
UPPER = "ABCDEFGHJKLMNPQRSTUVWXYZ"
LOWER = "abcdefghijkmnopqrstuvwxyz"
DIGITS = "23456789"
SYMBOLS = "!#%+-=?@"
DEFAULT_LENGTH = 16


def one_time_password(min_length: int = 0, avoid: list[str] | tuple[str, ...] = ()) -> str:
    """A random password from `secrets` of max(16, min_length) characters holding all four
    character categories (complexity asks for three of five) and none of `avoid` (the account
    name, display-name tokens of three or more characters), case-insensitively."""
    length = max(DEFAULT_LENGTH, int(min_length or 0))
    pool = UPPER + LOWER + DIGITS + SYMBOLS
    rng = secrets.SystemRandom()
    words = [w.lower() for w in avoid if isinstance(w, str) and len(w) >= 3]
    while True:
        chars = [secrets.choice(g) for g in (UPPER, LOWER, DIGITS, SYMBOLS)]
        chars += [secrets.choice(pool) for _ in range(length - len(chars))]
        rng.shuffle(chars)
        candidate = "".join(chars)
        if not any(w in candidate.lower() for w in words):
            return candidate


def reset_password(ctx: StageContext, inputs: dict[str, Any]) -> Outcome:
    """inputs: Identity, AllowedOUs, ChangePasswordAtLogon, Unlock (the template's parameters),
    password (a Secret to set instead of a generated one), password_file (where to hand the
    password over; empty: the terminal; a given password is not handed back), template (from
    the stage)."""
    from ..powershell.templates import render_template

    inputs = dict(inputs)
    template_id = inputs.pop("template")
    inputs.pop("vars", None)
    given = inputs.pop("password", None)
    password_file = str(inputs.pop("password_file", "") or "")
    if not password_file and not ctx.interactive and not given:
        raise InputError("the new password has nowhere to go: no terminal to show it on and no file",
                         input="password_file",
                         hint=f"give {stage_input('password_file', 'PATH')} (written 0600), or run on a terminal")
    rendered = render_template(template_id, {})
    ctx.record_script(rendered.text)
    params, _ = template_parameters(template_id, inputs)
    first = outcome_from(invoke(ctx, rendered.text, {**params, "Apply": False}, label=template_id),
                         label=template_id)
    if first.status == Status.FAILED or not ctx.apply:
        return first
    rules = first.outputs.get("policy") or {}
    if isinstance(given, Secret) and given:
        new = given
    else:
        new = Secret(one_time_password(rules.get("min_length", 0), rules.get("avoid") or ()), "new_password")
    register(new.reveal())
    params = {**params, "NewPassword": new, "Apply": True}
    out = outcome_from(invoke(ctx, rendered.text, params, secure={"NewPassword"}, label=template_id),
                       label=template_id)
    if out.status == Status.FAILED:
        return out
    if password_file:
        path = write_private(password_file, new.reveal() + "\n")
        out.outputs["password_file"] = str(path)
        out.messages.append(f"The new password is in {path} (readable by you alone); hand it over, then delete it.")
    elif given:
        # whoever gave it knows it: it is not handed back (a portal would show it in a page)
        out.messages.append("The password you gave is set; it is not shown or kept anywhere.")
    else:
        out.outputs["one_time_password"] = new
        out.messages.append("The new password is shown below, once; it is not kept anywhere.")
    return out


__all__ = ["one_time_password", "reset_password"]
