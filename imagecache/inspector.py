"""Read image headers, never trusting the file: which format it is and how
large its virtual disk is.  No qemu-img is involved.

This covers what the cache needs today (raw and qcow2, and refusing a qcow2
that points at a backing or external data file); the full set of formats is
the image-safety work.
"""
import os
import struct

from imagecache.errors import UnsafeImage

QCOW2_MAGIC = b"QFI\xfb"
QCOW2_INCOMPAT_DATA_FILE = 1 << 2
QCOW2_KNOWN_INCOMPAT = 0b11111  # dirty, corrupt, data-file, compression, extl2


def detect(path):
    """Return (format, virtual_size) of the file at path."""
    with open(path, "rb") as f:
        header = f.read(112)
        size = os.fstat(f.fileno()).st_size
    if header[:4] == QCOW2_MAGIC:
        return "qcow2", _check_qcow2(header)
    return "raw", size


def _check_qcow2(header):
    if len(header) < 72:
        raise UnsafeImage("truncated qcow2 header")
    version, backing_offset = struct.unpack(">IQ", header[4:16])
    virtual_size = struct.unpack(">Q", header[24:32])[0]
    if version not in (2, 3):
        raise UnsafeImage(f"qcow2 version {version} is not supported")
    if backing_offset:
        raise UnsafeImage("qcow2 image names a backing file")
    if version == 3:
        incompat = struct.unpack(">Q", header[72:80])[0]
        if incompat & QCOW2_INCOMPAT_DATA_FILE:
            raise UnsafeImage("qcow2 image has an external data file")
        if incompat & ~QCOW2_KNOWN_INCOMPAT:
            raise UnsafeImage(f"qcow2 image has unknown incompatible features {incompat:#x}")
    return virtual_size
