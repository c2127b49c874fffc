"""Volumes on the multi-host test bed: a tgtd iSCSI target with CHAP and a
single-node Ceph cluster on the management network, the guests' QEMUs
logging in with their own clients (libiscsi, librbd) using credentials
held in libvirt secrets.  What a guest writes to a volume of either kind
is on the storage and is read back by another guest on another host;
a wrong CHAP secret is a clear fault and the guest is as it was; the
agent killed at each step of an attach or a detach leaves the volume
attached or detached, never half."""
import json
import os
import re
import subprocess
import uuid

import pytest

from compute.core import exception
from tests.harness import guest, serial
from tests.harness import invariants as inv
from tests.harness.agent import BIN, wait_until
from tests.harness.ceph import CephCluster
from tests.harness.iscsi import IscsiTarget
from tests.harness.testbed import MGMT, two_hosts

# the storage servers are on the management network, and only there
SERIAL = (f"[DEFAULT]\nvolume_allowed_networks = {MGMT}.0/24\n"
          "[libvirt]\nserial_console = true\n")
SMALL = {"vcpus": 1, "memory_mb": 128, "root_gb": 1}


@pytest.fixture(scope="module")
def bed():
    beds = two_hosts("vol", extra_conf={"hA": SERIAL, "hB": SERIAL})
    tb = next(beds)
    tb.start_console_proxy()
    tb.iscsi = IscsiTarget(tb.sw, f"{MGMT}.1", tb.dir)
    tb.shell_image = tb.images.upload_variant("console=ttyS0 quiet tb.name=vol tb.shell=1")
    try:
        yield tb
    finally:
        tb.iscsi.stop()
        beds.close()


@pytest.fixture(scope="module")
def ceph(bed):
    cluster = CephCluster(bed.sw, f"{MGMT}.1", bed.dir)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(params=["iscsi", "rbd"])
def storage(request, bed):
    """(make a volume: name -> (id, connection info, where), read its first bytes)."""
    if request.param == "iscsi":
        return (lambda name, **kw: bed.iscsi.volume(name, user="tbuser",
                                                    password="tb-chap-secret", **kw),
                bed.iscsi.read)
    cluster = request.getfixturevalue("ceph")
    return cluster.volume, cluster.read


def shell_guest(bed, host):
    a = bed.hosts[host].agent
    u = a.boot("vol", image=bed.shell_image, flavor=SMALL, wait_console=False)
    a.wait_console(u, lambda c: serial.SHELL_READY in c, "the shell")
    return a, u


def device_of(volume_id):
    """Shell: the guest's /dev name of the disk whose serial is the
    volume's (virtio keeps 20 characters of it), or nothing."""
    return (f"for d in /sys/block/vd*; do [ \"$(cat $d/serial)\" = \"{volume_id[:20]}\" ] "
            "&& echo /dev/${d##*/}; done")


def wait_dev(volume_id):
    """Shell: D set to the volume's device once the guest sees it (a
    hot-plugged disk appears a second or so after the attach)."""
    return (f"D=; for i in 1 2 3 4 5 6 7 8 9 10; do D=$({device_of(volume_id)}); "
            "[ -n \"$D\" ] && break; sleep 1; done")


def in_guest(bed, agent, u, command, wanted):
    """What the guest's shell prints for command, typed through the bed's
    console proxy; wanted must be in it."""
    out = bed.console(agent.api.get_serial_console(agent.host, u)["url"], command + "\n",
                      linger=12)
    assert wanted in out, out
    return out


def computectl(agent, *args):
    run = subprocess.run([os.path.join(BIN, "computectl"), "--config-file", agent.config_file,
                          *args], capture_output=True, text=True, timeout=300)
    return run


def secrets(host):
    return [line for line in host.virsh("secret-list").splitlines() if "compute-agent" in line]


def settled(agent, u):
    return wait_until(lambda: (r := agent.find(u)) and r["task_state"] is None and r, 120,
                      0.3, f"{u} settled")


