"""Benchmarks: numbers, not assertions. `make bench` runs them and writes bench/RESULTS.md."""
