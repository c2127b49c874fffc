"""The broker stopped and started in the middle of an operation: every
agent on the machine shares it, so this module runs alone, after the
others (tools/e2e_lanes.py).  The bed and its helpers are the chaos
suite's (tests/e2e/test_chaos_e2e.py)."""
import subprocess
import time

import pytest

from tests.e2e.test_chaos_e2e import CONF, deaf_guest, finish, migrate_until_shutting_down
from tests.harness import invariants as inv
from tests.harness.testbed import two_hosts


@pytest.fixture(scope="module")
def bed():
    yield from two_hosts("outage", extra_conf={"hA": CONF, "hB": CONF})


def test_rabbitmq_restarted_mid_operation(bed):
    """The broker is stopped and started while a cold migration waits for a
    deaf guest to shut down (its next call to hB and its notifications fall
    in the outage): the migration completes, and both agents answer a
    single call made as soon as the broker is back (they reconnected and
    declared their queues by themselves; a request sent before that is
    returned by the broker and sent again)."""
    u, _ = deaf_guest(bed)
    watch = inv.Watch(bed, u).start()
    migrate_until_shutting_down(bed, u)
    at_outage = watch.mark()
    subprocess.run(["rabbitmqctl", "-q", "stop_app"], check=True, capture_output=True)
    time.sleep(2)
    subprocess.run(["rabbitmqctl", "-q", "start_app"], check=True, capture_output=True)
    for h in bed.hosts.values():
        assert h.agent.api.ping(h.agent.host)["host"] == h.agent.host
    b = bed.hosts["hB"].agent
    assert inv.check(bed, u, watch) == "hB"
    assert b.find(u)["vm_state"] == "resized"
    inv.ticks_kept(bed.hosts["hB"], u, at_outage)
    finish(bed, u)