def test_a_volume_keeps_what_one_guest_wrote_for_a_guest_on_another_host(bed, storage,
                                                                        tmp_path):
    hA, hB = bed.hosts["hA"], bed.hosts["hB"]
    make, read = storage
    vol, conn, where = make("keep-" + uuid.uuid4().hex[:8])
    kind = conn["driver_volume_type"]
    secret = conn["data"].get("auth_password") or conn["data"]["key"]
    a, u1 = shell_guest(bed, "hA")
    conn_file = tmp_path / "conn.json"
    conn_file.write_text(json.dumps(conn))
    run = computectl(a, "volume-attach", "--host", a.host, "--volume", vol, "--connection",
                     str(conn_file), u1)
    assert run.returncode == 0, run.stderr
    assert "as vdd" in run.stdout
    assert a.find(u1)["volumes"] == [vol]
    xml = hA.virsh("dumpxml", f"instance-{u1}")
    assert f"protocol='{kind}'" in xml and secret not in xml
    assert len(secrets(hA)) == 1
    assert secret not in hA.run("ps", "-eo", "args")               # never on a command line
    out = in_guest(bed, a, u1, f"{wait_dev(vol)}; echo MARK-$((6*7)) | dd of=$D bs=512 "
                               "count=1 conv=fsync 2>/dev/null; echo TB-WROTE-$D-$((1+1))",
                   "-2")
    assert "TB-WROTE-/dev/vd" in out
    assert read(where, 7) == b"MARK-42"                              # on the storage

    run = computectl(a, "volume-detach", "--host", a.host, "--volume", vol, u1)
    assert run.returncode == 0, run.stderr
    assert a.find(u1)["volumes"] == []
    assert f"protocol='{kind}'" not in hA.virsh("dumpxml", f"instance-{u1}")
    assert secrets(hA) == []
    out = in_guest(bed, a, u1, f"echo DEVS-[$({device_of(vol)})]-$((2+3))", "-5")
    assert "DEVS-[]-5" in out                                        # gone in the guest too

    b, u2 = shell_guest(bed, "hB")
    assert b.api.attach_volume(b.host, u2, vol, conn)["device"] == "vdd"
    assert settled(b, u2)["volumes"] == [vol]
    out = in_guest(bed, b, u2, f"{wait_dev(vol)}; dd if=$D bs=7 count=1 2>/dev/null; "
                               "echo; echo TB-READ-$((3+4))", "TB-READ-7")
    assert "MARK-42" in out
    b.api.terminate_instance(b.host, u2)                 # delete detaches, keeps the data
    b.wait_state(u2, {"deleted"})
    assert secrets(hB) == []
    assert read(where, 7) == b"MARK-42"
    a.api.terminate_instance(a.host, u1)
    a.wait_state(u1, {"deleted"})


def test_a_wrong_chap_secret_is_a_clear_fault_and_the_guest_is_as_it_was(bed):
    hA = bed.hosts["hA"]
    vol, conn, _ = bed.iscsi.volume("vol2", user="tbuser2", password="right-secret")
    a, u = shell_guest(bed, "hA")
    elsewhere = {**conn, "data": {**conn["data"], "target_portal": "127.0.0.1:3260"}}
    with pytest.raises(exception.InvalidRequest, match="not on the networks"):
        a.api.attach_volume(a.host, u, vol, elsewhere)            # the host's own loopback
    conn["data"]["auth_password"] = "wrong-secret"
    a.api.attach_volume(a.host, u, vol, conn)
    rec = settled(a, u)
    assert (rec["vm_state"], rec["power_state"], rec["volumes"]) == ("active", "RUNNING", [])
    events = a.api.list_instance_actions(a.host, u)[-1]["events"]
    assert any("Authentication failure" in (e["details"] or "") for e in events), events
    assert secrets(hA) == []
    in_guest(bed, a, u, "echo TB-ALIVE-$((4+5))", "TB-ALIVE-9")
    a.api.terminate_instance(a.host, u)
    a.wait_state(u, {"deleted"})


