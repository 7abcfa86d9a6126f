"""Context-window management benchmarks: token counting and long conversations."""
