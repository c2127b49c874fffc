"""Snapshots of an instance's root disk, as a flat image file.

Live (the guest keeps running): an empty qcow2 delta with the disk's own
backing file, a shallow block copy of the disk into it (libvirt's
blockCopy with TRANSIENT_JOB: libvirt 9.0 refuses blockRebase COPY on a
persistent domain, and this keeps the definition untouched), wait until the
mirror is ready, abort the job without pivoting (the guest stays on its own
disk), then qemu-img convert the delta, with its backing, into one flat file.
A raw root disk has no backing to share: it is copied whole.

Cold: the guest is off (or managed-saved by the caller) and the disk is
converted directly.  Either way the result is a new file in workdir that
nothing else references; the caller uploads it and removes workdir.
"""
import logging
import os
import time

import libvirt

from imagecache import qemu_img
from virt import errors

LOG = logging.getLogger(__name__)
COPY_FLAGS_SHALLOW = (libvirt.VIR_DOMAIN_BLOCK_COPY_SHALLOW
                      | libvirt.VIR_DOMAIN_BLOCK_COPY_REUSE_EXT
                      | libvirt.VIR_DOMAIN_BLOCK_COPY_TRANSIENT_JOB)
COPY_FLAGS_FULL = (libvirt.VIR_DOMAIN_BLOCK_COPY_REUSE_EXT
                   | libvirt.VIR_DOMAIN_BLOCK_COPY_TRANSIENT_JOB)


def delta_xml(path):
    return (f"<disk type='file'><driver name='qemu' type='qcow2'/>"
            f"<source file='{path}'/></disk>")


def live_copy(guest, target_dev, disk_format, base, size_bytes, workdir, progress,
              timeout=600):
    """Mirror the running guest's disk target_dev into workdir/delta.qcow2;
    returns its path.  base: the CachedImage the disk backs onto (None for
    a raw disk)."""
    delta = os.path.join(workdir, "delta.qcow2")
    if disk_format == "qcow2" and base is not None:
        qemu_img.create_overlay(delta, base.path, base.format, size_bytes)
        flags = COPY_FLAGS_SHALLOW
    else:
        qemu_img.create_blank(delta, size_bytes)
        flags = COPY_FLAGS_FULL
    guest.block_copy(target_dev, delta_xml(delta), flags)
    try:
        deadline = time.monotonic() + timeout
        while True:
            info = guest.block_job_info(target_dev)
            if not info:
                raise errors.VirtError(f"block copy of {target_dev} ended unexpectedly")
            cur, end = info.get("cur", 0), info.get("end", 0)
            if end:
                progress(min(cur * 100 // end, 100))
            if end and cur == end:
                break
            if time.monotonic() > deadline:
                raise errors.VirtError(f"block copy of {target_dev} not ready in {timeout}s")
            time.sleep(0.02)
    finally:
        guest.block_job_abort(target_dev)     # no pivot: the guest keeps its disk
    return delta


def flatten(src, src_format, workdir, out_format):
    """One self-contained image of src (with its backing chain)."""
    out = os.path.join(workdir, f"snapshot.{out_format}")
    qemu_img.convert(src, src_format, out, out_format)
    return out
