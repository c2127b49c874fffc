"""Snapshot logic that needs no hypervisor: the properties a snapshot
image carries, progress throttling, and the live snapshot's XML."""
import types

from compute.core.operation import progress_writer
from compute.parts.snapshots import snapshot_properties
from virt.libvirt import live_snapshot
from virt.libvirt.xml.domain import Domain


def test_snapshot_image_carries_what_a_boot_needs_and_its_origin():
    inst = types.SimpleNamespace(uuid="u1", image_ref="img1", image_meta={"properties": {
        "kernel_id": "k", "ramdisk_id": "r", "os_command_line": "console=ttyS0",
        "hw_disk_bus": "virtio", "owner_note": "not copied", "image_type": "image"}})
    assert snapshot_properties(inst) == {
        "kernel_id": "k", "ramdisk_id": "r", "os_command_line": "console=ttyS0",
        "hw_disk_bus": "virtio", "instance_uuid": "u1", "base_image_ref": "img1",
        "image_type": "snapshot"}


def test_progress_is_written_in_steps_within_its_range():
    writes = []
    db = types.SimpleNamespace(instance_update=lambda uuid, **v: writes.append(v))
    progress = progress_writer(db, "u1", 50, 100)
    for pct in range(0, 101):
        progress(pct)
    values = [w["progress"] for w in writes]
    assert values == sorted(values) and values[0] >= 55 and values[-1] == 100
    assert len(values) <= 10


def test_live_snapshot_moves_only_the_root_disk_to_an_overlay():
    dom = Domain.parse(
        "<domain><devices>"
        "<disk type='file' device='disk'><source file='/i/u/disk'/><target dev='vda'/></disk>"
        "<disk type='file' device='disk'><source file='/i/u/disk.eph0'/><target dev='vdb'/></disk>"
        "<disk type='file' device='cdrom'><source file='/i/u/disk.config'/><target dev='hdd'/>"
        "</disk></devices></domain>")
    xml = live_snapshot.snapshot_xml(dom.devices.disks, "vda", "/i/u/disk.snapshot")
    assert xml == (
        "<domainsnapshot><disks>"
        "<disk name='vda' snapshot='external'><driver type='qcow2'/>"
        "<source file='/i/u/disk.snapshot'/></disk>"
        "<disk name='vdb' snapshot='no'/><disk name='hdd' snapshot='no'/>"
        "</disks></domainsnapshot>").replace("'", '"')
    assert live_snapshot.disk_on(dom, "/i/u/disk").target_dev == "vda"
    assert live_snapshot.disk_on(dom, "/i/u/disk.snapshot") is None


def test_a_disk_put_back_on_its_root_loses_the_overlay_chain():
    dom = Domain.parse(
        "<domain><devices><disk type='file'><source file='/i/u/disk.snapshot'/>"
        "<backingStore type='file'><source file='/i/u/disk'/></backingStore>"
        "<target dev='vda'/></disk></devices></domain>")
    disk = live_snapshot.disk_on(dom, "/i/u/disk.snapshot")
    disk.source_file, disk.backing_store = "/i/u/disk", False
    assert dom.to_xml(pretty=False) == (
        '<domain><devices><disk type="file"><source file="/i/u/disk"/>'
        '<target dev="vda"/></disk></devices></domain>')
