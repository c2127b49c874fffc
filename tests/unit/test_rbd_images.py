"""The pure parts of instance disks in Ceph: image names, the monitors of
a ceph.conf, the image service's rbd:// locations, keyrings; the
sequences of a build, a restart, a resize and a rebuild over a fake pool."""
import pytest

from compute.core import optable
from virt.libvirt import migration, rbd_images

U = "0d3e4c0a-8c1b-4d3e-9a49-2f0c1b7a6e55"
FSID = "6b1f0d3e-1c2b-4a5d-8e7f-9a0b1c2d3e4f"


def test_image_names_need_a_canonical_uuid_and_a_known_disk():
    assert rbd_images.image_name(U, "disk") == f"{U}_disk"
    assert rbd_images.image_name(U, "disk.swap") == f"{U}_disk.swap"
    for uuid, disk in ((U.upper(), "disk"), ("../x", "disk"), (U, "disk.rescue"),
                       (U, "../disk")):
        with pytest.raises(ValueError):
            rbd_images.image_name(uuid, disk)


@pytest.mark.parametrize("mon_host,wanted", [
    ("[v2:10.0.0.1:3300,v1:10.0.0.1:6789]", (("10.0.0.1", 6789),)),
    ("[v2:10.0.0.1:3300/0,v1:10.0.0.1:6789/0],[v2:10.0.0.2:3300/0,v1:10.0.0.2:6789/0]",
     (("10.0.0.1", 6789), ("10.0.0.2", 6789))),
    ("10.0.0.1:6790, 10.0.0.2", (("10.0.0.1", 6790), ("10.0.0.2", 6789))),
    ("10.0.0.1 10.0.0.3:6789", (("10.0.0.1", 6789), ("10.0.0.3", 6789))),
])
def test_monitors_of_a_ceph_conf_are_their_v1_addresses(mon_host, wanted):
    assert rbd_images.monitors(mon_host) == wanted


@pytest.mark.parametrize("mon_host", ["", None, "[v2:10.0.0.1:3300]", "mon.example:6789"])
def test_monitors_must_be_addresses(mon_host):
    with pytest.raises(ValueError):
        rbd_images.monitors(mon_host)


def test_only_a_well_formed_rbd_location_names_a_clone_parent():
    assert rbd_images.parse_direct_url(f"rbd://{FSID}/images/abc-1/snap") == \
        (FSID, "images", "abc-1", "snap")
    for url in (None, 42, "file:///var/lib/glance/x", f"rbd://{FSID}/images/abc",
                f"rbd://{FSID}/images/../snap/x", "rbd://not-a-fsid/images/a/snap",
                f"rbd://{FSID}/images/a b/snap", f"rbd://{FSID}/images/a/snap/extra",
                f"rbd://{FSID}/images/a:conf=/etc/x/snap"):
        assert rbd_images.parse_direct_url(url) is None, url


def test_the_key_is_read_from_the_users_section_of_a_keyring(tmp_path):
    keyring = tmp_path / "keyring"
    keyring.write_text("[client.admin]\n\tkey = AAAA\n[client.compute]\n\tkey = QUJDRA==\n")
    assert rbd_images.read_key(str(keyring), "compute") == "QUJDRA=="
    with pytest.raises(Exception, match="no key for client.other"):
        rbd_images.read_key(str(keyring), "other")


def test_only_a_boot_volume_refuses_the_operations_on_the_root_file():
    refused = {op.name for op in optable.ROWS
               if optable.refusal(op, {optable.BOOT_FROM_VOLUME})}
    assert refused == {"rebuild", "rescue", "shelve", "snapshot", "resize"}
    assert all(optable.refusal(op, set()) is None for op in optable.ROWS)
    assert "boots from a volume" in optable.refusal(optable.TABLE["snapshot"],
                                                    {optable.BOOT_FROM_VOLUME})


def test_migration_flag_names_show_whether_disks_are_copied():
    assert "VIR_MIGRATE_NON_SHARED_INC" in migration.flag_names(migration.flags(True))
    names = migration.flag_names(migration.flags(False))
    assert "VIR_MIGRATE_LIVE" in names and not any("NON_SHARED" in n for n in names)


