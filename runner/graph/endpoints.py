"""Where psrunner may send a Graph access token and a client credential: the cloud's own
sign-in and Graph hosts, over HTTPS, and nowhere else.

`authority_host` and `graph_endpoint` exist so that tests and the simulators can stand in
for Microsoft; a setting anyone can edit (a params file) that points them elsewhere would
hand the admin's bearer token, or the operator's client secret, to whoever listens there. So
another host is refused unless the environment says this is a test or simulator run
(`PSRUNNER_ALLOW_TEST_ENDPOINTS=1`), and then every run warns; plain `http://` is refused
always, since the token would cross the network in clear text."""

from __future__ import annotations

import os
from urllib.parse import urlsplit

from ..errors import InputError, setting
from .auth import Cloud

ALLOW_ENV = "PSRUNNER_ALLOW_TEST_ENDPOINTS"


def test_endpoints_allowed(environ: dict[str, str] | None = None) -> bool:
    return (os.environ if environ is None else environ).get(ALLOW_ENV, "").strip().lower() in ("1", "true", "yes")


def check_endpoints(cloud: Cloud, settings: dict[str, object], *, allow_test: bool | None = None) -> list[str]:
    """InputError for an endpoint override psrunner will not send a token to; the warnings
    to give on every run for the ones a test opt-in lets through."""
    allow = test_endpoints_allowed() if allow_test is None else allow_test
    warnings: list[str] = []
    for key, official, what in (("authority_host", cloud.authority_host, "sign-in"),
                                ("graph_endpoint", cloud.graph_endpoint, "Graph")):
        value = settings.get(key)
        if not value:
            continue
        text = str(value).strip()
        url = urlsplit(text)
        if url.scheme.lower() != "https" or not url.hostname or url.username or url.password \
                or url.query or url.fragment:
            raise InputError(f"{key}: {text[:200]!r} is not an https:// address of a host; psrunner sends the "
                             "admin's access token there, which must never cross the network in clear text",
                             input=key, hint=f"remove {setting(key)} (the cloud's own {what} service is then "
                                             "used), or give https://HOST[:PORT]")
        home = urlsplit(official)
        same = url.hostname.lower() == home.hostname and url.port in (None, 443) \
            and url.path.rstrip("/") in ("", "/v1.0")
        if same:
            continue
        if not allow:
            raise InputError(f"{key}: {url.hostname} is not the {cloud.name} cloud's {what} service "
                             f"({home.hostname}); psrunner sends the admin's access token and the operator's "
                             "credential only there", input=key,
                             hint=f"remove {setting(key)} (for another cloud set {setting('cloud')}); to point "
                                  f"psrunner at a simulator or test service, set {ALLOW_ENV}=1 in its environment")
        warnings.append(f"{key} is {text} instead of {official}: the access token goes there because "
                        f"{ALLOW_ENV} is set; use this for simulators and tests only")
    return warnings
