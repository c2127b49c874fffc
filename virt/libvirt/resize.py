"""The disk side of a cold migration or resize.

- Source: the instance directory is moved aside to `<dir>_resize` (kept
  until the resize is confirmed, and moved back by a revert); its disk
  files are what travels.
- Destination: the files that arrived are made this host's own: overlays
  are pointed at this host's copy of their base (`qemu-img rebase -u`: a
  header change, the base is the same image), the root and ephemeral
  disks grow to the new flavor (never shrink: refused before anything
  moved), and a swap disk whose size changed is dropped so it is made
  anew, blank, at the new size.

What arrives is another host's data and is untrusted: check_arrived
inspects every file (format as declared, no data file, a backing file
only by the name of the base it belongs on, virtual size within the old
flavor) before adopt() lets qemu-img, or define() lets QEMU, open it.
"""
import os
import shutil
import stat

from imagecache import inspector, qemu_img
from virt.errors import VirtError
from virt.libvirt import disks

RESIZE_SUFFIX = "_resize"
DISK_FILES = ("disk", "disk.local", "disk.swap")
NVRAM = "nvram.fd"                      # a UEFI guest's variable store
NVRAM_MAX_BYTES = 4 * 1024 * 1024       # OVMF's 4M store is 540 KiB
TRAVELLING = DISK_FILES + (NVRAM,)      # what a cold migration carries


def present_formats(inst_dir, formats):
    """{name: format} of the disk files in inst_dir: as in formats, or
    qcow2 for those made since (reopen_all makes overlays)."""
    return {n: formats.get(n, "qcow2") for n in DISK_FILES
            if os.path.exists(os.path.join(inst_dir, n))}


def resize_dir(inst_dir):
    return inst_dir + RESIZE_SUFFIX


def move_aside(inst_dir):
    """Source: inst_dir -> inst_dir_resize; {name: path} of its disk files."""
    aside = resize_dir(inst_dir)
    if os.path.exists(aside):
        raise VirtError(f"{aside} exists: an earlier resize was not confirmed or reverted")
    os.rename(inst_dir, aside)
    return aside_files(inst_dir)


def aside_files(inst_dir):
    """{name: path} of the disk files (and UEFI variable store) kept aside."""
    aside = resize_dir(inst_dir)
    return {n: os.path.join(aside, n) for n in TRAVELLING
            if os.path.exists(os.path.join(aside, n))}


def move_back(inst_dir):
    """Source, on revert or failure: inst_dir_resize -> inst_dir (whatever a
    destination on the same filesystem left in inst_dir goes).  Nothing
    aside (already moved back) is fine."""
    aside = resize_dir(inst_dir)
    if not os.path.isdir(aside):
        return False
    if os.path.lexists(inst_dir):
        shutil.rmtree(inst_dir)
    os.rename(aside, inst_dir)
    return True


def remove_aside(inst_dir):
    """Source, on confirm."""
    shutil.rmtree(resize_dir(inst_dir), ignore_errors=True)


def check_arrived(inst_dir, formats, old, image_files, cache, only_travelling=False):
    """Refuse (UnsafeImage) any file in inst_dir that is not a known disk
    of the declared format, or that names a data file, a backing file other
    than its base, or a virtual size beyond the old flavor's disk.
    only_travelling: a directory another host left (an evacuation on
    shared storage), where files other than TRAVELLING ones are made anew
    or only written: those are passed over."""
    bounds = {"disk": (disks.root_size(old, image_files.root), image_files.root.path)}
    if old.ephemeral_gb:
        bounds["disk.local"] = (old.ephemeral_gb * disks.GiB,
                                cache.blank_base("ephemeral", old.ephemeral_gb * 1024).path)
    if old.swap_mb:
        bounds["disk.swap"] = (old.swap_mb * 1024 * 1024,
                               cache.blank_base("swap", old.swap_mb).path)
    for name in sorted(os.listdir(inst_dir)):
        if only_travelling and name not in TRAVELLING:
            continue
        if name == NVRAM:
            _check_nvram(os.path.join(inst_dir, name))
            continue
        if name not in bounds or name not in formats:
            raise inspector.UnsafeImage(f"{name!r} arrived, which is no disk of this "
                                        "instance's flavor and formats")
        limit, base = bounds[name]
        try:
            inspector.inspect(os.path.join(inst_dir, name), formats[name],
                              max_virtual_size=limit, allowed_backing=(os.path.basename(base),))
        except inspector.UnsafeImage as e:
            raise inspector.UnsafeImage(f"received disk {name}: {e}") from None


def _check_nvram(path):
    """A variable store is the guest's own data, opened by QEMU as a raw
    pflash: a plain file of a variable store's size, nothing else."""
    st = os.lstat(path)
    if not stat.S_ISREG(st.st_mode) or not 0 < st.st_size <= NVRAM_MAX_BYTES:
        raise inspector.UnsafeImage(f"received {NVRAM} is not a variable store "
                                    f"({st.st_size} bytes)")


def adopt(inst_dir, formats, old, new, image_files, cache):
    """Destination: the arrived files of inst_dir made ready for the new
    flavor; the formats of the disks that remain (reopen_all makes the
    missing ephemeral and swap disks)."""
    formats = {n: f for n, f in formats.items()
               if os.path.exists(os.path.join(inst_dir, n))}
    if "disk" not in formats:
        raise VirtError(f"root disk missing in {inst_dir} after the transfer")
    root = os.path.join(inst_dir, "disk")
    base = image_files.root
    if formats["disk"] == "qcow2":
        qemu_img.rebase_unsafe(root, "qcow2", base.path, base.format)
    old_size, new_size = disks.root_size(old, base), disks.root_size(new, base)
    if new_size > old_size:
        qemu_img.resize(root, formats["disk"], new_size)
    local = os.path.join(inst_dir, "disk.local")
    if "disk.local" in formats:
        eph = cache.blank_base("ephemeral", old.ephemeral_gb * 1024)
        qemu_img.rebase_unsafe(local, formats["disk.local"], eph, "raw")
        if new.ephemeral_gb > old.ephemeral_gb:
            qemu_img.resize(local, formats["disk.local"], new.ephemeral_gb * disks.GiB)
    swap = os.path.join(inst_dir, "disk.swap")
    if "disk.swap" in formats:
        if new.swap_mb != old.swap_mb:
            os.unlink(swap)
            del formats["disk.swap"]
        else:
            qemu_img.rebase_unsafe(swap, formats["disk.swap"],
                                   cache.blank_base("swap", old.swap_mb), "raw")
    return formats
