"""Live migration between two namespaced hosts, agent to agent over RPC,
with real libvirtds and a guest that keeps counting."""
import os
import re

import pytest

from compute import exception
from tests.harness import guest
from tests.harness.agent import wait_until
from tests.harness.testbed import TestBed


@pytest.fixture(scope="module")
def bed():
    tb = TestBed().start()
    try:
        for name in ("hA", "hB"):
            tb.add_host(name).start_agent(tb.image_port)
        tb.upload_test_guest("console=ttyS0 quiet tb.name=mig")
        yield tb
    finally:
        tb.close()


def on_host(agent, uuid_):
    """The record on agent's host once the instance settled there."""
    try:
        rec = agent.api.get_instance(agent.host, uuid_)
    except exception.InstanceNotFound:
        return None
    return rec if rec["task_state"] is None and rec["host"] == agent.host else None


def test_block_live_migration_keeps_the_guest_running(bed):
    a, b = bed.hosts["hA"].agent, bed.hosts["hB"].agent
    u = a.boot("mig", image=bed.images.images["disk"], wait_console=False)
    a.wait_console(u, lambda c: guest.last_tick(c) >= 3, "tick 3")
    a.api.live_migrate_instance(a.host, u, b.host, block_migration=True)
    rec = wait_until(lambda: on_host(b, u), 120, 0.2, "the instance on hB")
    assert rec["vm_state"] == "active" and rec["power_state"] == "RUNNING"
    before = a.console(u) if os.path.exists(os.path.join(a.instances_path, u)) else ""
    src = a.api.get_instance(a.host, u)
    assert src["host"] == b.host and src["vm_state"] == "active"
    assert not os.path.exists(os.path.join(a.instances_path, u))      # nothing left on hA
    assert bed.hosts["hA"].virsh("list", "--all", "--name").split() == []
    assert f"instance-{u}" in bed.hosts["hB"].virsh("list", "--name")
    # the counter goes on from where it was: no boot on hB
    console = b.wait_console(u, lambda c: len(re.findall(r"^TB: tick \d+ ", c, re.M)) >= 3,
                             "ticks on hB")
    ticks = [int(n) for n in re.findall(r"^TB: tick (\d+) ", console, re.M)]
    assert ticks[0] > 3 and ticks == list(range(ticks[0], ticks[0] + len(ticks)))
    assert "TB: boot-ok" not in console and not before
    # the disk came along: a reboot on hB finds the first boot's count
    b.api.reboot_instance(b.host, u, "HARD")
    b.wait_console(u, lambda c: "TB: bootcount=2" in c, "reboot on hB")
    b.api.terminate_instance(b.host, u)
    b.wait_state(u, {"deleted"})


def test_migration_without_shared_storage_needs_block(bed):
    a, b = bed.hosts["hA"].agent, bed.hosts["hB"].agent
    u = a.boot("nomig", image=bed.images.images["disk"], wait_console=False)
    a.api.live_migrate_instance(a.host, u, b.host, block_migration=False)
    rec = wait_until(lambda: (r := a.api.get_instance(a.host, u))["task_state"] is None and r,
                     60, 0.2, "the refusal")
    assert rec["host"] == a.host and rec["power_state"] == "RUNNING"
    actions = a.api.list_instance_actions(a.host, u)
    assert actions[-1]["action"] == "live_migration" and actions[-1]["message"] == "Error"
    with pytest.raises(exception.InstanceNotFound):
        b.api.get_instance(b.host, u)
    a.api.terminate_instance(a.host, u)
