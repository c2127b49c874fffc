"""Benchmarks: scripts that print JSON, each with its floor measured in
the same run (see benchmarks/smoke.py for the --smoke every one has)."""
