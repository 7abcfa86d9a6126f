"""Test infrastructure shared by the end-to-end tests (tests/cli, tests/grpcurl) and the
benchmarks (bench/): running `modelrouter serve` as a child process, scripting the emulator
of another process, and writing the config it reads.

An installed package (`make install` puts it in the venv, editable) so that both import it
without putting the repository root on `sys.path`.
"""
