"""Benchmarks: speed goals are measured here, never asserted by timed unit tests."""
