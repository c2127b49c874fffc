"""Cold migration and resize between two namespaced hosts, agent to agent
over RPC, with the disks sent over the agents' own authenticated channel;
the guest reports what it sees (vCPUs, memory, disk size) on its console."""
import json
import os
import re
import subprocess

import pytest

from compute.core import exception
from tests.harness import guest
from tests.harness.agent import wait_until
from tests.harness.testbed import two_hosts
from tests.unit import hostile_images as H

SMALL = {"vcpus": 1, "memory_mb": 128, "root_gb": 1}
BIG = {"vcpus": 2, "memory_mb": 192, "root_gb": 2}
GiB = 1024 ** 3
FIRMWARE_LINE = "EFI stub: "      # the kernel's EFI stub, through OVMF's console
UEFI = {"vcpus": 1, "memory_mb": 256, "root_gb": 1}       # OVMF needs 256 MiB


@pytest.fixture(scope="module")
def bed():
    yield from two_hosts("resize",
                         extra_conf={"hA": "[DEFAULT]\nallow_resize_same_host = true\n"})


def hw(console):
    """(cpus, MemTotal kB, root disk bytes) the guest reported at its last boot."""
    cpus, mem, vda = re.findall(r"^TB: hw cpus=(\d+) mem_kb=(\d+) vda_bytes=(\d+)",
                                console, re.M)[-1]
    return int(cpus), int(mem), int(vda)


def settled(agent, u, vm_state):
    return wait_until(lambda: (r := agent.find(u)) and r["task_state"] is None
                      and r["vm_state"] == vm_state and r["host"] == agent.host and r, 180, 0.2,
                      f"{u} {vm_state} on {agent.host}")


def migration(agent, u, mid):
    return next(m for m in agent.api.list_migrations(agent.host, u) if m["id"] == mid)


def boots_since(agent, u, n):
    return agent.wait_console(u, lambda c: guest.boots(c) > n and "TB: bootcount=" in
                              c.rsplit(guest.BOOT_MARKER, 1)[-1], "a new boot")


def test_resize_between_hosts_revert_then_confirm(bed):
    a, b = bed.hosts["hA"].agent, bed.hosts["hB"].agent
    u = a.boot("rs", image=bed.images.images["disk"], flavor=SMALL)
    small = hw(a.console(u))
    assert small[0] == 1 and small[2] == 1 * GiB

    # resize up to hB: the guest there sees the new flavor and the old disk
    mid = a.api.migrate_instance(a.host, u, b.host, flavor=BIG)["migration_id"]
    rec = settled(b, u, "resized")
    assert rec["flavor"]["vcpus"] == 2 and rec["power_state"] == "RUNNING"
    console = boots_since(b, u, 0)
    cpus, mem, vda = hw(console)
    assert cpus == 2 and vda == 2 * GiB and mem > small[1] + 40 * 1024
    assert "TB: bootcount=2" in console                 # hA's disk, written on hA
    src = a.api.get_instance(a.host, u)
    assert src["vm_state"] == "resized" and src["task_state"] is None
    assert os.path.isdir(os.path.join(a.instances_path, u + "_resize"))
    assert not os.path.exists(os.path.join(a.instances_path, u))
    assert bed.hosts["hA"].virsh("list", "--all", "--name").split() == []
    assert migration(a, u, mid)["status"] == "finished"
    assert migration(b, u, mid)["status"] == "finished"
    sent = [e for e in a.api.list_instance_actions(a.host, u)[-1]["events"]
            if e["event"] == "disks_sent"]
    assert sent and sent[0]["result"] == "Success"
    # the overlay travelled, not a flattened disk: hB's rests on hB's base
    # (each host has its own files behind the same path: a backing file
    # that only hA has would not resolve on hB)
    info = json.loads(subprocess.run(["qemu-img", "info", "-U", "--output=json",
                                      os.path.join(b.instances_path, u, "disk")],
                                     check=True, capture_output=True, text=True).stdout)
    base = info["backing-filename"]
    assert base.startswith(b.agent_instances_path + "/_base/")
    assert os.path.exists(os.path.join(b.instances_path, "_base", os.path.basename(base)))

    # revert: back on hA with the old flavor, hB clean
    b.api.revert_resize(b.host, u)
    rec = settled(a, u, "active")
    assert rec["flavor"]["vcpus"] == 1 and rec["host"] == a.host
    console = boots_since(a, u, 1)
    assert hw(console) == small
    assert not os.path.exists(os.path.join(a.instances_path, u + "_resize"))
    wait_until(lambda: b.find(u) is None, 30, 0.2, "hB's record gone")
    assert not os.path.exists(os.path.join(b.instances_path, u))
    assert bed.hosts["hB"].virsh("list", "--all", "--name").split() == []
    assert migration(a, u, mid)["status"] == "reverted"

    # again, and confirm: hA lets go of everything
    mid = a.api.migrate_instance(a.host, u, b.host, flavor=BIG)["migration_id"]
    settled(b, u, "resized")
    b.api.confirm_resize(b.host, u)
    rec = settled(b, u, "active")
    assert rec["flavor"]["root_gb"] == 2 and rec["power_state"] == "RUNNING"
    wait_until(lambda: migration(a, u, mid)["status"] == "confirmed", 30, 0.2, "confirmed")
    assert not os.path.exists(os.path.join(a.instances_path, u + "_resize"))
    assert a.api.get_instance(a.host, u)["host"] == b.host          # moved, kept as deleted
    assert u not in [i["uuid"] for i in a.api.list_instances(a.host)]
    b.api.terminate_instance(b.host, u)
    b.wait_state(u, {"deleted"})


