# modelrouter: `make run` serves on 127.0.0.1:50051 (PORT=... and METRICS_PORT=... to
# choose; a second router beside the first needs both), `make test` runs
# every check. Python installs into .venv from pinned versions (constraints.txt); `make run`
# installs only the runtime dependencies, the dev tools come with `make install` / `make test`.

PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python
STAMP  := $(VENV)/.installed
RUN_STAMP := $(VENV)/.installed-runtime
PORT   ?=
METRICS_PORT ?=

.DEFAULT_GOAL := help
.PHONY: help install run test test-fast lint typecheck format protos check-protos clean

include mk/tools.mk
include mk/bench.mk
include mk/clients.mk

help:
	@echo "make run          install (first time) and serve on 127.0.0.1:50051 (PORT=50052 METRICS_PORT=9465)"
	@echo "make test         lint, type-check, buf, proto drift, Python, Go and TypeScript tests"
	@echo "make protos       regenerate the Python, Go and TypeScript code from protos/"
	@echo "make format       ruff format + fix"
	@echo "make tools        grpcurl, ghz, protoc-gen-go(-grpc) (pinned, go install) into .tools/bin"
	@echo "make node         npm ci: buf, protoc-gen-es and the TypeScript client's packages"
	@echo "make grpcurl ARGS='-plaintext 127.0.0.1:50051 list'   the pinned grpcurl"
	@echo "make protoset     write the API's descriptor set to modelrouter.protoset (for ghz/grpcurl)"
	@echo "make bench        load tests with ghz; writes bench/out/REPORT.md"

$(PY):
	$(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)

# Runtime only: what `modelrouter serve` needs.
$(RUN_STAMP): $(PY) pyproject.toml client/pyproject.toml constraints.txt
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e ./client -e .
	@touch $(RUN_STAMP)

# Runtime plus the dev extra (linters, type checker, test runner, code generators) and the
# test-support package.
$(STAMP): $(RUN_STAMP) testsupport/pyproject.toml
	$(PY) -m pip install --quiet -c constraints.txt -e ./client -e ./testsupport -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

run: $(RUN_STAMP)
	$(BIN)/modelrouter serve $(if $(PORT),--port $(PORT)) $(if $(METRICS_PORT),--metrics-port $(METRICS_PORT))

protos: $(STAMP) $(GEN_TOOLS)
	scripts/gen_protos.sh

# Regenerate into a scratch dir and compare: committed code must match the .proto, in every
# language.
GENERATED := client/src/modelrouter client/go/modelrouter client/typescript/src/gen
check-protos: $(STAMP) $(GEN_TOOLS)
	@tmp=$$(mktemp -d) && scripts/gen_protos.sh "$$tmp" >/dev/null && \
	  stale=0 && for dir in $(GENERATED); do \
	    diff -r -x __pycache__ "$$tmp/$$dir" "$$dir" || stale=1; done && \
	  rm -rf "$$tmp" && [ $$stale = 0 ] && \
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
test: $(STAMP) tools check-protos lint typecheck buf-check test-go test-ts
	PATH="$(TOOLS_BIN):$$PATH" $(BIN)/pytest -q -rs

test-fast: $(STAMP)
	$(BIN)/pytest -q -x -m "not load"

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache node_modules client/typescript/dist
