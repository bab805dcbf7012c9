"""Synthetic camwatch databases (millions of plausible rows without running a model), for benchmarks and dashboard tests."""
