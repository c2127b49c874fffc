"""A real guest spawned and deleted through RPC, end to end: cast over
RabbitMQ, qcow2 overlay on a cached base, libvirt domain, the guest's own
serial console."""
import json
import os
import pwd
import stat
import subprocess
import uuid

import libvirt

from imagecache.glance import GlanceClient
from tests.harness import emulators, guest
from tests.harness.agent import LIBVIRT_URI, wait_until

FLAVOR = {"vcpus": 1, "memory_mb": 128, "root_gb": 1}


def domain_exists(uuid_):
    conn = libvirt.open(LIBVIRT_URI)
    try:
        conn.lookupByUUIDString(uuid_)
        return True
    except libvirt.libvirtError:
        return False
    finally:
        conn.close()


def test_spawn_boots_a_real_guest_and_terminate_removes_it(agent):
    u = str(uuid.uuid4())
    agent.api.build_and_run_instance(agent.host, u, "e2e-guest", FLAVOR, agent.images["disk"])
    rec = agent.wait_state(u, {"active", "error"})
    assert rec["vm_state"] == "active", rec
    assert rec["power_state"] == "RUNNING" and rec["task_state"] is None

    console = wait_until(lambda: (c := agent.console(u)) and guest.DISK_MARKER in c and c,
                         90, 0.5, "the guest's disk marker on its console")
    assert guest.BOOT_MARKER in console
    assert "TB: disks=vda" in console
    assert guest.DISK_MARKER in agent.api.get_console_output(agent.host, u, length=50)

    inst_dir = os.path.join(agent.instances_path, u)
    info = json.loads(subprocess.run(
        ["qemu-img", "info", "-U", "--output=json", os.path.join(inst_dir, "disk")],
        check=True, capture_output=True, text=True).stdout)
    assert info["backing-filename"].startswith(os.path.join(agent.instances_path, "_base"))
    assert info["backing-filename-format"] == "raw"
    bases = sorted(os.listdir(os.path.join(agent.instances_path, "_base")))
    assert len(bases) == 3        # disk, kernel, ramdisk
    # nothing of the instance is everyone's to read, and no directory is
    # everyone's to list: QEMU's user may only pass through them to what
    # libvirt handed it; a base is readable by name whoever libvirt left
    # it to (imagecache.cache)
    base_dir = os.path.join(agent.instances_path, "_base")
    dirs = (inst_dir, base_dir)
    files = (os.path.join(inst_dir, "disk"), os.path.join(inst_dir, "libvirt.xml"))
    base_files = tuple(os.path.join(base_dir, b) for b in bases)
    modes = {p: stat.S_IMODE(os.stat(p).st_mode) for p in dirs + files + base_files}
    assert all(modes[d] & 0o007 == 0o001 for d in dirs), modes
    assert all(modes[f] & 0o007 == 0 for f in files), modes
    assert all(modes[f] & 0o007 == 0o004 for f in base_files), modes
    # QEMU runs as libvirt-qemu with no capability, and libvirt gave it the
    # guest's disk and base for the run (dynamic ownership)
    qemu_user = pwd.getpwnam("libvirt-qemu")
    qemu = [p for p in emulators.emulators() if p["guest"] == f"instance-{u}"]
    assert len(qemu) == 1, qemu
    assert set(qemu[0]["uids"]) == {qemu_user.pw_uid}, qemu
    assert 0 not in qemu[0]["gids"] + qemu[0]["groups"], qemu
    assert qemu[0]["cap_eff"] == qemu[0]["cap_prm"] == 0, qemu
    assert os.stat(os.path.join(inst_dir, "disk")).st_uid == qemu_user.pw_uid
    assert os.stat(info["backing-filename"]).st_uid == qemu_user.pw_uid

    agent.api.terminate_instance(agent.host, u)
    assert agent.wait_state(u, {"deleted"})["power_state"] == "NOSTATE"
    assert not domain_exists(u)
    assert not os.path.exists(inst_dir)
    assert sorted(os.listdir(os.path.join(agent.instances_path, "_base"))) == bases


def test_flavor_ephemeral_and_swap_disks_reach_the_guest(agent):
    u = str(uuid.uuid4())
    flavor = dict(FLAVOR, ephemeral_gb=1, swap_mb=64)
    agent.api.build_and_run_instance(agent.host, u, "e2e-disks", flavor, agent.images["disk"])
    assert agent.wait_state(u, {"active", "error"})["vm_state"] == "active"
    console = wait_until(lambda: (c := agent.console(u)) and "TB: disks=" in c and c,
                         90, 0.5, "the guest's disk list")
    assert "TB: disks=vda,vdb,vdc" in console
    inst_dir = os.path.join(agent.instances_path, u)
    assert sorted(os.listdir(inst_dir)) == ["console.log", "disk", "disk.local", "disk.swap",
                                            "libvirt.xml"]
    agent.api.terminate_instance(agent.host, u)
    agent.wait_state(u, {"deleted"})
    assert not os.path.exists(inst_dir)
    bases = os.listdir(os.path.join(agent.instances_path, "_base"))
    assert "ephemeral_1_ext4" in bases and "swap_64" in bases


def test_spawn_of_missing_image_goes_to_error_with_fault(agent):
    u = str(uuid.uuid4())
    agent.api.build_and_run_instance(agent.host, u, "e2e-missing", FLAVOR, "no-such-image")
    rec = agent.wait_state(u, {"active", "error"})
    assert rec["vm_state"] == "error"
    assert "ImageNotFound" in rec["fault"] and "not found" in rec["fault"]
    assert not domain_exists(u)
    assert not os.path.exists(os.path.join(agent.instances_path, u))


def test_spawn_refused_by_libvirt_cleans_up_domain_and_disks(agent):
    """Disks are created, then QEMU refuses the machine type: the instance
    goes to ERROR with libvirt's reason, and nothing of it is left."""
    client = GlanceClient([agent.image_url])
    files = guest.build()
    meta = client.create(name="bad-machine", disk_format="qcow2", container_format="bare",
                         kernel_id=agent.images["kernel"], ramdisk_id=agent.images["ramdisk"],
                         hw_machine_type="no-such-machine-9.9")
    with open(os.path.join(files, "disk.qcow2"), "rb") as f:
        client.upload(meta["id"], f)
    u = str(uuid.uuid4())
    agent.api.build_and_run_instance(agent.host, u, "e2e-refused", FLAVOR, meta["id"])
    rec = agent.wait_state(u, {"active", "error"})
    assert rec["vm_state"] == "error"
    assert rec["fault"].startswith("VirtError: libvirt:"), rec["fault"]
    assert not domain_exists(u)
    assert not os.path.exists(os.path.join(agent.instances_path, u))
    actions = agent.api.get_instance(agent.host, u)
    assert actions["power_state"] == "NOSTATE"


def test_service_heartbeat_shows_up(agent):
    out = subprocess.run([os.path.join(os.path.dirname(os.sys.executable), "computectl"),
                          "--config-file", agent.config_file, "--json", "service-list"],
                         check=True, capture_output=True, text=True).stdout
    services = {s["host"]: s for s in json.loads(out)}
    assert services[agent.host]["status"] == "up"
