"""Removing unused bases from _base, safely.

A base is in use when the caller says so (instances reference the image,
kernel or ramdisk) or when any instance disk under instances_path has it as
its backing file (read from the qcow2 header, so the answer holds right
after a restart whatever the database says).  In-use bases get their mtime
touched; unused ones older than the minimum age are removed under the same
lock fetch() takes, after their age is checked again, so a base being
downloaded, or just fetched by a spawn in progress (fetch touches it), is
never removed.
"""
import logging
import os
import struct
import time

LOG = logging.getLogger(__name__)
QCOW2_MAGIC = b"QFI\xfb"


def qcow2_backing_file(path):
    """The backing file named in a qcow2 header, or None."""
    try:
        with open(path, "rb") as f:
            header = f.read(20)
            if len(header) < 20 or header[:4] != QCOW2_MAGIC:
                return None
            offset, size = struct.unpack(">QI", header[8:20])
            if not offset or not 0 < size <= 4096:
                return None
            f.seek(offset)
            return f.read(size).decode("utf-8", "replace")
    except OSError:
        return None


def bases_used_by_disks(instances_path, base_dir):
    """Names of the files in base_dir that some instance disk backs onto."""
    used = set()
    base_dir = os.path.realpath(base_dir)
    for entry in os.scandir(instances_path):
        if not entry.is_dir() or os.path.realpath(entry.path) == base_dir:
            continue
        for disk in os.scandir(entry.path):
            if disk.name.startswith("disk") and disk.is_file():
                backing = qcow2_backing_file(disk.path)
                if backing and os.path.dirname(os.path.realpath(backing)) == base_dir:
                    used.add(os.path.basename(backing))
    return used


def select_removals(mtimes, in_use, now, min_age):
    """Pure: which bases to remove, given {name: mtime} and the in-use set."""
    return sorted(name for name, mtime in mtimes.items()
                  if name not in in_use and now - mtime >= min_age)


def base_mtimes(base_dir):
    """{name: mtime} of the finished bases (temporary files start with '.')."""
    return {e.name: e.stat().st_mtime for e in os.scandir(base_dir)
            if e.is_file() and not e.name.startswith(".")}


def clean(cache, in_use, min_age, remove=True):
    """Touch in-use bases, remove old unused ones; return (removed, kept)."""
    mtimes = base_mtimes(cache.base_dir)
    now = time.time()
    for name in in_use & set(mtimes):
        os.utime(os.path.join(cache.base_dir, name))
    removed = []
    for name in select_removals(mtimes, in_use, now, min_age) if remove else []:
        path = os.path.join(cache.base_dir, name)
        with cache.lock(name):
            try:
                if time.time() - os.stat(path).st_mtime < min_age:
                    continue        # fetched again meanwhile
                os.unlink(path)
            except FileNotFoundError:
                continue
        LOG.info("removed unused base %s", path)
        removed.append(name)
    return removed, sorted(set(mtimes) - set(removed))
