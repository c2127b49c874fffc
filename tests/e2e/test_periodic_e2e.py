"""The agent's periodic loops at their real intervals (shortened by
config): the power-state sync reaps a guest whose record says it was
deleted here and only reports one no record names (another tool's, another
agent's on a shared libvirtd), and the cache manager removes a base no
instance uses once it is old enough."""
import hashlib
import os
import shutil
import subprocess
import uuid

import libvirt
import pytest
import sqlalchemy

from compute.db.api import Database
from tests.harness import guest
from tests.harness.agent import BIN, LIBVIRT_URI, Agent, wait_until

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


def test_power_sync_loop_reports_an_unknown_guest_and_reaps_one_deleted_here(agent):
    u = str(uuid.uuid4())
    # a guest defined by someone else (another tool, another agent on this
    # libvirtd), from files QEMU's own user can read
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
    # and one of the agent's own whose record says it was deleted here
    # (a delete done by hand in the database while the guest survived)
    deleted = agent.boot("deleted-here", wait_console=False)
    conn = libvirt.open(LIBVIRT_URI)
    stray = conn.defineXML(xml)
    try:
        stray.create()
        with Database(f"sqlite:///{agent.state_path}/compute.sqlite").session() as s:
            s.execute(sqlalchemy.text("UPDATE instances SET deleted = 1, vm_state = 'deleted' "
                                      "WHERE uuid = :u"), {"u": deleted})
            s.commit()
        wait_until(lambda: deleted not in {d.UUIDString() for d in conn.listAllDomains(0)},
                   30, 0.5, "the periodic sync to reap the guest deleted here")
        wait_until(lambda: u in agent.api.get_host_status(agent.host)["unknown_guests"], 30,
                   0.5, "the host status to report the stray guest")
        assert stray.isActive(), "the stray guest was touched"
        assert "compute_agent_unknown_guests 1.0" in agent.metrics()
        run = subprocess.run([os.path.join(BIN, "computectl"), "--config-file",
                              agent.config_file, "host-status", "--host", agent.host],
                             capture_output=True, text=True, timeout=60)
        assert run.returncode == 0 and u in run.stdout, run.stdout + run.stderr
    finally:
        if stray.isActive():
            stray.destroy()
        stray.undefine()
        conn.close()
    log = agent.log()
    assert f"guest {deleted} runs though its instance was deleted here; reaping it" in log
    assert f"guest {u}: no record of this host names it" in log


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
