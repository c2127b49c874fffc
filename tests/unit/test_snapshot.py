"""Snapshot logic that needs no hypervisor: the properties a snapshot
image carries, progress throttling, and the block-copy target."""
import types

from compute.snapshot import SnapshotMixin, snapshot_properties
from virt.libvirt import snapshot


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
    mixin = SnapshotMixin()
    mixin.db = types.SimpleNamespace(instance_update=lambda uuid, **v: writes.append(v))
    progress = mixin._progress_writer("u1", 50, 100)
    for pct in range(0, 101):
        progress(pct)
    values = [w["progress"] for w in writes]
    assert values == sorted(values) and values[0] >= 55 and values[-1] == 100
    assert len(values) <= 10


def test_block_copy_target_is_a_file_of_the_snapshot_format():
    assert snapshot.target_xml("/s/snapshot.raw", "raw") == (
        "<disk type='file'><driver name='qemu' type='raw'/>"
        "<source file='/s/snapshot.raw'/></disk>")
