"""Snapshots end to end: real guests, real libvirt snapshots and commits, real
uploads to compute-images, and the snapshot booted as a new instance that
finds on its disk what the first guest wrote."""
import os
import re
import shutil
import subprocess
import tempfile

import libvirt
import pytest

from compute.core import exception
from imagecache import qemu_img
from imagecache.glance import GlanceClient
from tests.harness import guest
from tests.harness.agent import AGENT_USER, LIBVIRT_URI, Agent, wait_until
from tests.harness.faulty_images import FaultyProxy
from tests.harness.guest import last_tick
from virt.libvirt import live_snapshot as virt_snapshot
from virt.libvirt.xml.domain import Domain


def start_agent(extra_conf=""):
    a = Agent(extra_conf=extra_conf)
    a.proxy = FaultyProxy(a.image_url)
    a.agent_image_url = a.proxy.url
    a.start()
    a.upload_test_guest("console=ttyS0 quiet tb.name=snap")
    return a


@pytest.fixture(scope="module")
def agent():
    a = start_agent()
    yield a
    a.close()
    a.proxy.stop()


def snapshot(agent, uuid_, name="snap"):
    """Snapshot and wait until the instance settles; the image id and the
    task states seen on the way."""
    image_id = agent.api.snapshot_instance(agent.host, uuid_, name)["image_id"]
    seen = []

    def settled():
        rec = agent.api.get_instance(agent.host, uuid_)
        if rec["task_state"] and rec["task_state"] not in seen:
            seen.append(rec["task_state"])
        return rec if rec["task_state"] is None else None
    wait_until(settled, 120, 0.02, "snapshot to finish")
    return image_id, seen


def images(agent):
    return {i["id"]: i for i in GlanceClient([agent.image_url])._request(
        "GET", "/v2/images").json()["images"]}


def boot_from(agent, image_id):
    u = agent.boot("from-snap", image=image_id)
    console = agent.wait_console(u, lambda c: "TB: bootcount=" in c, "boot from the snapshot")
    return u, console


def test_live_snapshot_keeps_the_guest_running_and_boots(agent):
    u = agent.boot("live")
    before = agent.wait_console(u, lambda c: re.search(r"^TB: tick 3 ", c, re.M), "tick 3")
    log = os.path.join(agent.instances_path, u, "console.log")
    with guest.TickWatcher(log) as ticks:           # by the host's clock
        image_id, seen = snapshot(agent, u)
        agent.wait_console(u, lambda c: len(re.findall(r"^TB: tick ", c, re.M)) >=
                           len(re.findall(r"^TB: tick ", before, re.M)) + 3,
                           "ticks after the snapshot")
        # the watcher's own three: a tick that came between `before` and
        # the watcher's start is in the console but not among its arrivals
        wait_until(lambda: len(ticks.arrivals) >= 3, 30, 0.1, "three ticks watched")
    order = ["image_snapshot", "image_pending_upload", "image_uploading"]
    assert seen and seen == [t for t in order if t in seen]     # polled: some may be missed
    assert images(agent)[image_id]["status"] == "active"
    meta = images(agent)[image_id]
    assert meta["image_type"] == "snapshot" and meta["instance_uuid"] == u
    assert meta["kernel_id"] == agent.images["kernel"]
    assert agent.console(u).count("TB: boot-ok") == 1
    assert len(ticks.arrivals) >= 3 and max(ticks.gaps()) < 2.5     # 1 s tick + ~1 s stalled
    actions = agent.api.list_instance_actions(agent.host, u)
    assert [e["event"] for e in actions[-1]["events"]][:2] == ["compute_snapshot",
                                                               "snapshot_live"]
    u2, console = boot_from(agent, image_id)
    assert "TB: bootcount=2" in console            # the first guest's boot, on disk
    assert int(re.search(r"TB: disk-tick=(\d+)", console).group(1)) >= 3
    assert not os.listdir(os.path.join(agent.instances_path, "snapshots"))
    for x in (u, u2):
        agent.api.terminate_instance(agent.host, x)


