"""What PnP.PowerShell needs of a host (runner/powershell/modules.py), and the templates that
reach PowerShell 7 from Windows PowerShell keeping user data and secrets off its command line."""

from __future__ import annotations

import re

import pytest

from runner.powershell.modules import SPO_SIGN_IN_MINIMUM, pnp_needs_powershell, pnp_verdict, spo_module_minimum
from runner.powershell.templates import render_template


@pytest.mark.parametrize("ps,pnp,verdict", [
    ("7.4.6", "3.1.0", None),
    ("7.2.1", "2.1.0", None),
    ("7.5.0", "2.12.0", None),
    (None, None, "this host has no PowerShell 7 (pwsh), and PnP.PowerShell 2.1.0 or later (Get-PnPAzureACSPrincipal) "
                 "under PowerShell 7.2.0 or later runs nowhere else"),
    ("7.4.6", None, "PnP.PowerShell 2.1.0 or later (Get-PnPAzureACSPrincipal) under PowerShell 7.2.0 or later is "
                    "needed; PowerShell 7.4.6 on this host has no PnP.PowerShell"),
    ("7.4.6", "1.12.0", "PnP.PowerShell 2.1.0 or later (Get-PnPAzureACSPrincipal) under PowerShell 7.2.0 or later "
                        "is needed; PowerShell 7.4.6 on this host has PnP.PowerShell 1.12.0"),
    ("7.4.5", "3.0.0", "PnP.PowerShell 3.0.0 needs PowerShell 7.4.6 or later; this host has 7.4.5"),
])
def test_pnp_verdict(ps, pnp, verdict):
    assert pnp_verdict(ps, pnp) == verdict


def test_pnp_needs_powershell_per_release():
    assert pnp_needs_powershell((1, 12, 0)) is None            # 1.x also ran under Windows PowerShell 5.1
    assert pnp_needs_powershell((2, 1, 0)) == (7, 2, 0)
    assert pnp_needs_powershell((3, 1, 0)) == (7, 4, 6)


def test_host_facts_asks_pwsh_with_constants_only():
    text = render_template("windows/host_facts").text
    probe = text[text.index("$probe = @'"):text.index("'@", text.index("$probe = @'"))]
    assert "$Modules" not in probe and "'PnP.PowerShell'" in probe
    (call,) = [line for line in text.splitlines() if "-EncodedCommand" in line]
    assert re.search(r"& \$pwsh\.Source -NoProfile -NonInteractive -EncodedCommand \$encoded\b", call)


def test_appinv_verify_sends_the_request_to_pwsh_on_stdin_only():
    """The password travels DPAPI-protected over pwsh's standard input; the command line holds
    the template's own script and nothing a caller gave."""
    text = render_template("sharepoint/appinv_verify").text
    (call,) = [line for line in text.splitlines() if "-EncodedCommand" in line]
    assert call.strip() == "$answerText = $request | & $pwsh.Source -NoProfile -NonInteractive -EncodedCommand $encoded"
    (child,) = [line for line in text.splitlines() if line.strip().startswith("$child = ")]
    assert set(re.findall(r"(?<!`)\$(\w+)", child)) == {"child", "Request", "readPrincipals"}
    assert "ConvertFrom-SecureString -SecureString $Password" in text


@pytest.mark.parametrize("sign_in,minimum,wanted", [
    ("credential", "", (16, 0, 25815, 0)),
    ("certificate", "", (16, 0, 26712, 12000)),
    ("certificate", "16.0.25815.0", (16, 0, 26712, 12000)),       # raised to what the sign-in needs
    ("credential", "16.0.27000.1", (16, 0, 27000, 1)),
    ("device", "", None),
    ("credential", "latest", None),
])
def test_spo_module_minimum(sign_in, minimum, wanted):
    assert spo_module_minimum(sign_in, minimum) == wanted


def test_the_module_template_applies_the_same_minimum_per_sign_in():
    """sharepoint/spo_module decides on the host what the module stage decides from host facts:
    the two must name the same releases."""
    text = render_template("sharepoint/spo_module").text
    (line,) = [ln for ln in text.splitlines() if ln.strip().startswith("$needed = ")]
    found = re.findall(r"'certificate'\) \{ '([0-9.]+)' \} else \{ '([0-9.]+)' \}", line)
    assert found == [tuple(".".join(map(str, SPO_SIGN_IN_MINIMUM[k])) for k in ("certificate", "credential"))]
