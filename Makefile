# backdrill: `make demo` and `make test` do all the set-up on a fresh machine.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: all venv system-deps lint fmt test smoke-wheel demo bench clean

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

test: venv system-deps lint
	$(VENV)/bin/pytest $(PYTEST_ARGS)

# the wheel, installed without extras into a fresh venv, runs against PostgreSQL and S3
smoke-wheel: venv system-deps
	VENV=$(VENV) bash scripts/smoke-wheel.sh

demo: venv system-deps
	$(PY) scripts/demo.py

bench: venv system-deps
	$(PY) benchmarks/run.py

clean:
	rm -rf $(VENV) .demo .mypy_cache .ruff_cache .pytest_cache
