"""Mittr's benchmarks: micro benchmarks (pytest-benchmark), the end-to-end harness (`python -m
bench.e2e`, also `mittr bench`), its sink, and locustfiles for load tests."""
