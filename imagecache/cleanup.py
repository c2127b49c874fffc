"""Removing unused bases from _base, safely.

A base is in use when the caller says so (instances reference the image,
kernel or ramdisk) or when any instance disk under instances_path has it as
its backing file (read from the qcow2 header, so the answer holds right
after a restart whatever the database says).  A base's last use is the
later of its own mtime (when it was made) and its marker's,
_base/.used/<name>, which the agent owns: the base itself is never written
once made, since libvirt hands it to QEMU's user while a guest runs on it
(dynamic ownership) and the agent may then only read it.  In-use bases get
their marker touched; unused ones older than the minimum age are removed
under the same lock fetch() takes, after their age is checked again, so a
base being downloaded, or just fetched by a spawn in progress (fetch marks
it), is never removed.
"""
import logging
import os
import time

from imagecache.inspector import qcow2_backing_file

LOG = logging.getLogger(__name__)


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


USED_DIR = ".used"


def mark_used(base_dir, name):
    """Record that base `name` is used now (its marker's mtime)."""
    marks = os.path.join(base_dir, USED_DIR)
    os.makedirs(marks, exist_ok=True)
    path = os.path.join(marks, name)
    with open(path, "a"):
        pass
    os.utime(path)


def forget(base_dir, name):
    try:
        os.unlink(os.path.join(base_dir, USED_DIR, name))
    except FileNotFoundError:
        pass


def last_used(base_dir):
    """{name: when last used} of the finished bases (temporary files start
    with '.'): the later of the base's mtime and its marker's."""
    marks = {}
    try:
        marks = {e.name: e.stat().st_mtime for e in os.scandir(os.path.join(base_dir,
                                                                            USED_DIR))}
    except FileNotFoundError:
        pass
    return {e.name: max(e.stat().st_mtime, marks.get(e.name, 0.0))
            for e in os.scandir(base_dir) if e.is_file() and not e.name.startswith(".")}


def base_sizes(base_dir):
    """{name: bytes on disk} of the finished bases."""
    return {e.name: e.stat().st_blocks * 512 for e in os.scandir(base_dir)
            if e.is_file() and not e.name.startswith(".")}


def clean(cache, in_use, min_age, remove=True):
    """Touch in-use bases, remove old unused ones; return (removed, kept)."""
    mtimes = last_used(cache.base_dir)
    now = time.time()
    for name in in_use & set(mtimes):
        mark_used(cache.base_dir, name)
    removed = []
    for name in select_removals(mtimes, in_use, now, min_age) if remove else []:
        path = os.path.join(cache.base_dir, name)
        with cache.lock(name):
            try:
                if time.time() - last_used(cache.base_dir).get(name, 0.0) < min_age:
                    continue        # fetched again meanwhile
                os.unlink(path)
                forget(cache.base_dir, name)
            except FileNotFoundError:
                continue
        LOG.info("removed unused base %s", path)
        removed.append(name)
    return removed, sorted(set(mtimes) - set(removed))