def test_smaller_disk_is_refused_before_anything_changes(bed):
    a, b = bed.hosts["hA"].agent, bed.hosts["hB"].agent
    u = b.boot("shrink", image=bed.images.images["disk"], flavor=BIG, wait_console=False)
    with pytest.raises(exception.InvalidRequest, match="never shrink"):
        b.api.migrate_instance(b.host, u, a.host, flavor=SMALL)
    with pytest.raises(exception.InvalidRequest, match="allow_resize_same_host"):
        b.api.migrate_instance(b.host, u, b.host, flavor={**BIG, "vcpus": 1})
    rec = b.api.get_instance(b.host, u)
    assert rec["task_state"] is None and rec["power_state"] == "RUNNING"
    assert b.api.list_migrations(b.host, u) == []
    assert a.find(u) is None
    b.api.terminate_instance(b.host, u)


def test_cold_migration_of_a_stopped_instance_on_one_host(bed):
    """allow_resize_same_host: the same steps on one host (the agent calls
    itself); a stopped instance stays stopped and keeps its disk."""
    a = bed.hosts["hA"].agent
    u = a.boot("same", image=bed.images.images["disk"], flavor=SMALL)
    a.api.stop_instance(a.host, u)
    settled(a, u, "stopped")
    a.api.migrate_instance(a.host, u, a.host, flavor={**SMALL, "root_gb": 2})
    rec = settled(a, u, "resized")
    assert rec["power_state"] != "RUNNING" and rec["flavor"]["root_gb"] == 2
    a.api.confirm_resize(a.host, u)
    settled(a, u, "stopped")
    assert not os.path.exists(os.path.join(a.instances_path, u + "_resize"))
    n = guest.boots(a.console(u))
    a.api.start_instance(a.host, u)
    console = boots_since(a, u, n)
    assert hw(console)[2] == 2 * GiB and "TB: bootcount=2" in console
    a.api.terminate_instance(a.host, u)


def test_destination_without_room_leaves_the_instance_as_it_was(bed):
    """The destination's claim fails (more memory than it has): the source
    never shuts the guest down, and the destination keeps nothing."""
    a, b = bed.hosts["hA"].agent, bed.hosts["hB"].agent
    u = a.boot("noroom", image=bed.images.images["disk"], flavor=SMALL)
    mid = a.api.migrate_instance(a.host, u, b.host,
                                 flavor={**SMALL, "memory_mb": 1024 * 1024})["migration_id"]
    wait_until(lambda: migration(a, u, mid)["status"] == "error", 60, 0.2, "the refusal")
    message = migration(a, u, mid)["message"]
    assert "memory" in message and "Traceback" not in message
    rec = settled(a, u, "active")
    assert rec["power_state"] == "RUNNING" and rec["flavor"]["memory_mb"] == 128
    assert guest.boots(a.console(u)) == 1                  # never shut down
    assert b.find(u) is None and not os.path.exists(os.path.join(b.instances_path, u))
    assert not os.path.exists(os.path.join(a.instances_path, u + "_resize"))
    a.api.terminate_instance(a.host, u)


@pytest.mark.parametrize("hostile", ["data_file", "backing"])
def test_a_disk_reaching_outside_the_instance_is_refused_and_the_source_keeps_it(bed, hostile):
    """A compromised source sends a qcow2 whose header names a host file
    (an external data file, or a backing file outside the instance): the
    destination refuses it before qemu-img or QEMU opens it."""
    a, b = bed.hosts["hA"].agent, bed.hosts["hB"].agent
    u = a.boot(f"hostile-{hostile}", image=bed.images.images["disk"], flavor=SMALL,
               wait_console=False)
    a.api.stop_instance(a.host, u)
    settled(a, u, "stopped")
    disk = os.path.join(a.instances_path, u, "disk")
    os.unlink(disk)
    if hostile == "data_file":
        H.qcow2_external_data_file(disk)          # names <disk>.data, a host file
    else:
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", "/etc/hostname",
                        "-F", "raw", disk, "1G"], check=True)
    mid = a.api.migrate_instance(a.host, u, b.host)["migration_id"]
    wait_until(lambda: migration(a, u, mid)["status"] == "error", 120, 0.2, "the refusal")
    message = migration(a, u, mid)["message"]
    assert message.startswith("UnsafeImage: received disk disk") and hostile in message
    rec = settled(a, u, "stopped")                            # the source keeps it
    assert rec["host"] == a.host
    assert bed.hosts["hA"].virsh("list", "--all", "--name").split() == [f"instance-{u}"]
    assert b.find(u) is None and not os.path.exists(os.path.join(b.instances_path, u))
    assert bed.hosts["hB"].virsh("list", "--all", "--name").split() == []
    a.api.terminate_instance(a.host, u)
    a.wait_state(u, {"deleted"})