def test_cold_snapshot_of_a_stopped_guest(agent):
    u = agent.boot("cold")
    agent.wait_console(u, lambda c: re.search(r"^TB: tick 2 ", c, re.M), "tick 2")
    agent.api.stop_instance(agent.host, u)
    agent.wait_state(u, {"stopped"})
    image_id, _ = snapshot(agent, u)
    rec = agent.api.get_instance(agent.host, u)
    assert rec["vm_state"] == "stopped" and rec["power_state"] == "SHUTDOWN"
    actions = agent.api.list_instance_actions(agent.host, u)
    assert "snapshot_cold" in [e["event"] for e in actions[-1]["events"]]
    u2, console = boot_from(agent, image_id)
    assert "TB: bootcount=2" in console
    for x in (u, u2):
        agent.api.terminate_instance(agent.host, x)


def test_snapshot_without_room_is_refused_and_changes_nothing(agent):
    u = agent.boot("full")
    small = tempfile.mkdtemp(prefix="ca-small-")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", small], check=True)
    snaps = os.path.join(agent.instances_path, "snapshots")
    try:
        os.makedirs(snaps, exist_ok=True)
        subprocess.run(["mount", "--bind", small, snaps], check=True)
        known = set(images(agent))
        with pytest.raises(exception.InsufficientStorage, match="MiB free"):
            agent.api.snapshot_instance(agent.host, u, "too-big")
        rec = agent.api.get_instance(agent.host, u)
        assert rec["task_state"] is None and rec["vm_state"] == "active"
        assert os.listdir(snaps) == [] and set(images(agent)) == known
        n = len(re.findall(r"^TB: tick ", agent.console(u), re.M))
        agent.wait_console(u, lambda c: len(re.findall(r"^TB: tick ", c, re.M)) > n + 1,
                           "the guest to keep ticking")
    finally:
        subprocess.run(["umount", snaps], check=False)
        subprocess.run(["umount", small], check=False)
        os.rmdir(small)
    agent.api.terminate_instance(agent.host, u)


def test_agent_killed_during_upload_leaves_no_half_image(agent):
    u = agent.boot("killed")
    known = set(images(agent))
    agent.proxy.stall_uploads = True
    try:
        image_id = agent.api.snapshot_instance(agent.host, u, "half")["image_id"]
        assert agent.proxy.stalled.wait(60)
        assert agent.api.get_instance(agent.host, u)["task_state"] == "image_uploading"
        agent.kill_agent()
    finally:
        agent.proxy.stall_uploads = False
    agent.restart_agent()
    rec = agent.wait_settled(u)
    assert rec["vm_state"] == "active" and rec["power_state"] == "RUNNING"
    assert image_id not in images(agent) and set(images(agent)) == known
    assert os.listdir(os.path.join(agent.instances_path, "snapshots")) == []
    agent.api.terminate_instance(agent.host, u)


def left_on_overlay(agent, u, kill=True):
    """Kill the agent (unless kill is False: as a failed merge would) and
    leave the guest as a kill between freeze and merge would: running on
    the snapshot overlay; then let it tick on it.
    The last tick surely on its disk: the guest prints tick N before it
    writes and syncs it, so a destroy can lose N but never N - 1, and
    N - 1 >= on_overlay + 2 was written on the overlay."""
    if kill:
        agent.kill_agent()
    dom = libvirt.open(LIBVIRT_URI).lookupByUUIDString(u)
    overlay = os.path.join(agent.instances_path, u, virt_snapshot.OVERLAY)
    # the overlay as the agent makes it: its own file
    qemu_img.create_overlay_in_use(overlay, os.path.join(agent.instances_path, u, "disk"),
                                   "qcow2")
    shutil.chown(overlay, AGENT_USER, AGENT_USER)
    dom.snapshotCreateXML(virt_snapshot.snapshot_xml(
        Domain.parse(dom.XMLDesc()).devices.disks, "vda", overlay),
        libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY
        | libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_NO_METADATA
        | libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_REUSE_EXT)
    on_overlay = last_tick(agent.console(u))
    agent.wait_console(u, lambda c: last_tick(c) >= on_overlay + 3, "ticks on the overlay")
    return dom, overlay, last_tick(agent.console(u)) - 1


def root_sources(dom, flags=0):
    return [d.source_file for d in Domain.parse(dom.XMLDesc(flags)).devices.disks
            if d.target_dev == "vda"]


