"""The agent keeps one libvirt connection and reconnects when libvirtd
restarts; guests keep running through the restart."""
import os
import subprocess
import time
import uuid

from tests.harness import guest
from tests.harness.agent import ROOT_DIR, wait_until

FLAVOR = {"vcpus": 1, "memory_mb": 128, "root_gb": 1}
PIDFILE = "/run/libvirt/libvirtd.pid"


def restart_libvirtd():
    with open(PIDFILE) as f:
        pid = int(f.read().strip())
    os.kill(pid, 15)
    wait_until(lambda: not os.path.exists(f"/proc/{pid}"), 30, 0.1, "libvirtd to exit")
    subprocess.run([os.path.join(ROOT_DIR, "tools", "start-daemons.sh")], check=True,
                   capture_output=True)


def test_spawn_works_after_libvirtd_restart_and_guest_keeps_running(agent):
    before = str(uuid.uuid4())
    agent.api.build_and_run_instance(agent.host, before, "before", FLAVOR, agent.images["disk"])
    assert agent.wait_state(before, {"active", "error"})["vm_state"] == "active"
    wait_until(lambda: guest.BOOT_MARKER in agent.console(before), 90, 0.5, "first boot")
    ticks = agent.console(before).count("TB: tick")

    restart_libvirtd()

    after = str(uuid.uuid4())
    agent.api.build_and_run_instance(agent.host, after, "after", FLAVOR, agent.images["disk"])
    rec = agent.wait_state(after, {"active", "error"})
    assert rec["vm_state"] == "active", rec["fault"]
    time.sleep(2)
    assert agent.console(before).count("TB: tick") > ticks      # never stopped
    assert guest.BOOT_MARKER in agent.console(before)
    assert agent.console(before).count(guest.BOOT_MARKER) == 1  # not rebooted
    for u in (before, after):
        agent.api.terminate_instance(agent.host, u)
    for u in (before, after):
        agent.wait_state(u, {"deleted"})
