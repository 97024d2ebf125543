"""Fix lines of errors that only a connection can find, restated in the runbook's parameters:
what the person typed (`-p host_ca_bundle=`), never the target's own setting (`ca_bundle`)
or an option psrunner does not have (`--ca-bundle`). Real clients against the simulators."""

from __future__ import annotations

import json

from tests.terminal import psrunner


def test_a_host_certificate_from_another_ca_names_host_ca_bundle(lab):
    world, tenant, host, args, env, _ = lab
    # the tenant's CA did not sign the host's WinRM certificate
    r = psrunner("plan", "m365-backup-access", *args, "-p", f"host_ca_bundle={tenant.ca_bundle}", env=env)
    assert r.returncode == 1, r.stderr
    (line,) = [ln for ln in r.stdout.splitlines() if "fix:" in ln and "WinRM HTTPS certificate" in ln]
    assert line.split("fix: ", 1)[1] == (
        "give -p host_ca_bundle=...: the PEM file of the CA that signed the host's WinRM HTTPS certificate; "
        "check that the certificate names this host; do not turn validation off")


def test_device_code_without_a_terminal_names_the_parameters_of_unattended_sign_in(lab):
    world, tenant, host, args, env, _ = lab
    r = psrunner("plan", "m365-backup-access", *args, "-p", "graph_auth=device-code", "-o", "json", env=env)
    assert r.returncode == 2, r.stderr
    preflight = json.loads(r.stdout)["stages"][0]
    assert preflight["id"] == "preflight" and preflight["status"] == "failed"
    assert preflight["error"]["hint"] == (
        "run once at a terminal to fill the token cache; for unattended runs sign in with "
        "-p graph_auth=certificate, -p graph_client_id=... and -p graph_certificate=...")
