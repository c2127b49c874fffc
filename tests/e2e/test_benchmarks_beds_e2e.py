"""The benchmarks that run on test beds of their own (namespaced hosts),
each with --smoke: each must run to its end and print every key it
declares (benchmarks/smoke.py)."""
import pytest

from benchmarks import smoke

ON_BEDS = ("migration", "network", "cloudimage")


@pytest.mark.parametrize("name", ON_BEDS)
def test_benchmark_smoke(name):
    smoke.check(name)
