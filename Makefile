# Every target creates or updates .venv idempotently, so a fresh clone needs nothing else.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast fuzz bench lint venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[examples,dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python examples/demo.py

# A broken layer contract or a lint error fails the run before any test starts.
test: lint
	$(BIN)/python -m pytest -q -p no:cacheprovider

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider -m 'not slow'

# The fuzzer of `make test`, with many more generated requests per operation; prints its figures.
FUZZ_EXAMPLES ?= 500
fuzz: $(STAMP)
	TRAINYARD_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/python -m pytest -q -p no:cacheprovider tests/fuzz/test_openapi.py

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

# ruff, mypy on the pure packages, and the layer contracts of DESIGN.md ([tool.importlinter] in pyproject.toml).
lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/mypy src/trainyard/spec.py src/trainyard/scheduler src/trainyard/runtime src/trainyard/client.py
	$(BIN)/lint-imports --no-cache --no-logo

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
