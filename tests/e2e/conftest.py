"""e2e fixtures: one compute-agent (real RabbitMQ, real libvirtd, real QEMU
guests under TCG) per test module.  Needs tools/start-daemons.sh first."""
import pytest

from tests.harness.agent import Agent


@pytest.fixture(scope="module")
def agent():
    a = Agent().start()
    a.upload_test_guest()
    yield a
    a.close()
