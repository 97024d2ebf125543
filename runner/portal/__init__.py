"""The helpdesk portal (`psrunner serve`): the catalog's runbooks in a browser, for people who
do not live in a terminal, with roles, four eyes and an audit trail.

    policy.py    who may run what, and within which bounds (the policy file)
    accounts.py  local accounts (scrypt password hashes) for sites without Entra ID
    oidc.py      sign-in with Entra ID: OpenID Connect code flow + PKCE through msal
    config.py    the portal's configuration file, and what the server holds per runbook
    forms.py     a runbook's parameters as a form, and a posted form back to checked values
    desk.py      requests: planned, confirmed, approved (four eyes), run by an executor
    audit.py     the append-only audit log (JSON lines, hash-chained)
    web.py       sessions, CSRF tokens, sign-in rate limits, security headers
    app.py       the pages and their routes (Starlette)
    server.py    `psrunner serve`: uvicorn, TLS, the one-time sign-in link
    demo.py      `psrunner serve --demo`: the portal on the simulators
    commands.py  `psrunner accounts`; tomlfile.py: reading the portal's TOML files

Nothing here is imported by `psrunner --help`, `list` or `show`: only `serve` loads it (and
with it Starlette, uvicorn and msal). docs/portal.md describes it for a site."""
