# `make bench`: load tests of `modelrouter serve` on its built-in emulator (ghz + Python
# probes); writes bench/out/REPORT.md with PNG plots. About 3 minutes on 2 CPUs.
# `make bench-quick` is a small run that checks the benchmark itself (~30 s).
# Needs: the venv (with matplotlib) and ghz from `make tools` (Go). Uses $(STAMP) and $(PY)
# from the Makefile that includes this file.

.PHONY: bench bench-quick

bench: $(STAMP) tools
	$(PY) -m bench --out bench/out

bench-quick: $(STAMP) tools
	$(PY) -m bench --quick --out bench/out/quick
