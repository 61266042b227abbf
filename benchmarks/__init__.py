"""Benchmarks for tap-partner-billing."""
