"""Evacuation on the multi-host test bed, the two agents sharing one
database: host hA dies (its agent and libvirtd stopped, its guests'
QEMUs killed, as in a power loss); once its heartbeat is older than
service_down_time, its instance is rebuilt on hB through computectl with
the same port; hA comes back (set to start the guests of running
instances) and starts nothing: it destroys its copy and leaves no
domain, file, tap or rule of it.  Then either host killed at each step
of an evacuation (compute.core.faults), with the invariants of
tests.harness.invariants after.  With the disks in Ceph (last: the agents
keep images_type = rbd), the evacuated guest boots its own disk."""
import json
import os
import subprocess

import oslo_messaging as messaging
import pytest

from compute.core import exception
from network import names
from tests.harness import agent as agent_mod
from tests.harness import invariants as inv
from tests.harness.agent import BIN, wait_until
from tests.harness.ceph import CephCluster
from tests.harness.netguests import OPEN, Guest, flat_network, port, wait_dhcp
from tests.harness.testbed import MGMT, _comm, two_hosts

HA_CONF = "[DEFAULT]\nservice_down_time = 8\nresume_guests_state_on_host_boot = true\n"
HB_CONF = "[DEFAULT]\nservice_down_time = 8\n"
SMALL = {"vcpus": 1, "memory_mb": 128, "root_gb": 1}


@pytest.fixture(scope="module")
def bed():
    yield from two_hosts("evac", shared_db=True, extra_conf={"hA": HA_CONF, "hB": HB_CONF})