@pytest.mark.parametrize("step", ["attach_volume.attached", "detach_volume.detached"])
def test_an_agent_killed_mid_way_finishes_the_attach_or_detach(bed, step):
    hA = bed.hosts["hA"]
    vol, conn, _ = bed.iscsi.volume(step.split(".")[0].replace("_", "-"), user="u3",
                                    password="p3p3")
    a, u = shell_guest(bed, "hA")
    if step.startswith("detach"):
        a.api.attach_volume(a.host, u, vol, conn)
        assert settled(a, u)["volumes"] == [vol]
        operation = lambda: a.api.detach_volume(a.host, u, vol)  # noqa: E731
    else:
        operation = lambda: a.api.attach_volume(a.host, u, vol, conn)  # noqa: E731
    a.kill_agent()
    a.restart_agent(crash_at=step)
    operation()
    assert a.wait_crashed() == -9
    a.restart_agent()
    rec = settled(a, u)
    attached = step.startswith("attach")
    assert rec["volumes"] == ([vol] if attached else []), rec
    assert ("protocol='iscsi'" in hA.virsh("dumpxml", f"instance-{u}")) == attached
    assert len(secrets(hA)) == (1 if attached else 0)
    found = in_guest(bed, a, u, f"{wait_dev(vol) if attached else 'true'}; "
                                f"echo DEVS-[$({device_of(vol)})]-$((1+7))", "-8")
    assert ("DEVS-[/dev/vd" in found) == attached, found
    a.api.terminate_instance(a.host, u)
    a.wait_state(u, {"deleted"})
    assert secrets(hA) == []


def ticks_on(read, where):
    """The last tick the guest's writer put at the volume's start."""
    text = read(where, 16).split(b"\n")[0].decode(errors="replace")
    return int(text[5:]) if text.startswith("TICK-") and text[5:].isdigit() else 0


def in_the_clear(bed, secret):
    """The hosts' state databases that hold secret as it is."""
    found = []
    for h in bed.hosts.values():
        path = os.path.join(h.agent.state_path, "compute.sqlite")
        with open(path, "rb") as f:
            if secret.encode() in f.read():
                found.append(path)
    return found


def moved_to_hb(bed, u, vol, secret=None):
    """Live-migrate u from hA to hB (block) and check that it runs there
    with its volume, whose credential only hB keeps now (in libvirt's
    secret store; in no database in the clear)."""
    hA, hB = bed.hosts["hA"], bed.hosts["hB"]
    a, b = hA.agent, hB.agent
    a.api.live_migrate_instance(a.host, u, b.host, block_migration=True)
    rec = wait_until(lambda: (r := b.find(u)) and r["task_state"] is None
                     and r["host"] == b.host and r, 300, 0.5, "the instance on hB")
    assert rec["power_state"] == "RUNNING" and rec["volumes"] == [vol]
    assert f"instance-{u}" not in hA.virsh("list", "--all", "--name")
    assert secrets(hA) == [] and len(secrets(hB)) == 1
    if secret:
        assert in_the_clear(bed, secret) == []


def test_a_live_migration_takes_the_volume_along_while_the_guest_writes_to_it(bed, storage):
    """The destination stores the credential before the guest arrives, the
    block migration copies the local disks only, and the source forgets
    the credential once the guest runs there; the guest's writes to the
    volume never stop and never restart from the beginning."""
    hB = bed.hosts["hB"]
    make, read = storage
    vol, conn, where = make("mig-" + uuid.uuid4().hex[:8])
    kind = conn["driver_volume_type"]
    a, u = shell_guest(bed, "hA")
    b = hB.agent
    a.api.attach_volume(a.host, u, vol, conn)
    assert settled(a, u)["volumes"] == [vol]
    in_guest(bed, a, u, f"{wait_dev(vol)}; (i=0; while :; do i=$((i+1)); "
                        "printf 'TICK-%d\\n' $i | dd of=$D bs=16 count=1 conv=fsync "
                        "2>/dev/null; sleep 0.2; done) & echo TB-WRITING-$((5+5))", "TB-WRITING-10")
    wait_until(lambda: ticks_on(read, where) >= 3, 60, 0.5, "ticks on the volume")
    moved_to_hb(bed, u, vol, conn["data"].get("auth_password") or conn["data"]["key"])
    assert f"protocol='{kind}'" in hB.virsh("dumpxml", f"instance-{u}")
    before = ticks_on(read, where)
    assert before >= 3
    wait_until(lambda: ticks_on(read, where) > before + 3, 60, 0.5, "ticks after the move")
    b.api.detach_volume(b.host, u, vol)
    assert settled(b, u)["volumes"] == []
    assert secrets(hB) == []
    b.api.terminate_instance(b.host, u)
    b.wait_state(u, {"deleted"})


