"""Live migration between two namespaced hosts, agent to agent over RPC,
with real libvirtds and a guest that keeps counting."""
import functools
import hashlib
import os
import re
import uuid as uuidlib

import pytest

from compute.core import exception
from tests.harness import guest
from tests.harness.agent import wait_until
from tests.harness.serial import SHELL_READY
from tests.harness.testbed import two_hosts
from virt.libvirt import console_ports

# every guest of this bed has a serial console server on its host's
# management address (the bed's HostAgent sets serial_listen)
SERIAL = "[libvirt]\nserial_console = true\n"


@pytest.fixture(scope="module")
def bed():
    yield from two_hosts("mig", extra_conf={"hA": SERIAL, "hB": SERIAL})


def on_host(agent, uuid_):
    """The record on agent's host once the instance settled there."""
    rec = agent.find(uuid_)
    return rec if rec and rec["task_state"] is None and rec["host"] == agent.host else None


def migrated_event(agent, uuid_):
    """The source's note of a finished live migration."""
    events = agent.api.list_instance_actions(agent.host, uuid_)[-1]["events"]
    return next(e["details"] for e in events if e["event"] == "migrated")


def test_block_live_migration_keeps_the_guest_running(bed):
    a, b = bed.hosts["hA"].agent, bed.hosts["hB"].agent
    u = a.boot("mig", image=bed.images.images["disk"], wait_console=False)
    a.wait_console(u, lambda c: guest.last_tick(c) >= 3, "tick 3")
    a.api.live_migrate_instance(a.host, u, b.host, block_migration=True)
    rec = wait_until(lambda: on_host(b, u), 120, 0.2, "the instance on hB")
    assert rec["vm_state"] == "active" and rec["power_state"] == "RUNNING"
    checked = [e["details"] for e in a.api.list_instance_actions(a.host, u)[-1]["events"]
               if e["event"] == "destination_checked"]
    assert checked and "'block_migration': True" in checked[0]
    assert "over TLS" in migrated_event(a, u)            # the bed's hosts have certificates
    # the source unplugs, cleans up and marks its record moved just after
    src = wait_until(lambda: (r := a.api.get_instance(a.host, u))["host"] == b.host and r,
                     30, 0.2, "hA's record to name hB")
    assert src["vm_state"] == "active"
    before = a.console(u) if os.path.exists(os.path.join(a.instances_path, u)) else ""
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


INCOMPATIBLE_CPU = ("<cpu mode='custom' match='exact'><model fallback='forbid'>qemu64</model>"
                    "<feature policy='require' name='avx512f'/></cpu>")


def _serial_target(host, uuid_):
    return console_ports.serial_target(host.virsh("dumpxml", f"instance-{uuid_}"))


def test_the_serial_console_follows_a_live_migration(bed):
    """The destination holds a port for the arriving guest; the guest's
    console server moves there with it, and the same running shell answers
    through the proxy from the new host."""
    hA, hB = bed.hosts["hA"], bed.hosts["hB"]
    a, b = hA.agent, hB.agent
    bed.start_console_proxy()
    image = bed.upload_variant("console=ttyS0 quiet tb.name=mcon tb.shell=1")
    u = a.boot("mcon", image=image, wait_console=False)
    a.wait_console(u, lambda c: SHELL_READY in c, "the shell")
    assert _serial_target(hA, u)[0] == hA.mgmt_ip
    out = bed.console(a.api.get_serial_console(a.host, u)["url"], "echo TB-A-$((40+2))\n")
    assert "TB-A-42" in out
    a.api.live_migrate_instance(a.host, u, b.host, block_migration=True)
    wait_until(lambda: on_host(b, u), 120, 0.2, "the instance on hB")
    assert _serial_target(hB, u)[0] == hB.mgmt_ip
    out = bed.console(b.api.get_serial_console(b.host, u)["url"], "echo TB-B-$((40+3))\n")
    assert "TB-B-43" in out
    assert "TB: boot-ok" not in b.console(u)                 # the same shell, moved
    b.api.terminate_instance(b.host, u)
    b.wait_state(u, {"deleted"})


PCR = 16                                      # the debug PCR, zero at every boot
UEFI = {"vcpus": 1, "memory_mb": 256, "root_gb": 1}       # OVMF needs 256 MiB
TPM_VALUE = b"compute-agent vTPM test value 32"


def pcr_extend_command(pcr, digest):
    """The shell line that sends TPM2_PCR_Extend(pcr, sha256 digest) to
    /dev/tpm0 in one write, with an empty password session (TPM2 part 3)."""
    body = (pcr.to_bytes(4, "big") + (9).to_bytes(4, "big")
            + bytes.fromhex("40000009" "0000" "00" "0000")       # TPM_RS_PW, no auth
            + (1).to_bytes(4, "big") + bytes.fromhex("000b") + digest)
    cmd = bytes.fromhex("8002") + (10 + len(body)).to_bytes(4, "big") \
        + bytes.fromhex("00000182") + body
    escaped = "".join(f"\\x{b:02x}" for b in cmd)
    return (f"exec 3<>/dev/tpm0; printf '{escaped}' >&3; "
            "dd bs=4096 count=1 <&3 2>/dev/null | hexdump -C | head -1; exec 3>&-")


