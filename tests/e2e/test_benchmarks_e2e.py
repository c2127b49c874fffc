"""The benchmarks whose agents run on the machine's own libvirtd, each
with --smoke (one round, smallest sizes): each must run to its end and
print every key it declares (benchmarks/smoke.py).  They run in the
machine's job, one after the other, like the other modules there."""
import pytest

from benchmarks import smoke

ON_THE_MACHINE = ("spawn", "lifecycle", "snapshot", "consoles", "imagecache", "metrics",
                  "volumes", "scale")


@pytest.mark.parametrize("name", ON_THE_MACHINE)
def test_benchmark_smoke(name):
    smoke.check(name)
