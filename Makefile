# Every target installs what it needs first (Debian packages, the .venv), so each works on a
# fresh machine.
PY := .venv/bin/python
ARGS ?=

.PHONY: run probe origin test test-fast lint bench bench-soak clean

run:  ## the monitor (embedded origin when nothing is configured); metrics on :9090
	@scripts/install-deps.sh run
	$(PY) -m streamer monitor $(ARGS)

probe:
	@scripts/install-deps.sh run
	$(PY) -m streamer probe $(ARGS)

origin:
	@scripts/install-deps.sh run
	$(PY) -m streamer origin $(ARGS)

test:  ## lint, types, unit and end-to-end tests against real servers
	@scripts/install-deps.sh test
	$(PY) -m ruff check src tests
	$(PY) -m ruff format --check src tests
	$(PY) -m mypy
	$(PY) -m pytest -q -p no:cacheprovider $(ARGS)

test-fast:
	@scripts/install-deps.sh test
	$(PY) -m pytest -q -m "not e2e" $(ARGS)

lint:
	@scripts/install-deps.sh test
	$(PY) -m ruff check src tests
	$(PY) -m ruff format --check src tests
	$(PY) -m mypy

bench bench-soak:  ## not built yet: the benchmarks issue is open
	@echo "benchmarks are not implemented yet" >&2; exit 1

clean:
	rm -rf .venv .mypy_cache .ruff_cache .pytest_cache
