"""The disk-placement seam: which backend holds an instance's disks
(files, the RBD pool, a volume root over either), picked in one place from
one rule (virt.driver.disks_shared) that the tracker's claims read too."""
import types
import uuid

import pytest

from compute.core.resource_tracker import claim_request
from virt import driver as virt_driver
from virt import errors
from virt.driver import Flavor, Instance, VolumeDisk
from virt.libvirt import disk_backends, rbd_images
from virt.libvirt.disk_store import DiskStore

U = str(uuid.UUID(int=7))
FLAVOR = Flavor(1, 256, 1, ephemeral_gb=1, swap_mb=16)
ROOT_VOLUME = VolumeDisk("v1", virt_driver.BOOT_DEVICE, "iscsi", "iqn.x:1/0", (("10.0.0.1", 3260),))


class Pool:
    """A stand-in for RbdImages that records what the store asked of it."""

    def __init__(self):
        self.calls = []

    def __getattr__(self, name):
        return lambda *a, **k: self.calls.append((name, a)) or []


def store(rbd=False):
    conf = types.SimpleNamespace(image=types.SimpleNamespace(use_cow_images=True,
                                                             preallocate_images="none"))
    cache = types.SimpleNamespace(blank_base=lambda kind, size_mb: f"/base/{kind}-{size_mb}")
    s = DiskStore(conf, cache=cache, instance_dir=lambda i: f"/nonexistent/{i.uuid}")
    s.rbd = Pool() if rbd else None
    return s


def inst(formats=None, volumes=()):
    return Instance(U, "x", FLAVOR, "img", disk_formats=formats or {}, volumes=volumes)


def test_one_rule_says_where_disks_are_and_the_claims_read_it():
    assert rbd_images.FORMAT in virt_driver.SHARED_FORMATS
    assert not virt_driver.disks_shared({"disk": "qcow2", "disk.swap": "qcow2"})
    assert virt_driver.disks_shared({"disk": "rbd"})
    assert virt_driver.disks_shared({}, new_disks_shared=True)      # a build on an rbd host
    flavor = {"vcpus": 1, "memory_mb": 256, "root_gb": 1, "ephemeral_gb": 1, "swap_mb": 16}
    assert claim_request(flavor, disk_formats={"disk": "rbd"}).disk_gb == 0
    assert claim_request(flavor, disk_formats={"disk": "qcow2"}).disk_gb == 2
    assert claim_request(flavor, new_disks_shared=True).disk_gb == 0


def test_the_store_picks_the_backend_from_the_record_and_the_host():
    files, pool = store(), store(rbd=True)
    assert type(files.of(inst({"disk": "qcow2"}))) is disk_backends.FileDisks
    assert type(pool.of(inst({"disk": "qcow2"}))) is disk_backends.FileDisks   # made before
    assert type(pool.of(inst({"disk": "rbd"}))) is disk_backends.RbdDisks
    assert type(pool.new(inst())) is disk_backends.RbdDisks
    assert type(files.new(inst())) is disk_backends.FileDisks
    with pytest.raises(errors.DiskMissing, match="no images_type = rbd"):
        files.of(inst({"disk": "rbd"}))
    bfv = pool.new(inst(volumes=(ROOT_VOLUME,)))
    assert type(bfv) is disk_backends.VolumeRoot and type(bfv.others) is disk_backends.RbdDisks
    assert bfv.others.root is False and bfv.shared and not bfv.exports_root


def test_a_volume_root_makes_only_the_other_disks_and_refuses_root_work():
    pool = store(rbd=True)
    bfv = inst({"disk.local": "rbd"}, volumes=(ROOT_VOLUME,))
    pool.create(bfv, {}, types.SimpleNamespace(root=None))
    made = [a[1] for name, a in pool.rbd.calls if name.startswith("create_")]
    assert made == ["disk.local", "disk.swap"]             # no root image
    assert not any(name == "create_root" for name, _ in pool.rbd.calls)
    with pytest.raises(errors.DiskMissing, match="boots from a volume"):
        pool.recreate_root(bfv, {}, None, False)
    with pytest.raises(errors.DiskMissing, match="boots from a volume"):
        pool.adopt(bfv, FLAVOR, None)


def test_only_shared_disks_are_removed_apart_from_the_directory():
    files, pool = store(), store(rbd=True)
    files.remove_shared(inst({"disk": "qcow2"}))              # nothing to do, nothing done
    pool.remove_shared(inst({"disk": "qcow2"}))               # files: the directory's
    assert pool.rbd.calls == []
    pool.remove_shared(inst())                                 # a failed build on the pool
    pool.remove_shared(inst({"disk": "rbd"}))
    assert [name for name, _ in pool.rbd.calls] == ["remove_all", "remove_all"]


def test_a_resize_on_the_pool_takes_and_drops_its_way_back(tmp_path):
    pool = store(rbd=True)
    pool.instance_dir = lambda i: str(tmp_path / i.uuid)
    (tmp_path / U).mkdir()
    pool.move_aside(inst({"disk": "rbd"}))
    pool.confirm(inst({"disk": "rbd"}))
    snap = disk_backends.RESIZE_SNAP
    assert [(n, a[1]) for n, a in pool.rbd.calls] == [("snapshot_all", snap),
                                                      ("remove_snapshots", snap)]
    assert not (tmp_path / U).exists() and not (tmp_path / f"{U}_resize").exists()
