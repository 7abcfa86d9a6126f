# `make bench`: modelrouter side by side with the `openai` SDK called directly and with
# LiteLLM proxy, all against one stand-in upstream (bench/standin.py); writes
# bench/out/REPORT.md with PNG plots. About 10 minutes on 2 (shared) CPUs.
# `make bench-quick` runs the same code paths with small loads (~1 minute): a self-check.
# Needs: the venv (plus the bench extra, installed here), ghz from `make tools` (Go), and
# LiteLLM in its own virtualenv (installed here from bench/litellm-requirements.txt; when
# that fails the report says so and the rest still runs).
# Uses $(VENV), $(STAMP), $(PY), $(PYTHON) and $(TOOLS_BIN)
# from the Makefile that includes this file.

.PHONY: bench bench-quick litellm-venv

BENCH_STAMP := $(VENV)/.bench-installed
LITELLM_VENV := $(CURDIR)/.tools/litellm-venv
LITELLM_STAMP := $(LITELLM_VENV)/.installed
LITELLM_LOG := $(LITELLM_VENV).log

# matplotlib (plots) is the bench extra: `make test` does not need it.
$(BENCH_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -c constraints.txt -e '.[bench]'
	@touch $(BENCH_STAMP)

# Never fails the bench: without the stamp, the report says LiteLLM could not be installed
# (with the tail of $(LITELLM_LOG)) and the other columns still run.
$(LITELLM_STAMP): bench/litellm-requirements.txt
	@echo "installing LiteLLM proxy into $(LITELLM_VENV) (log: $(LITELLM_LOG))"
	@rm -rf $(LITELLM_VENV) && \
	  { $(PYTHON) -m venv $(LITELLM_VENV) || python3 -m venv $(LITELLM_VENV); } > $(LITELLM_LOG) 2>&1 && \
	  $(LITELLM_VENV)/bin/python -m pip install --quiet -r bench/litellm-requirements.txt \
	    >> $(LITELLM_LOG) 2>&1 && touch $@ || \
	  echo "LiteLLM could not be installed (see $(LITELLM_LOG)); the bench runs without it"

litellm-venv: $(LITELLM_STAMP)

bench: $(BENCH_STAMP) tools litellm-venv
	$(PY) -m bench --out bench/out

bench-quick: $(BENCH_STAMP) tools litellm-venv
	$(PY) -m bench --quick --out bench/out/quick