def computectl(agent, *args):
    """computectl as the agents' user (the shared database is theirs)."""
    run = subprocess.run([*agent_mod.AS_SERVICE, os.path.join(BIN, "computectl"),
                          "--config-file", agent.config_file, *args],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    return run.stdout


def status_of(agent, host):
    services = json.loads(computectl(agent, "--json", "service-list"))
    return next(s["status"] for s in services if s["host"] == host)


def power_loss(h):
    """The host dies: agent, libvirtd and every guest's QEMU."""
    h.agent.kill_agent()
    for pid in h.run("ip", "netns", "pids", h.ns).split():
        if (_comm(pid) or "").startswith("qemu"):
            os.kill(int(pid), 9)
    h.stop_libvirtd()


def test_a_down_hosts_instance_is_evacuated_and_the_host_cleans_up_when_back(bed, tmp_path):
    hA, hB = bed.hosts["hA"], bed.hosts["hB"]
    a, b = hA.agent, hB.agent
    item = {"port": port("10.0.0.51", ["open"]), "network": flat_network("hA")}
    g = Guest(bed, "hA", "ev", item, "tb.ip=dhcp tb.ping=10.0.0.2", [OPEN])
    wait_dhcp(g)
    u, pid, tap = g.uuid, item["port"]["id"], names.tap(item["port"]["id"])
    assert status_of(b, a.host) == "up"
    with pytest.raises(exception.InvalidRequest, match=f"host {a.host} is up"):
        b.api.evacuate_instance(b.host, u, a.host)

    power_loss(hA)
    wait_until(lambda: status_of(b, a.host) == "down", 60, 1, f"{a.host} reported down")
    nets = tmp_path / "nets.json"
    nets.write_text(json.dumps({"networks": [dict(item, network=flat_network("hB"))]}))
    os.chmod(tmp_path, 0o755)
    os.chmod(nets, 0o644)
    out = computectl(b, "evacuate", "--host", a.host, "--dest", b.host, "--networks",
                     str(nets), u)
    assert "from the image" in out
    rec = b.find(u)
    assert (rec["vm_state"], rec["power_state"], rec["host"]) == ("active", "RUNNING", b.host)
    g.agent = b
    b.wait_console(u, lambda c: "TB: dhcp eth0 10.0.0.51/24" in c and "TB: bootcount=1" in c,
                   "the rebuilt guest with its address")
    assert item["port"]["mac"] in hB.virsh("domiflist", u)

    def answers():
        return hB.run("busybox", "ping", "-c", "1", "-W", "1", "10.0.0.51", check=False)
    wait_until(lambda: "1 packets received" in answers(), 30, 0.5, "the guest to answer")
    [mig] = [m for m in b.api.list_migrations(b.host, u) if m["migration_type"] == "evacuation"]
    assert (mig["status"], mig["source_host"]) == ("done", a.host)

    # hA comes back: it must not start its copy, and cleans it up
    hA._start_libvirtd(virtlogd=False)
    a.restart_agent()
    assert f"instance-{u}" not in hA.virsh("list", "--all", "--name")
    assert not os.path.exists(os.path.join(a.instances_path, u))
    assert tap not in hA.run("ip", "-o", "link")
    assert names.chain_id(pid) not in hA.run("iptables-save")
    old = a.api.get_instance(a.host, u)
    assert (old["vm_state"], old["host"]) == ("deleted", b.host)     # a pointer to hB
    [mig] = [m for m in b.api.list_migrations(b.host, u) if m["id"] == mig["id"]]
    assert mig["status"] == "completed"
    assert "was evacuated to" in a.log()
    wait_until(lambda: status_of(b, a.host) == "up", 30, 1, f"{a.host} up again")
    assert "1 packets received" in answers()                    # hB's guest undisturbed
    b.api.terminate_instance(b.host, u)
    b.wait_state(u, {"deleted"})


def evacuable(bed):
    """A guest on hA (booted once, its boot counted on its disk), then
    hA's power loss until hB sees it down."""
    hA, b = bed.hosts["hA"], bed.hosts["hB"].agent
    u = hA.agent.boot("evac", image=bed.images.images["disk"], flavor=SMALL)
    hA.agent.wait_console(u, lambda c: "TB: bootcount=1" in c, "the first boot")
    power_loss(hA)
    wait_until(lambda: status_of(b, hA.agent.host) == "down", 60, 1, "hA reported down")
    return u


def back(h, crash_at=None):
    h._start_libvirtd(virtlogd=False)
    h.agent.restart_agent(crash_at=crash_at)


@pytest.mark.parametrize("step,dies", [("evacuate.prepared", "hB"),
                                       ("evacuate.spawned", "hB"),
                                       ("evacuate_source.destroyed", "hA")])
def test_chaos(bed, step, dies):
    """Either host killed at each step of an evacuation and started again:
    the instance runs on hB only, and hA keeps nothing of it."""
    hA, hB = bed.hosts["hA"], bed.hosts["hB"]
    u = evacuable(bed)
    b = hB.agent
    if dies == "hB":
        b.kill_agent()
        b.restart_agent(crash_at=step)
        b.api.evacuate_instance(b.host, u, hA.agent.host)
        assert b.wait_crashed() == -9
        b.restart_agent()
        back(hA)
    else:
        b.api.evacuate_instance(b.host, u, hA.agent.host)
        wait_until(lambda: (r := b.find(u)) and r["task_state"] is None, 180, 0.5, "on hB")
        hA._start_libvirtd(virtlogd=False)
        hA.agent._start_agent({"COMPUTE_AGENT_CRASH_AT": step})
        assert hA.agent.wait_crashed() == -9
        hA.agent.restart_agent()
    assert inv.check(bed, u) == "hB"
    assert b.find(u)["vm_state"] == "active"
    b.api.terminate_instance(b.host, u)
    b.wait_state(u, {"deleted"})
    inv.check(bed, u)


def test_a_destination_killed_between_opening_and_accepting_closes_the_row(bed):
    """hB dies after it opened the evacuation's row and before it accepted
    it: back, it closes the row (which would go on letting it read hA's
    record), holds nothing of the instance, and a second evacuation works."""
    hA, hB = bed.hosts["hA"], bed.hosts["hB"]
    u = evacuable(bed)
    b = hB.agent
    b.kill_agent()
    b.restart_agent(crash_at="evacuate.opened")
    with pytest.raises(messaging.MessagingTimeout):    # the call dies with the agent
        b.api.evacuate_instance(b.host, u, hA.agent.host)
    assert b.wait_crashed() == -9
    b.restart_agent()
    assert b.find(u) is None
    assert not [m for m in b.api.list_migrations(b.host, u) if m["status"] == "accepting"]
    assert "was opened but never accepted: closed" in b.log()
    b.api.evacuate_instance(b.host, u, hA.agent.host)
    wait_until(lambda: (r := b.find(u)) and r["task_state"] is None, 180, 0.5, "on hB")
    back(hA)
    assert inv.check(bed, u) == "hB"
    b.api.terminate_instance(b.host, u)
    b.wait_state(u, {"deleted"})
    inv.check(bed, u)


@pytest.fixture(scope="module")
def ceph(bed):
    """A Ceph cluster on the bed's switch, both agents keeping new
    instances' disks in its pool vms (images_type = rbd)."""
    cluster = CephCluster(bed.sw, f"{MGMT}.1", bed.dir)
    try:
        cluster.serve_instances([bed.hosts["hA"].agent, bed.hosts["hB"].agent])
        yield cluster
    finally:
        cluster.stop()


def test_with_disks_in_ceph_the_evacuated_guest_boots_its_own_disk(bed, ceph):
    """The pool outlives hA: hB defines the guest on the same images (the
    boot count goes on), and hA, back, removes its definition and
    directory but never the images hB runs on; a delete on hB removes
    them."""
    hA, hB = bed.hosts["hA"], bed.hosts["hB"]
    a, b = hA.agent, hB.agent
    u = evacuable(bed)
    images = ceph.images_of(u)
    assert images == [f"{u}_disk"]
    out = computectl(b, "evacuate", "--host", a.host, "--dest", b.host, u)
    assert "keeping its disks" in out, out
    rec = b.find(u)
    assert (rec["vm_state"], rec["power_state"], rec["host"]) == ("active", "RUNNING", b.host)
    b.wait_console(u, lambda c: "TB: bootcount=2" in c, "the second boot of its own disk")
    assert f"name='vms/{u}_disk'" in hB.virsh("dumpxml", f"instance-{u}")
    back(hA)
    assert f"instance-{u}" not in hA.virsh("list", "--all", "--name")
    assert not os.path.exists(os.path.join(a.instances_path, u))
    assert ceph.images_of(u) == images
    b.api.reboot_instance(b.host, u, "HARD")
    b.wait_console(u, lambda c: "TB: bootcount=3" in c, "a reboot on hB")
    b.api.terminate_instance(b.host, u)
    b.wait_state(u, {"deleted"})
    assert ceph.images_of(u) == []


@pytest.fixture(scope="module")
def shared_bed():
    yield from two_hosts("evac", shared_instances=True, shared_db=True,
                         extra_conf={"hA": HA_CONF, "hB": HB_CONF})


def test_on_shared_storage_the_instance_keeps_its_disks(shared_bed):
    """hB sees the instance's directory: the guest boots its own disk
    there (the boot count goes on), and hA, back, removes only its
    definition, never the files hB now runs on."""
    hA, hB = shared_bed.hosts["hA"], shared_bed.hosts["hB"]
    a, b = hA.agent, hB.agent
    u = evacuable(shared_bed)
    assert b.api.evacuate_instance(b.host, u, a.host)["shared_storage"] is True
    rec = wait_until(lambda: (r := b.find(u)) and r["task_state"] is None and r, 180, 0.5,
                     "the instance on hB")
    assert rec["vm_state"] == "active", rec
    b.wait_console(u, lambda c: "TB: bootcount=2" in c, "the second boot of its own disk")
    back(hA)
    assert f"instance-{u}" not in hA.virsh("list", "--all", "--name")
    assert os.path.exists(os.path.join(b.instances_path, u, "disk"))      # hB's now
    assert f"instance-{u}" in hB.virsh("list", "--name")
    b.api.reboot_instance(b.host, u, "HARD")
    b.wait_console(u, lambda c: "TB: bootcount=3" in c, "a reboot on hB")
    b.api.terminate_instance(b.host, u)
    b.wait_state(u, {"deleted"})
    assert not os.path.exists(os.path.join(b.instances_path, u))


def test_a_disk_the_down_host_left_reaching_outside_is_refused(shared_bed):
    """The down host's files are another host's data: a root disk left on
    the shared storage whose header names a host file (/etc/hostname as
    its backing file) is refused before QEMU opens it; nothing is defined
    on hB."""
    hA, hB = shared_bed.hosts["hA"], shared_bed.hosts["hB"]
    a, b = hA.agent, hB.agent
    u = evacuable(shared_bed)
    disk = os.path.join(b.instances_path, u, "disk")
    os.unlink(disk)
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", "/etc/hostname",
                    "-F", "raw", disk, "1G"], check=True)
    b.api.evacuate_instance(b.host, u, a.host)
    rec = wait_until(lambda: (r := b.find(u)) and r["task_state"] is None and r, 180, 0.5,
                     "the evacuation to end")
    assert rec["vm_state"] == "error", rec
    assert rec["fault"].startswith("UnsafeImage") and "backing" in rec["fault"], rec["fault"]
    assert f"instance-{u}" not in hB.virsh("list", "--all", "--name")
    b.api.terminate_instance(b.host, u)
    b.wait_state(u, {"deleted"})
    back(hA)                  # the evacuation failed: hA keeps its record, deleted here
    a.api.terminate_instance(a.host, u)
    a.wait_state(u, {"deleted"})