def test_source_agent_killed_mid_resize_puts_the_instance_back(bed):
    """kill -9 of the source agent while it shuts the guest down for the
    move (a guest that ignores ACPI: shutdown_timeout gives the window):
    after its restart the destination holds nothing, and the guest runs
    here again, with its old flavor and its data."""
    a, b = bed.hosts["hA"].agent, bed.hosts["hB"].agent
    image = bed.upload_variant("console=ttyS0 quiet tb.name=killed tb.noacpi=1")
    u = a.boot("killed", image=image, flavor=SMALL)
    mid = a.api.migrate_instance(a.host, u, b.host, flavor=BIG)["migration_id"]
    wait_until(lambda: a.api.get_instance(a.host, u)["task_state"] == "resize_migrating",
               120, 0.05, "the move to begin")
    a.kill_agent()
    a.restart_agent()
    rec = settled(a, u, "active")
    assert rec["power_state"] == "RUNNING" and rec["flavor"]["memory_mb"] == 128
    m = migration(a, u, mid)
    assert m["status"] == "error" and "agent restart" in m["message"]
    console = boots_since(a, u, 1)
    assert "TB: bootcount=2" in console and hw(console)[0] == 1      # its disk, old flavor
    assert b.find(u) is None and not os.path.exists(os.path.join(b.instances_path, u))
    assert not os.path.exists(os.path.join(a.instances_path, u + "_resize"))
    assert f"instance-{u}" not in bed.hosts["hB"].virsh("list", "--all", "--name")
    a.api.terminate_instance(a.host, u)


def test_computectl_resize_confirm_and_migration_list(bed):
    """The operator's commands: resize waits until the instance is resized
    on the destination, resize-confirm until it is settled there."""
    from tests.e2e.test_cli_e2e import ctl
    a, b = bed.hosts["hA"].agent, bed.hosts["hB"].agent
    u = a.boot("cli", image=bed.images.images["disk"], flavor=SMALL, wait_console=False)
    rec = json.loads(ctl(a, "--json", "resize", "--host", a.host, "--dest", b.host, u,
                         "vcpus=2,ram=128,disk=1").stdout)
    assert rec["vm_state"] == "resized" and rec["host"] == b.host
    rec = json.loads(ctl(b, "--json", "resize-confirm", "--host", b.host, u).stdout)
    assert rec["vm_state"] == "active" and rec["flavor"]["vcpus"] == 2
    migs = json.loads(ctl(a, "--json", "migration-list", "--host", a.host,
                          "--instance", u).stdout)
    assert [(m["migration_type"], m["status"]) for m in migs] == [("resize", "confirmed")]
    refused = ctl(b, "resize", "--host", b.host, "--dest", a.host, u, "vcpus=2,ram=128,disk=0",
                  check=False)
    assert refused.returncode != 0 and "never shrink" in refused.stderr
    assert "Traceback" not in refused.stderr
    b.api.terminate_instance(b.host, u)


def test_a_uefi_guest_keeps_its_variables_across_a_hard_reboot_and_a_cold_migration(bed):
    """hw_firmware_type=uefi on q35: OVMF boots the guest (the kernel
    through its EFI stub), which sets a variable in its NVRAM; the
    variable is there after a hard reboot, and on hB after a cold
    migration (the variable store travels with the disks)."""
    a, b = bed.hosts["hA"].agent, bed.hosts["hB"].agent
    image = bed.images.upload_uefi_variant("console=ttyS0 tb.name=uefi tb.efivar=tb-nvram-7")
    u = a.boot("uefi", image=image, flavor=UEFI, wait_console=False)
    console = a.wait_console(u, lambda c: "TB: efivar-set=tb-nvram-7" in c,
                             "the variable set", timeout=240)
    assert FIRMWARE_LINE in console and "TB: efi variables=" in console
    assert os.path.getsize(os.path.join(a.instances_path, u, "nvram.fd")) > 0
    a.api.reboot_instance(a.host, u, "HARD")
    a.wait_console(u, lambda c: guest.boots(c) > 1 and "TB: efivar=tb-nvram-7" in
                   c.rsplit(guest.BOOT_MARKER, 1)[-1], "the variable after a reboot", 240)
    mid = a.api.migrate_instance(a.host, u, b.host)["migration_id"]
    settled(b, u, "resized")
    b.wait_console(u, lambda c: "TB: efivar=tb-nvram-7" in c, "the variable on hB", 240)
    assert FIRMWARE_LINE in b.console(u)
    b.api.confirm_resize(b.host, u)
    wait_until(lambda: migration(a, u, mid)["status"] == "confirmed", 60, 0.2, "confirmed")
    b.api.terminate_instance(b.host, u)
    b.wait_state(u, {"deleted"})
