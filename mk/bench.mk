# `make bench`: load tests of `modelrouter serve` on its built-in emulator (ghz + Python
# probes); writes bench/out/REPORT.md with PNG plots. About 3 minutes on 2 CPUs.
# `make bench-quick` is a small run that checks the benchmark itself (~30 s).
# Needs: the venv (plus the bench extra, installed here) and ghz from `make tools` (Go).
# Uses $(VENV), $(STAMP) and $(PY)
# from the Makefile that includes this file.

.PHONY: bench bench-quick

BENCH_STAMP := $(VENV)/.bench-installed

# matplotlib (plots) is the bench extra: `make test` does not need it.
$(BENCH_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -c constraints.txt -e '.[bench]'
	@touch $(BENCH_STAMP)

bench: $(BENCH_STAMP) tools
	$(PY) -m bench --out bench/out

bench-quick: $(BENCH_STAMP) tools
	$(PY) -m bench --quick --out bench/out/quick
