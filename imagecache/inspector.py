"""Decide what an image file is, and whether it is safe, from its headers
only: no qemu-img touches a file before it passed here.

The parsing is oslo.utils' format_inspector: the code OpenStack maintains
for these very CVEs (qcow2 backing/data files, VMDK extents naming host
paths, format confusion), covering raw, qcow2, vmdk, vhd, vhdx, vdi, qed,
iso, gpt and luks.  On top of it this module adds our policy:

- the detected format must be the declared one (raw/gpt and vhd/vpc are
  the same thing under two names);
- every safety check of the format must pass (backing file, data file,
  unknown qcow2 features, VMDK descriptor and extents, ...);
- QED and LUKS are refused outright; VMDK only of vmdk_allowed_types;
- the virtual size may not exceed a limit (the flavor's root disk);
- a qcow2 may have a backing file only where the caller allows one by
  name (an overlay from another agent names its base), and never a data
  file.
"""
import os
import struct

from imagecache.errors import UnsafeImage

# Glance disk_format -> the inspector's name for the same format.
DECLARED_AS = {"raw": "raw", "qcow2": "qcow2", "vmdk": "vmdk", "vhd": "vhd",
               "vhdx": "vhdx", "vdi": "vdi", "iso": "iso", "qed": "qed"}
DETECTED_ALIASES = {"gpt": "raw"}     # a raw disk with a GPT partition table
REFUSED = {"qed": "QED images are not accepted (qemu has deprecated the format)",
           "luks": "encrypted (LUKS) images are not accepted"}
# Inspector name -> the name qemu-img -f wants.
QEMU_FORMAT = {"vhd": "vpc"}


def qemu_format(fmt):
    return QEMU_FORMAT.get(fmt, fmt)


QCOW2_MAGIC = b"QFI\xfb"


def qcow2_backing_file(path):
    """The backing file named in a qcow2 header, or None (no qcow2, no
    backing file, or a name longer than qemu allows)."""
    try:
        with open(path, "rb") as f:
            header = f.read(20)
            if len(header) < 20 or header[:4] != QCOW2_MAGIC:
                return None
            offset, size = struct.unpack(">QI", header[8:20])
            if not offset or not 0 < size <= 1023:
                return None
            f.seek(offset)
            return f.read(size).decode("utf-8", "replace")
    except OSError:
        return None


def inspect(path, declared, vmdk_allowed_types=("monolithicSparse", "streamOptimized"),
            max_virtual_size=None, allowed_backing=(), boot_file=False):
    """(format, virtual_size) of the file at path, or UnsafeImage naming
    the reason it cannot be used.  allowed_backing: base names (not paths)
    a qcow2's backing file may have; its directory is not trusted and the
    caller points the overlay at its own copy before anything opens it.
    boot_file: a kernel or ramdisk, which QEMU loads as a file and never
    opens as a disk: it must be no disk image in disguise (raw), and the
    partition-table checks do not apply (a bzImage starts with a boot
    sector that looks like a broken MBR)."""
    # loaded by the first inspection: it brings cryptography (LUKS) along
    from oslo_utils.imageutils import format_inspector as fi
    try:
        found = fi.detect_file_format(path)
    except fi.ImageFormatError as e:
        raise UnsafeImage(f"cannot tell the image's format: {e}")
    name = DETECTED_ALIASES.get(found.NAME, found.NAME) if found else "raw"
    if name in REFUSED:
        raise UnsafeImage(REFUSED[name])
    expected = DECLARED_AS.get(declared)
    if expected is None:
        raise UnsafeImage(f"disk_format {declared!r} is not supported")
    if name != expected:
        raise UnsafeImage(f"image claims disk_format {declared} but its data is {name}")
    if boot_file and name == "raw":
        return name, os.path.getsize(path)
    try:
        found.safety_check()
    except fi.SafetyCheckFailed as e:
        failures = dict(e.failures)
        if name == "qcow2" and "backing_file" in failures:
            backing = qcow2_backing_file(path) or ""
            if os.path.basename(backing) in allowed_backing and "/.." not in backing:
                del failures["backing_file"]
            else:
                failures["backing_file"] = f"names {backing!r}, not one of this host's bases"
        if failures:
            reasons = "; ".join(f"{check}: {err}" for check, err in sorted(failures.items()))
            raise UnsafeImage(f"unsafe {name} image: {reasons}")
    except fi.ImageFormatError as e:
        raise UnsafeImage(f"unsafe {name} image: {e}")
    if name == "vmdk":
        _check_vmdk_type(found, vmdk_allowed_types)
    virtual_size = os.path.getsize(path) if name == "raw" else found.virtual_size
    if max_virtual_size is not None and virtual_size > max_virtual_size:
        raise UnsafeImage(f"image virtual size {virtual_size} bytes exceeds the "
                          f"{max_virtual_size} bytes allowed (the flavor's disk)")
    return name, virtual_size


def _check_vmdk_type(found, allowed):
    kind = getattr(found, "vmdktype", None)      # createType, lower-cased
    if kind not in {a.lower() for a in allowed}:
        raise UnsafeImage(f"VMDK subformat {kind!r} is not allowed "
                          f"(vmdk_allowed_types: {', '.join(allowed)})")