def test_a_guest_booted_from_a_volume_live_migrates_without_a_disk_copy(bed, storage):
    """The volume holds the test guest's disk (made from the image, as
    Cinder would); the guest boots from it and writes its tick to it every
    second, the block migration has no local disk to copy, and the ticks
    go on on hB one after the other; a hard reboot there finds the volume's
    boot count and last tick."""
    hA, hB = bed.hosts["hA"], bed.hosts["hB"]
    a, b = hA.agent, hB.agent
    make, _ = storage
    vol, conn, _ = make("boot-" + uuid.uuid4().hex[:8], size_mb=64,
                        content=os.path.join(guest.build(), "disk.raw"))
    u = str(uuid.uuid4())
    a.api.build_and_run_instance(a.host, u, "bfv", dict(SMALL), bed.images.images["disk"],
                                 boot_volume={"volume_id": vol, "connection_info": conn})
    rec = a.wait_state(u, {"active", "error"})
    assert rec["vm_state"] == "active", f"{rec['fault']}\n{a.diagnostics(u)}"
    a.wait_console(u, lambda c: guest.last_tick(c) >= 3, "tick 3")
    assert "TB: bootcount=1" in a.console(u)
    assert not os.path.exists(os.path.join(a.instances_path, u, "disk"))       # no root file
    moved_to_hb(bed, u, vol)
    assert not os.path.exists(os.path.join(b.instances_path, u, "disk"))
    console = b.wait_console(u, lambda c: len(re.findall(r"^TB: tick \d+ ", c, re.M)) >= 3,
                             "ticks on hB")
    ticks = [int(n) for n in re.findall(r"^TB: tick (\d+) ", console, re.M)]
    assert ticks[0] > 3 and ticks == list(range(ticks[0], ticks[0] + len(ticks)))
    assert "TB: boot-ok" not in console                  # the same boot, not a new one
    last = guest.last_tick(b.console(u))
    b.api.reboot_instance(b.host, u, "HARD")
    console = b.wait_console(u, lambda c: "TB: bootcount=2" in c, "the reboot on hB")
    tick_on_disk = int(re.search(r"TB: disk-tick=(\d+)", console).group(1))
    # every tick it wrote is there (the last printed may not be synced yet
    # when the hard reboot powers the guest off)
    assert tick_on_disk >= last - 1
    b.api.terminate_instance(b.host, u)
    b.wait_state(u, {"deleted"})
    assert secrets(hB) == []


