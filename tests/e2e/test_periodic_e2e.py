"""The agent's periodic loops at their real intervals (shortened by
config): the power-state sync reaps a guest of ours that no record knows
(lifecycle events never do that), and the cache manager removes a base no
instance uses once it is old enough."""
import hashlib
import os
import shutil
import uuid

import libvirt
import pytest

from tests.harness import guest
from tests.harness.agent import LIBVIRT_URI, Agent, wait_until

PERIODIC = """
[DEFAULT]
sync_power_state_interval = 3
running_deleted_instance_action = reap
[image_cache]
manager_interval = 3
remove_unused_original_minimum_age_seconds = 2
"""


@pytest.fixture(scope="module")
def agent():
    a = Agent(extra_conf=PERIODIC).start()
    a.upload_test_guest()
    yield a
    a.close()


def test_power_sync_loop_reaps_an_unknown_guest(agent):
    u = str(uuid.uuid4())
    # a guest defined by someone else, from files QEMU's own user can read
    files = os.path.join(agent.workdir, "stray")
    os.makedirs(files, exist_ok=True)
    for name in ("vmlinux", "initrd.img"):
        shutil.copy(os.path.join(guest.build(), name), files)
    xml = f"""<domain type='qemu'><name>instance-{u}</name><uuid>{u}</uuid>
      <memory unit='MiB'>96</memory><vcpu>1</vcpu>
      <os><type arch='x86_64' machine='pc'>hvm</type>
        <kernel>{files}/vmlinux</kernel><initrd>{files}/initrd.img</initrd>
        <cmdline>console=ttyS0 quiet tb.name=stray</cmdline></os>
      <features><acpi/></features><devices/></domain>"""
    conn = libvirt.open(LIBVIRT_URI)
    try:
        conn.defineXML(xml).create()
        assert "reaping" not in agent.log()
        wait_until(lambda: u not in {d.UUIDString() for d in conn.listAllDomains(0)}, 30, 0.5,
                   "the periodic sync to reap the stray guest")
    finally:
        conn.close()
    assert f"guest {u} has no instance here; reaping it" in agent.log()


def base_of(agent, image):
    return os.path.join(agent.instances_path, "_base", hashlib.sha1(image.encode()).hexdigest())


def test_cache_manager_loop_removes_an_unused_old_base_and_keeps_a_used_one(agent):
    u = agent.boot("user", wait_console=False)                # its bases are in use
    image = agent.upload_variant("console=ttyS0 quiet tb.name=unused")
    agent.api.cache_images(agent.host, [image])
    wait_until(lambda: os.path.exists(base_of(agent, image)), 60, 0.2, "the pre-cached base")
    wait_until(lambda: not os.path.exists(base_of(agent, image)), 30, 0.5,
               "the cache manager to remove it")
    for used in (agent.images["disk"], agent.images["kernel"], agent.images["ramdisk"]):
        assert os.path.exists(base_of(agent, used))          # several runs later, still there
    agent.api.terminate_instance(agent.host, u)
    agent.wait_state(u, {"deleted"})
