"""Benchmarks that write their figures to files (never asserted in tests)."""