class FakePool:
    """RbdImages' interface over a dict {image name: size}: what the pure
    sequences above the commands decide."""

    pool = "vms"

    def __init__(self, images=None):
        self.images = dict(images or {})

    def names(self, uuid):
        return sorted(n for n in self.images if n.startswith(uuid))

    def guest_disk(self, uuid, disk):
        return rbd_images.RbdImages.guest_disk(self, uuid, disk)

    def clone_parent(self, image_meta):
        return None

    def create_root(self, uuid, size, base=None, parent=None):
        self.images[f"{uuid}_disk"] = size
        return self.guest_disk(uuid, "disk")

    def create_blank(self, uuid, disk, base):
        self.images[f"{uuid}_{disk}"] = base.virtual_size
        return self.guest_disk(uuid, disk)

    def grow(self, uuid, disk, size):
        key = f"{uuid}_{disk}"
        self.images[key] = max(self.images[key], size)

    def remove(self, uuid, disk):
        self.images.pop(f"{uuid}_{disk}", None)          # none is fine, as in the pool


class Base:
    def __init__(self, size):
        self.virtual_size, self.path, self.format, self.image_id = size, "/b", "raw", "img"


class Cache:
    def blank_base(self, kind, size_mb):
        return Base(size_mb * 2 ** 20)


def flavor(root_gb=1, ephemeral_gb=0, swap_mb=0):
    from virt.driver import Flavor
    return Flavor(vcpus=1, memory_mb=128, root_gb=root_gb, ephemeral_gb=ephemeral_gb,
                  swap_mb=swap_mb)


def test_a_build_makes_each_disk_of_the_flavor_in_the_pool():
    pool = FakePool()
    disks = rbd_images.create_all(pool, U, flavor(1, 2, 16), Base(2 ** 20), {}, Cache())
    assert [(d.name, d.path, d.format) for d in disks] == [
        ("disk", f"vms/{U}_disk", "rbd"), ("disk.local", f"vms/{U}_disk.local", "rbd"),
        ("disk.swap", f"vms/{U}_disk.swap", "rbd")]
    assert pool.images[f"{U}_disk"] == 2 ** 30
    assert rbd_images.create_all(FakePool(), U, flavor(), Base(2 ** 20), {}, Cache(),
                                 root=False) == []


def test_reopening_refuses_a_missing_root_and_remakes_blank_disks():
    from virt.errors import DiskMissing
    with pytest.raises(DiskMissing, match="missing"):
        rbd_images.reopen_all(FakePool(), U, flavor(), Cache())
    pool = FakePool({f"{U}_disk": 2 ** 30})
    disks = rbd_images.reopen_all(pool, U, flavor(1, 0, 16), Cache())
    assert [d.name for d in disks] == ["disk", "disk.swap"] and f"{U}_disk.swap" in pool.images


def test_a_resize_grows_root_and_ephemeral_and_remakes_a_resized_swap():
    pool = FakePool({f"{U}_disk": 2 ** 30, f"{U}_disk.local": 2 ** 30,
                     f"{U}_disk.swap": 16 * 2 ** 20})
    formats = {"disk": "rbd", "disk.local": "rbd", "disk.swap": "rbd"}
    out = rbd_images.grow_all(pool, U, flavor(1, 1, 16), flavor(3, 2, 32), Base(2 ** 20),
                              formats)
    assert pool.images == {f"{U}_disk": 3 * 2 ** 30, f"{U}_disk.local": 2 * 2 ** 30}
    assert out == formats                    # swap made anew, blank, when defined
    same = rbd_images.grow_all(pool, U, flavor(3, 2, 0), flavor(3, 2, 0), Base(2 ** 20),
                               {"disk": "rbd", "disk.local": "rbd"})
    assert same == {"disk": "rbd", "disk.local": "rbd"} and pool.images[f"{U}_disk"] == 3 * 2 ** 30


def test_a_rebuild_makes_the_root_anew_and_keeps_the_ephemeral_disk_when_asked():
    pool = FakePool({f"{U}_disk": 3 * 2 ** 30, f"{U}_disk.local": 2 ** 30,
                     f"{U}_disk.swap": 2 ** 20})
    formats = rbd_images.recreate_root(pool, U, flavor(1, 1, 16), Base(2 ** 20), {}, True)
    assert formats == {"disk": "rbd", "disk.local": "rbd", "disk.swap": "rbd"}
    assert pool.images == {f"{U}_disk": 2 ** 30, f"{U}_disk.local": 2 ** 30}
    rbd_images.recreate_root(pool, U, flavor(1, 1, 16), Base(2 ** 20), {}, False)
    assert pool.images == {f"{U}_disk": 2 ** 30}


def test_disks_in_the_pool_take_no_disk_of_the_host():
    from compute.core.resource_tracker import disks_here
    assert disks_here({"disk": "qcow2", "disk.swap": "qcow2"})
    assert not disks_here({"disk": "rbd", "disk.swap": "rbd"})
    assert disks_here({}) and not disks_here({}, new_disks_shared=True)   # a build