def test_an_extended_volume_grows_in_the_running_guest_and_never_shrinks(bed, ceph,
                                                                         tmp_path):
    """The storage grows the volume, the agent tells the guest (QEMU's
    block_resize): the guest's disk is the new size; a smaller size is
    refused with the guest's view unchanged; an agent killed after telling
    the guest tells it again at start."""
    hA = bed.hosts["hA"]
    vol, conn, spec = ceph.volume("grow-" + uuid.uuid4().hex[:8], size_mb=1024)
    a, u = shell_guest(bed, "hA")
    a.api.attach_volume(a.host, u, vol, conn)
    assert settled(a, u)["volumes"] == [vol]

    def guest_bytes(wanted):
        out = in_guest(bed, a, u, f"{wait_dev(vol)}; echo SIZE-$(($(cat /sys/block/${{D##*/}}"
                                  "/size) * 512))-$((2*3))", "-6")
        return int(re.search(r"SIZE-(\d+)-6", out).group(1)) == wanted

    assert guest_bytes(2 ** 30)
    run = computectl(a, "volume-extend", "--host", a.host, "--volume", vol, "--size", "2", u)
    assert run.returncode == 0, run.stderr
    assert guest_bytes(2 * 2 ** 30) and ceph.size(spec) == 2 * 2 ** 30
    run = computectl(a, "volume-extend", "--host", a.host, "--volume", vol, "--size", "1", u)
    assert run.returncode != 0 and "shrink" in run.stderr, run.stderr
    assert guest_bytes(2 * 2 ** 30) and ceph.size(spec) == 2 * 2 ** 30

    ceph.resize(spec, 3072)                               # Cinder grows it again
    a.kill_agent()
    a.restart_agent(crash_at="extend_volume.extended")
    a.api.extend_volume(a.host, u, vol, 3 * 2 ** 30)
    assert a.wait_crashed() == -9
    a.restart_agent()
    assert settled(a, u)["volumes"] == [vol]
    actions = [x["action"] for x in a.api.list_instance_actions(a.host, u)]
    assert actions.count("extend_volume") >= 2           # told again at start
    assert guest_bytes(3 * 2 ** 30)
    assert "protocol='rbd'" in hA.virsh("dumpxml", f"instance-{u}")
    a.api.terminate_instance(a.host, u)
    a.wait_state(u, {"deleted"})


# -- instance disks in Ceph (images_type = rbd); last: the agents keep it ---------------

@pytest.fixture(scope="module")
def rbd_backend(bed, ceph):
    """Both agents on images_type = rbd from here on."""
    ceph.serve_instances([bed.hosts["hA"].agent, bed.hosts["hB"].agent])
    return ceph


def pool_images(ceph, u):
    return ceph.images_of(u)