def test_a_vtpm_keeps_its_state_across_a_live_migration(bed):
    """A UEFI guest with hw_tpm_version=2.0 has /dev/tpm0 (swtpm beside
    QEMU); a PCR it extends on hA reads the same on hB after a block live
    migration, so the TPM's state moved with the guest; and the variable it
    set in its NVRAM on hA is there when it boots again on hB (QEMU writes
    the migrated variable store into the destination's file)."""
    hA, hB = bed.hosts["hA"], bed.hosts["hB"]
    a, b = hA.agent, hB.agent
    bed.start_console_proxy()
    image = bed.images.upload_uefi_variant(
        "console=ttyS0 quiet tb.name=tpm tb.shell=1 tb.efivar=kept-7",
        hw_tpm_version="2.0", hw_tpm_model="tpm-crb")
    u = a.boot("tpm", image=image, wait_console=False, flavor=UEFI)
    a.wait_console(u, lambda c: SHELL_READY in c and "TB: efivar-set=kept-7" in c,
                   "the shell", 240)
    assert "<tpm model='tpm-crb'>" in hA.virsh("dumpxml", f"instance-{u}")
    url = a.api.get_serial_console(a.host, u)["url"]
    out = bed.console(url, pcr_extend_command(PCR, TPM_VALUE) + "\n"
                      f"echo PCR=$(cat /sys/class/tpm/tpm0/pcr-sha256/{PCR})\n")
    assert "80 02 00 00 00 13 00 00  00 00" in out, out          # TPM_RC_SUCCESS
    expected = hashlib.sha256(bytes(32) + TPM_VALUE).hexdigest()
    assert f"pcr={expected}" in out.lower(), out
    a.api.live_migrate_instance(a.host, u, b.host, block_migration=True)
    wait_until(lambda: on_host(b, u), 180, 0.2, "the instance on hB")

    def pcr_on_hb():
        # the console of a guest that just arrived may show nothing for a
        # moment: ask again (a new one-time URL each time) until it answers
        out = bed.console(b.api.get_serial_console(b.host, u)["url"],
                          f"echo PCR=$(cat /sys/class/tpm/tpm0/pcr-sha256/{PCR})\n")
        return out if re.search(r"pcr=[0-9a-f]{64}", out.lower()) else None
    out = wait_until(pcr_on_hb, 120, 1, "the guest on hB to answer on its console")
    assert f"pcr={expected}" in out.lower(), out
    b.api.reboot_instance(b.host, u, "HARD")
    b.wait_console(u, lambda c: "TB: efivar=kept-7" in c, "the variable on hB", 240)
    with pytest.raises(exception.InvalidRequest, match="vTPM"):
        b.api.migrate_instance(b.host, u, a.host)
    b.api.terminate_instance(b.host, u)
    b.wait_state(u, {"deleted"})


def test_destination_refuses_a_cpu_its_hypervisor_cannot_provide(bed):
    """The destination asks its libvirt (compareHypervisorCPU); a CPU that
    passes goes on to the source's check, which refuses an instance that
    is not migrating from there."""
    a, b = bed.hosts["hA"].agent, bed.hosts["hB"].agent
    record = {"uuid": str(uuidlib.uuid4()), "display_name": "cpu", "vm_state": "active",
              "flavor": {"vcpus": 1, "memory_mb": 64, "root_gb": 1}, "image_ref": "x",
              "image_meta": {}, "disk_formats": {}, "networks": [], "metadata": {},
              "security_groups": []}
    ask = functools.partial(b.api.check_can_live_migrate_destination, b.host,
                            instance=record, block_migration=True,
                            probe=".shared-probe-" + "0" * 32, source_host=a.host)
    with pytest.raises(exception.MigrationPreCheckError, match="avx512f"):
        ask(cpu=INCOMPATIBLE_CPU)
    with pytest.raises(exception.MigrationPreCheckError, match="unreadable"):
        ask(cpu="<cpu><model>qemu64")
    with pytest.raises(exception.InstanceNotFound):
        ask(cpu=INCOMPATIBLE_CPU.replace("avx512f", "sse2"))
    assert not os.path.exists(os.path.join(b.instances_path, record["uuid"]))


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
    # the source's own check (called back by hB) said why
    assert "use a block migration" in a.log()
    a.api.terminate_instance(a.host, u)
    a.wait_state(u, {"deleted"})          # not still deleting while the next test spawns


