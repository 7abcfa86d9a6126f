"""Load tests and benchmarks for modelrouter (`make bench`); see bench/README.md."""
