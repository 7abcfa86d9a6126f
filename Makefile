# modelrouter: `make run` serves on 127.0.0.1:50051, `make test` runs every check.
# Everything installs into .venv from pinned versions (constraints.txt).

PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python
STAMP  := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install run test test-fast lint typecheck format protos check-protos clean

include mk/tools.mk
include mk/bench.mk

help:
	@echo "make run          install (first time) and serve on 127.0.0.1:50051"
	@echo "make test         lint, type-check, proto drift check and the test suite"
	@echo "make protos       regenerate the Python code from protos/"
	@echo "make format       ruff format + fix"
	@echo "make tools        grpcurl and ghz (pinned, go install) into .tools/bin"
	@echo "make bench        load tests with ghz; writes bench/out/REPORT.md"

$(PY):
	$(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)

$(STAMP): $(PY) pyproject.toml client/pyproject.toml testsupport/pyproject.toml constraints.txt
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e ./client -e ./testsupport -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/modelrouter serve

protos: $(STAMP)
	scripts/gen_protos.sh

# Regenerate into a scratch dir and compare: committed code must match the .proto.
check-protos: $(STAMP)
	@tmp=$$(mktemp -d) && scripts/gen_protos.sh "$$tmp" >/dev/null && \
	  diff -r -x __pycache__ "$$tmp/modelrouter" client/src/modelrouter && rm -rf "$$tmp" && \
	  echo "generated code is up to date" || \
	  { echo "generated code is stale: run 'make protos' and commit"; exit 1; }

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# tools: the grpcurl/ghz smoke test runs the README's commands against a live server.
test: $(STAMP) tools check-protos lint typecheck
	PATH="$(TOOLS_BIN):$$PATH" $(BIN)/pytest -q -rs

test-fast: $(STAMP)
	$(BIN)/pytest -q -x -m "not load"

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
