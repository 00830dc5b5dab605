# backdrill: `make demo` and `make test` do all the set-up on a fresh machine.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
# make test runs the suite on parallel pytest-xdist workers: the tests mostly wait on
# PostgreSQL, S3 and child processes, so 3 workers pay on 2 cores; each worker starts its
# own session fixtures (cluster, moto server, samples). worksteal keeps a file's tests
# together (module fixtures start once) and rebalances the tail. TEST_WORKERS=0: serial.
TEST_WORKERS ?= 3

.PHONY: all venv system-deps lint fmt secret-scan test test-fast smoke-wheel demo bench clean

all: test

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $@

venv: $(VENV)/.installed

system-deps:
	@bash scripts/ensure-system-deps.sh

lint: venv
	$(VENV)/bin/ruff check src tests benchmarks scripts
	$(VENV)/bin/ruff format --check src tests benchmarks scripts
	$(VENV)/bin/mypy

fmt: venv
	$(VENV)/bin/ruff check --fix src tests benchmarks scripts
	$(VENV)/bin/ruff format src tests benchmarks scripts

# no secrets in git: the local detect-secrets hook of .pre-commit-config.yaml, run from
# the venv (test extras), offline: `pre-commit run --all-files`
secret-scan: venv
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/pre-commit run --all-files --show-diff-on-failure

test: venv system-deps lint
	$(VENV)/bin/pytest -n $(TEST_WORKERS) --dist worksteal $(PYTEST_ARGS)

# the pure tests only: no PostgreSQL, no S3 server, no long property or timing tests
# (markers pg, s3 and slow; pg and s3 are set from the fixtures in tests/conftest.py),
# on the same xdist workers as make test
test-fast: venv
	$(VENV)/bin/pytest -q -n $(TEST_WORKERS) -m "not pg and not s3 and not slow" $(PYTEST_ARGS)

# the wheel, installed without extras into a fresh venv, runs against PostgreSQL and S3
smoke-wheel: venv system-deps
	VENV=$(VENV) bash scripts/smoke-wheel.sh

demo: venv system-deps
	$(PY) scripts/demo.py

# the core benchmarks, then the scale section (issue 17): 50 databases, and a filestore
# of BENCH_SCALE_FILES small files (and a quarter of it); each rewrites its own tables in
# docs/benchmarks.md. BENCH_SCALE_FILES=250000 for a shorter run.
BENCH_SCALE_FILES ?= 1000000
bench: venv system-deps
	$(PY) benchmarks/run.py
	$(PY) -m benchmarks.many_databases --rounds 3 --write-docs
	$(PY) -m benchmarks.filestore_scale --files $(BENCH_SCALE_FILES) --s3-files 20000 --write-docs

clean:
	rm -rf $(VENV) .demo .mypy_cache .ruff_cache .pytest_cache
