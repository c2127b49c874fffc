"""Sparse files: which parts of a file hold data (SEEK_DATA/SEEK_HOLE), and
a copy that keeps the holes holes.  Used for the disks a cold migration
moves, over the network (compute.parts.disk_transfer) or on one filesystem."""
import os


def data_extents(fd, size):
    """(offset, length) of the parts of an open file that may hold data."""
    pos = 0
    while pos < size:
        try:
            start = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError:           # ENXIO: only a hole is left
            return
        end = os.lseek(fd, start, os.SEEK_HOLE)
        yield start, min(end, size) - start
        pos = end


def copy_local(src, dst):
    """The same sparse copy on one filesystem (shared storage, or a resize
    on the same host): data extents only, holes stay holes."""
    with open(src, "rb") as fin, open(dst, "xb") as fout:
        size = os.fstat(fin.fileno()).st_size
        os.ftruncate(fout.fileno(), size)
        for offset, length in data_extents(fin.fileno(), size):
            end = offset + length
            while offset < end:
                n = os.copy_file_range(fin.fileno(), fout.fileno(), min(end - offset, 1 << 30),
                                       offset, offset)
                if n == 0:
                    break
                offset += n