def test_with_images_type_rbd_the_disks_are_pool_images_through_snapshot_and_migration(
        bed, rbd_backend):
    """The root and swap disks are images in the pool (no file on the
    host), the root a clone when the image is in the cluster; a snapshot
    is an RBD snapshot exported to the image service (and removed), and
    the image boots on hB with the guest's boot count; a live migration
    copies no disk (the flags say so) and the guest goes on ticking on hB;
    a hard reboot there boots the same disk; rescue puts the rescue disk
    before the pool's; a resize grows the image, its revert rolls it back;
    a rebuild makes the root anew; a shelve empties the pool and the
    unshelve on hB fills it again; a delete removes the images."""
    ceph = rbd_backend
    hA, hB = bed.hosts["hA"], bed.hosts["hB"]
    a, b = hA.agent, hB.agent
    u = a.boot("rbd", image=bed.images.images["disk"], flavor=dict(SMALL, swap_mb=16),
               wait_console=False)
    a.wait_console(u, lambda c: guest.last_tick(c) >= 3, "tick 3")
    assert "TB: bootcount=1" in a.console(u)
    assert pool_images(ceph, u) == [f"{u}_disk", f"{u}_disk.swap"]
    assert not os.path.exists(os.path.join(a.instances_path, u, "disk"))
    xml = hA.virsh("dumpxml", f"instance-{u}")
    assert "protocol='rbd'" in xml and f"name='vms/{u}_disk'" in xml

    # an image the image service says is in this cluster: the root disk is
    # a copy-on-write clone of it, grown to the flavor
    name = "img-" + uuid.uuid4().hex[:8]
    ceph.rbd("import", "--no-progress", os.path.join(guest.build(), "disk.raw"),
             f"images/{name}")
    ceph.rbd("snap", "create", f"images/{name}@snap")
    ceph.rbd("snap", "protect", f"images/{name}@snap")
    in_ceph = bed.images.upload_variant("console=ttyS0 quiet tb.name=vol",
                                        direct_url=f"rbd://{ceph.fsid}/images/{name}/snap")
    u3 = a.boot("clone", image=in_ceph, flavor=SMALL, wait_console=False)
    a.wait_console(u3, lambda c: "TB: bootcount=1" in c, "the clone's boot")
    info = json.loads(ceph.rbd("info", "--format", "json", f"vms/{u3}_disk"))
    assert (info["parent"]["pool"], info["parent"]["image"], info["parent"]["snapshot"]) == \
        ("images", name, "snap")
    assert info["size"] == 2 ** 30
    a.api.terminate_instance(a.host, u3)
    a.wait_state(u3, {"deleted"})
    assert pool_images(ceph, u3) == []
    assert ceph.rbd("children", f"images/{name}@snap").strip() == ""

    image_id = a.api.snapshot_instance(a.host, u, "rbd-snap")["image_id"]
    settled(a, u)
    assert json.loads(ceph.rbd("snap", "ls", "--format", "json", f"vms/{u}_disk")) == []
    u2 = b.boot("from-rbd-snap", image=image_id, flavor=SMALL, wait_console=False)
    console = b.wait_console(u2, lambda c: "TB: bootcount=" in c, "boot from the snapshot")
    assert "TB: bootcount=2" in console                  # the first guest's boot, on disk
    assert pool_images(ceph, u2) == [f"{u2}_disk"]

    a.api.live_migrate_instance(a.host, u, b.host, block_migration=True)
    rec = wait_until(lambda: (r := b.find(u)) and r["task_state"] is None
                     and r["host"] == b.host and r, 300, 0.5, "the instance on hB")
    assert rec["power_state"] == "RUNNING"
    line = [x for x in a.log().splitlines() if f"instance {u}: live migration to" in x][-1]
    assert "VIR_MIGRATE_LIVE" in line and "NON_SHARED" not in line, line
    assert line.endswith("disks copied: none"), line
    console = b.wait_console(u, lambda c: len(re.findall(r"^TB: tick \d+ ", c, re.M)) >= 3,
                             "ticks on hB")
    ticks = [int(n) for n in re.findall(r"^TB: tick (\d+) ", console, re.M)]
    assert ticks[0] > 3 and ticks == list(range(ticks[0], ticks[0] + len(ticks)))
    assert not os.path.exists(os.path.join(a.instances_path, u))
    assert f"name='vms/{u}_disk'" in hB.virsh("dumpxml", f"instance-{u}")
    assert pool_images(ceph, u) == [f"{u}_disk", f"{u}_disk.swap"]
    b.api.reboot_instance(b.host, u, "HARD")
    b.wait_console(u, lambda c: "TB: bootcount=2" in c, "the hard reboot on hB")


    # rescue: the rescue image's fresh disk first, the pool's images after it
    b.api.rescue_instance(b.host, u)
    wait_until(lambda: (r := b.find(u)) and r["vm_state"] == "rescued"
               and r["task_state"] is None, 120, 0.3, "rescued")
    xml = hB.virsh("dumpxml", f"instance-{u}")
    assert xml.index("disk.rescue") < xml.index(f"name='vms/{u}_disk'")
    b.api.unrescue_instance(b.host, u)
    b.wait_console(u, lambda c: "TB: bootcount=3" in c, "its own disk again")
    assert "disk.rescue" not in hB.virsh("dumpxml", f"instance-{u}")

    # resize to hA: the root image grows in place (nothing is sent); a
    # revert rolls it back to the snapshot taken at power-off, a confirm
    # drops that snapshot
    spec, big = f"vms/{u}_disk", dict(SMALL, root_gb=2, swap_mb=32)
    for end in ("revert", "confirm"):
        boots = guest.boots(b.console(u))
        count = int(re.findall(r"TB: bootcount=(\d+)", b.console(u))[-1])
        b.api.migrate_instance(b.host, u, a.host, flavor=big)
        wait_until(lambda: (r := a.find(u)) and r["vm_state"] == "resized"
                   and r["task_state"] is None, 180, 0.5, "resized on hA")
        console = a.wait_console(u, lambda c, n=count + 1: f"TB: bootcount={n}" in c,
                                 "boot on hA")
        assert re.findall(r"vda_bytes=(\d+)", console)[-1] == str(2 * 2 ** 30)
        assert ceph.size(spec) == 2 * 2 ** 30
        assert [x["name"] for x in json.loads(ceph.rbd("snap", "ls", "--format", "json",
                                                       spec))] == ["resize"]
        assert pool_images(ceph, u) == [f"{u}_disk", f"{u}_disk.swap"]
        if end == "revert":
            a.api.revert_resize(a.host, u)
            wait_until(lambda: (r := b.find(u)) and r["vm_state"] == "active"
                       and r["task_state"] is None and r["host"] == b.host, 180, 0.5,
                       "back on hB")
            b.wait_console(u, lambda c, n=boots: guest.boots(c) > n and "TB: bootcount="
                           in c.rsplit(guest.BOOT_MARKER, 1)[-1], "boot on hB")
            assert ceph.size(spec) == 2 ** 30                 # the snapshot's size
        else:
            a.api.confirm_resize(a.host, u)
            wait_until(lambda: (r := a.find(u)) and r["vm_state"] == "active"
                       and r["task_state"] is None, 180, 0.5, "confirmed on hA")
            wait_until(lambda: json.loads(ceph.rbd("snap", "ls", "--format", "json",
                                                   spec)) == [], 60, 0.5, "no snapshot")
            assert ceph.size(spec) == 2 * 2 ** 30

    # rebuild on hA: a new root image from the image (boot count 1 again)
    a.api.rebuild_instance(a.host, u)
    a.wait_console(u, lambda c: guest.boots(c) >= 2 and "TB: bootcount=1" in
                   c.rsplit(guest.BOOT_MARKER, 1)[-1], "the rebuilt disk")
    assert pool_images(ceph, u) == [f"{u}_disk", f"{u}_disk.swap"]
    assert ceph.size(spec) == 2 * 2 ** 30

    # shelve (offloaded at once): the root in an image, the pool's images
    # gone; unshelved on hB into the pool again, with the boot count
    a.api.shelve_instance(a.host, u)
    wait_until(lambda: (r := a.find(u)) and r["vm_state"] == "shelved_offloaded"
               and r["task_state"] is None, 180, 0.5, "offloaded")
    assert pool_images(ceph, u) == []
    b.api.unshelve_instance(a.host, u, b.host)
    wait_until(lambda: (r := b.find(u)) and r["vm_state"] == "active"
               and r["task_state"] is None, 180, 0.5, "unshelved on hB")
    b.wait_console(u, lambda c: "TB: bootcount=2" in c.rsplit(guest.BOOT_MARKER, 1)[-1],
                   "the unshelved boot")
    assert pool_images(ceph, u) == [f"{u}_disk", f"{u}_disk.swap"]
    a = b                                              # both instances are on hB now
    for agent, x in ((a, u), (b, u2)):
        agent.api.terminate_instance(agent.host, x)
        agent.wait_state(x, {"deleted"})
        assert pool_images(ceph, x) == []