def wait_settled_on(agent, uuid_, timeout=None):
    """The record once no task runs; by default waiting past the agents'
    rpc_peer_timeout (300 s), so a peer that hangs rather than fails (a
    libvirtd going down under load) is the agent's to time out."""
    return wait_until(lambda: (r := agent.api.get_instance(agent.host, uuid_))["task_state"]
                      is None and r, timeout or 330, 0.2, f"{uuid_} to settle on {agent.host}")


def assert_stayed_on_source(bed, u, dest_libvirtd_up=True):
    a, b = bed.hosts["hA"].agent, bed.hosts["hB"].agent
    try:
        rec = wait_settled_on(a, u)
    except AssertionError as e:
        raise AssertionError(f"{e}\n{a.diagnostics(u)}\n{b.diagnostics(u)}") from None
    assert rec["host"] == a.host and rec["power_state"] == "RUNNING", a.diagnostics(u)
    n = guest.last_tick(a.console(u))
    a.wait_console(u, lambda c: guest.last_tick(c) > n + 1, "ticks on hA after the failure")
    with pytest.raises(exception.InstanceNotFound):
        b.api.get_instance(b.host, u)
    assert not os.path.exists(os.path.join(b.instances_path, u))
    if dest_libvirtd_up:
        assert f"instance-{u}" not in bed.hosts["hB"].virsh("list", "--all", "--name")


def test_abort_mid_way_leaves_the_guest_on_the_source(bed):
    a, b = bed.hosts["hA"].agent, bed.hosts["hB"].agent
    u = a.boot("abort", image=bed.images.images["disk"], wait_console=False)
    a.wait_console(u, lambda c: guest.last_tick(c) >= 2, "tick 2")
    bed.hosts["hA"].virsh("migrate-setspeed", f"instance-{u}", "1")     # 1 MiB/s: slow
    a.api.live_migrate_instance(a.host, u, b.host, block_migration=True)
    wait_until(lambda: (r := b.find(u)) and r["task_state"] == "migrating", 60, 0.2,
               "the destination to be prepared")
    wait_until(lambda: a.api.get_instance(a.host, u)["progress"] is not None, 30, 0.2,
               "progress")
    a.api.live_migration_abort(a.host, u)
    assert_stayed_on_source(bed, u)
    actions = a.api.list_instance_actions(a.host, u)
    assert actions[-1]["message"] == "Error"
    a.api.terminate_instance(a.host, u)
    a.wait_state(u, {"deleted"})


def test_destination_libvirtd_down_leaves_the_guest_on_the_source(bed):
    a, b = bed.hosts["hA"].agent, bed.hosts["hB"].agent
    u = a.boot("down", image=bed.images.images["disk"], wait_console=False)
    a.wait_console(u, lambda c: guest.last_tick(c) >= 2, "tick 2")
    bed.hosts["hB"].stop_libvirtd()                 # last test of the module
    a.api.live_migrate_instance(a.host, u, b.host, block_migration=True)
    assert_stayed_on_source(bed, u, dest_libvirtd_up=False)
    a.api.terminate_instance(a.host, u)


@pytest.fixture(scope="module")
def shared_bed():
    yield from two_hosts("mig", shared_instances=True)


def test_shared_storage_live_migration(shared_bed):
    a, b = shared_bed.hosts["hA"].agent, shared_bed.hosts["hB"].agent
    u = a.boot("shared", image=shared_bed.images.images["disk"], wait_console=False)
    a.wait_console(u, lambda c: guest.last_tick(c) >= 3, "tick 3")
    disk = os.path.join(a.instances_path, u, "disk")
    inode = os.stat(disk).st_ino
    a.api.live_migrate_instance(a.host, u, b.host, block_migration=False)
    rec = wait_until(lambda: on_host(b, u), 120, 0.2, "the instance on hB")
    assert rec["power_state"] == "RUNNING"
    assert shared_bed.hosts["hA"].virsh("list", "--all", "--name").split() == []
    assert os.stat(os.path.join(b.instances_path, u, "disk")).st_ino == inode  # not copied
    n = guest.last_tick(b.console(u))
    console = b.wait_console(u, lambda c: guest.last_tick(c) > n + 2, "ticks on hB")
    ticks = [int(x) for x in re.findall(r"^TB: tick (\d+) ", console, re.M)]
    assert ticks == list(range(1, len(ticks) + 1))    # one console, never restarted
    assert console.count("TB: boot-ok") == 1
    # the pause as the destination's libvirt measured it (the guest's own
    # clock stops while it is paused, so it cannot tell)
    info = shared_bed.hosts["hB"].virsh("domjobinfo", "--completed", f"instance-{u}")
    downtime_ms = int(re.search(r"Total downtime:\s+(\d+)\s+ms", info).group(1))
    print(f"downtime (libvirt): {downtime_ms} ms")
    assert 0 < downtime_ms < 2000
    events = b.api.list_instance_actions(b.host, u)
    assert events[-1]["action"] == "live_migration_destination"
    assert "over TLS" in migrated_event(a, u)
    b.api.terminate_instance(b.host, u)
