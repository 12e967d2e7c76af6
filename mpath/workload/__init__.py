"""Workloads that drive a multipath device: the benchmark and its data verifier."""