def test_a_source_killed_after_the_resize_snapshot_rolls_the_images_back(bed, rbd_backend):
    """hA's agent killed at resize.powered_off (the images snapshotted, the
    guest off, nothing sent): at start it puts the instance back (the
    invariants of the chaos suite hold), the images rolled back and their
    snapshot gone; the guest boots its own disk again; a delete then
    removes the images."""
    ceph = rbd_backend
    a, b = bed.hosts["hA"].agent, bed.hosts["hB"].agent
    u = a.boot("rbd-chaos", image=bed.images.images["disk"], flavor=SMALL, wait_console=False)
    a.wait_console(u, lambda c: "TB: bootcount=1" in c, "the first boot")
    a.kill_agent()
    a.restart_agent(crash_at="resize.powered_off")
    a.api.migrate_instance(a.host, u, b.host, flavor=dict(SMALL, root_gb=2))
    assert a.wait_crashed() == -9
    a.restart_agent()
    assert inv.check(bed, u) == "hA"
    assert a.find(u)["vm_state"] == "active"
    a.wait_console(u, lambda c: "TB: bootcount=2" in c, "its own disk again")
    spec = f"vms/{u}_disk"
    assert ceph.size(spec) == 2 ** 30
    assert json.loads(ceph.rbd("snap", "ls", "--format", "json", spec)) == []
    a.api.terminate_instance(a.host, u)
    a.wait_state(u, {"deleted"})
    assert ceph.images_of(u) == []
