# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# pyspnego's Kerberos extra compiles against libkrb5-dev: take it where krb5-config is present
EXTRAS := test$(shell command -v krb5-config >/dev/null 2>&1 && echo ,kerberos)
comma  := ,
STAMP  := $(VENV)/.installed-$(subst $(comma),-,$(EXTRAS))

.PHONY: demo test lint bench clean venv

venv: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[$(EXTRAS)]'
	@touch $(STAMP)

## demo: plan, run and re-run the m365-backup-access runbook against the embedded simulators
demo: $(STAMP)
	$(BIN)/psrunner demo

## test: the whole suite (live tests against a real tenant/host are opt-in: see README)
test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/python -m ruff check runner tests bench examples
	$(BIN)/python -m pytest -q tests/unit/test_templates.py tests/unit/test_ps_dialect.py

## bench: requests, round trips and timings against the simulators; writes bench/results.json
## and the tables of BENCHMARKS.md and README.md (BENCHMARKS.md says how it measures)
bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
