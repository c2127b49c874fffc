"""The files of an instance's disks in its directory: `disk` (root: a qcow2
overlay on the cached base, or a flat copy when use_cow_images is off),
`disk.local` (ephemeral) and `disk.swap`, both overlays on shared
formatted bases."""
import os

from imagecache import qemu_img
from virt.errors import DiskMissing, DiskTooSmall
from virt.libvirt.builder import GuestDisk

GiB = 1024 ** 3


def root_size(flavor, base):
    """Virtual size of the root disk; refuses an image larger than it."""
    if flavor.root_gb == 0:
        return base.virtual_size
    size = flavor.root_gb * GiB
    if base.virtual_size > size:
        raise DiskTooSmall(f"image {base.image_id} has a virtual size of {base.virtual_size} "
                           f"bytes, larger than the flavor's root disk of {flavor.root_gb} GiB")
    return size


def create_root(instance_dir, flavor, base, use_cow, preallocate="none"):
    path = os.path.join(instance_dir, "disk")
    size = root_size(flavor, base)
    if use_cow:
        qemu_img.create_overlay(path, base.path, base.format, size)
        return GuestDisk("disk", path, "qcow2")
    prealloc = "falloc" if preallocate == "space" else "off"
    qemu_img.convert(base.path, base.format, path, "raw", preallocation=prealloc)
    if size > base.virtual_size:
        qemu_img.resize(path, "raw", size, preallocation=prealloc)
    return GuestDisk("disk", path, "raw")


def create_overlay(instance_dir, name, base):
    path = os.path.join(instance_dir, name)
    qemu_img.create_overlay(path, base.path, base.format, base.virtual_size)
    return GuestDisk(name, path, "qcow2")


RESCUE_DISK = "disk.rescue"


def create_rescue(instance_dir, base):
    """A fresh overlay of the rescue image (any earlier one is replaced:
    a rescue always starts from the image)."""
    remove_rescue(instance_dir)
    return create_overlay(instance_dir, RESCUE_DISK, base)


def remove_rescue(instance_dir):
    try:
        os.unlink(os.path.join(instance_dir, RESCUE_DISK))
    except FileNotFoundError:
        pass


def create_all(instance_dir, flavor, image_files, cache, use_cow, preallocate="none",
               root=True):
    """Every disk the flavor asks for, in the order the guest sees them
    (no root disk when root is False: it is a volume)."""
    disks = [create_root(instance_dir, flavor, image_files.root, use_cow, preallocate)] \
        if root else []
    if flavor.ephemeral_gb:
        base = cache.blank_base("ephemeral", flavor.ephemeral_gb * 1024)
        disks.append(create_overlay(instance_dir, "disk.local", base))
    if flavor.swap_mb:
        base = cache.blank_base("swap", flavor.swap_mb)
        disks.append(create_overlay(instance_dir, "disk.swap", base))
    return disks


def recreate_root(instance_dir, flavor, base, use_cow, preallocate, formats,
                  preserve_ephemeral):
    """A rebuild's disks: a new root disk from base, the ephemeral disk
    kept or removed (reopen_all makes it blank again), swap removed (blank
    anyway); the formats of the disks that are now there."""
    names = ["disk", "disk.swap"] + ([] if preserve_ephemeral else ["disk.local"])
    for name in names:
        try:
            os.unlink(os.path.join(instance_dir, name))
        except FileNotFoundError:
            pass
    root = create_root(instance_dir, flavor, base, use_cow, preallocate)
    kept = {n: f for n, f in formats.items() if n not in names}
    return kept | {"disk": root.format}


def reopen_all(instance_dir, flavor, cache, formats, root=True):
    """The disks of an instance that exists, for power on and hard reboot.
    Formats come from the record, never from the files (the guest writes
    them).  A missing root disk is an error, never silently replaced by an
    empty one; missing ephemeral and swap disks are blank and are remade.
    root False: the root disk is a volume, not a file here."""
    disks = []
    if root:
        path = os.path.join(instance_dir, "disk")
        if not os.path.exists(path) or "disk" not in formats:
            raise DiskMissing(f"root disk {path} is missing; refusing to boot a blank disk")
        disks.append(GuestDisk("disk", path, formats["disk"]))
    for name, kind, size_mb in (("disk.local", "ephemeral", flavor.ephemeral_gb * 1024),
                                ("disk.swap", "swap", flavor.swap_mb)):
        if not size_mb:
            continue
        path = os.path.join(instance_dir, name)
        if os.path.exists(path):
            disks.append(GuestDisk(name, path, formats.get(name, "qcow2")))
        else:
            disks.append(create_overlay(instance_dir, name, cache.blank_base(kind, size_mb)))
    return disks