def test_a_guest_left_on_its_snapshot_overlay_is_merged_back_at_start(agent):
    u = agent.boot("overlay-run")
    agent.wait_console(u, lambda c: last_tick(c) >= 2, "tick 2")
    dom, overlay, written = left_on_overlay(agent, u)
    disk = os.path.join(agent.instances_path, u, "disk")
    assert root_sources(dom) == [overlay]
    agent.restart_agent()
    wait_until(lambda: not os.path.exists(overlay), 60, 0.2, "the overlay merged back")
    assert root_sources(dom) == [disk]
    assert root_sources(dom, libvirt.VIR_DOMAIN_XML_INACTIVE) == [disk]
    # a hard reboot boots from the definition the agent writes: the root
    # disk alone must hold what the guest wrote while on the overlay
    agent.api.reboot_instance(agent.host, u, "HARD")
    console = agent.wait_console(u, lambda c: c.count("TB: bootcount=") == 2, "reboot")
    assert int(re.findall(r"TB: disk-tick=(\d+)", console)[-1]) >= written
    agent.api.terminate_instance(agent.host, u)


@pytest.mark.parametrize("operation", ["hard_reboot", "stop_start"])
def test_a_failed_merge_never_drops_writes_whatever_comes_next(agent, operation):
    """The guest stays on its overlay with the agent running (a merge that
    failed); an operation that boots it from the record merges it first."""
    u = agent.boot(f"overlay-{operation}")
    agent.wait_console(u, lambda c: last_tick(c) >= 2, "tick 2")
    dom, overlay, written = left_on_overlay(agent, u, kill=False)
    assert root_sources(dom) == [overlay]
    if operation == "hard_reboot":
        agent.api.reboot_instance(agent.host, u, "HARD")
    else:
        agent.api.stop_instance(agent.host, u)
        wait_until(lambda: agent.api.get_instance(agent.host, u)["vm_state"] == "stopped",
                   120, 0.2, "stopped")
        agent.api.start_instance(agent.host, u)
    console = agent.wait_console(u, lambda c: c.count("TB: bootcount=") == 2, operation)
    assert int(re.findall(r"TB: disk-tick=(\d+)", console)[-1]) >= written
    assert not os.path.exists(overlay)
    disk = os.path.join(agent.instances_path, u, "disk")
    assert root_sources(dom) == [disk]
    agent.api.terminate_instance(agent.host, u)


def test_a_guest_shut_off_on_its_snapshot_overlay_is_merged_offline(agent):
    u = agent.boot("overlay-off")
    agent.wait_console(u, lambda c: last_tick(c) >= 2, "tick 2")
    dom, overlay, written = left_on_overlay(agent, u)
    dom.destroy()                     # the host went down with the agent
    disk = os.path.join(agent.instances_path, u, "disk")
    assert root_sources(dom, libvirt.VIR_DOMAIN_XML_INACTIVE) == [overlay]
    agent.restart_agent()
    wait_until(lambda: not os.path.exists(overlay), 60, 0.2, "the overlay merged back")
    assert root_sources(dom, libvirt.VIR_DOMAIN_XML_INACTIVE) == [disk]
    agent.wait_settled(u)
    if agent.api.get_instance(agent.host, u)["power_state"] != "RUNNING":
        agent.api.start_instance(agent.host, u)
    console = agent.wait_console(u, lambda c: c.count("TB: bootcount=") == 2, "start")
    assert int(re.findall(r"TB: disk-tick=(\d+)", console)[-1]) >= written
    agent.api.terminate_instance(agent.host, u)


def test_cold_snapshot_of_a_running_guest_restores_it():
    a = start_agent("[DEFAULT]\ndisable_live_snapshot = true\n")
    try:
        u = a.boot("cold-run")
        a.wait_console(u, lambda c: re.search(r"^TB: tick 2 ", c, re.M), "tick 2")
        image_id, _ = snapshot(a, u)
        rec = a.api.get_instance(a.host, u)
        assert rec["vm_state"] == "active" and rec["power_state"] == "RUNNING"
        n = len(re.findall(r"^TB: tick ", a.console(u), re.M))
        console = a.wait_console(u, lambda c: len(re.findall(r"^TB: tick ", c, re.M)) > n + 1,
                                 "ticks after the restore")
        assert console.count("TB: boot-ok") == 1      # restored, not rebooted
        u2, console2 = boot_from(a, image_id)
        assert "TB: bootcount=2" in console2
    finally:
        a.close()
        a.proxy.stop()
