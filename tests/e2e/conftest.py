"""e2e fixtures: one compute-agent (real RabbitMQ, real libvirtd, real QEMU
guests under TCG) per test module.  Needs tools/start-daemons.sh first.

For the whole session every QEMU and swtpm process on the machine (the
system libvirtd's and every bed's) is sampled from /proc: one that ever
runs as root or holds a capability fails the run (QEMU unprivileged, with
libvirt's dynamic ownership, in every bed)."""
import pytest

from tests.harness.agent import Agent
from tests.harness.emulators import Sampler


@pytest.fixture(scope="session", autouse=True)
def emulators_unprivileged():
    sampler = Sampler().start()
    yield sampler
    sampler.stop()
    assert not sampler.offenders, (
        "emulators ran as root or with capabilities: "
        + "; ".join(f"{p['comm']} pid {p['pid']} uids {p['uids']} CapEff {p['cap_eff']:x} "
                    f"({p['argv']})" for p in sampler.offenders.values()))


@pytest.fixture(scope="module")
def agent():
    a = Agent().start()
    a.upload_test_guest()
    yield a
    a.close()
