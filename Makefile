# Every target installs what it needs first (Debian packages, the .venv), so each works on a
# fresh machine.
PY := .venv/bin/python
ARGS ?=

.PHONY: run probe origin test test-fast lint bench bench-full bench-soak clean

run:  ## the monitor (embedded origin when nothing is configured); metrics on :9090
	@scripts/install-deps.sh run
	$(PY) -m streamer monitor $(ARGS)

probe:
	@scripts/install-deps.sh run
	$(PY) -m streamer probe $(ARGS)

origin:
	@scripts/install-deps.sh run
	$(PY) -m streamer origin $(ARGS)

# The coverage floor (pyproject.toml) is the whole suite's: a run narrowed by ARGS is
# reported, not held to it. Two workers (pytest-xdist), whole files each (module fixtures
# start their servers once): the end-to-end sessions mostly wait on real time.
test: lint  ## lint and types, then unit and end-to-end tests against real servers, with coverage
	@scripts/install-deps.sh test
	$(PY) -m pytest -q -p no:cacheprovider -n 2 --dist loadfile \
		--cov --cov-report=term-missing:skip-covered \
		$(if $(ARGS),--cov-fail-under=0) $(ARGS)

test-fast:
	@scripts/install-deps.sh test
	$(PY) -m pytest -q -m "not e2e" $(ARGS)

lint:  ## ruff (lint and format) and mypy
	@scripts/install-deps.sh test
	$(PY) -m ruff check src tests benchmarks
	$(PY) -m ruff format --check src tests benchmarks
	$(PY) -m mypy

bench:  ## benchmarks against real origins on loopback (~15 min): table + benchmarks/results/
	@scripts/install-deps.sh bench
	$(PY) -m benchmarks $(ARGS)

bench-full:  ## as bench, density with N=1 too, 5 draws of 40 s windows (~40 min): results/full.json
	@scripts/install-deps.sh bench
	$(PY) -m benchmarks --full $(ARGS)

bench-soak:  ## 10 streams for 10 minutes: memory, file descriptors, tasks, threads
	@scripts/install-deps.sh bench
	$(PY) -m benchmarks --soak $(ARGS)

clean:
	rm -rf .venv .mypy_cache .ruff_cache .pytest_cache .coverage
