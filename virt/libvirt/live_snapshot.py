"""Snapshots of an instance's root disk, as a flat image file.

Live (the guest keeps running), in three steps:

1. freeze: an external disk-only snapshot (libvirt, no snapshot metadata)
   puts a new empty overlay, `disk.snapshot` in the instance directory, on
   top of the root disk.  From that instant the guest writes go to the
   overlay, so the root disk and its base are the point-in-time image and
   nothing writes them.  Other disks are left out.
2. flatten: `qemu-img convert` of the frozen root disk with its base into
   workdir: one pass over the data, the same work as for a stopped guest.
3. merge back: an active block commit of the overlay into the root disk,
   and a pivot once they are in sync; libvirt then puts the running guest
   and its persistent definition back on the root disk.  Only what the
   guest wrote since the freeze is copied.  The overlay file is removed.

merge_back works from what libvirt reports, not from agent memory, so it
is safe to repeat: the agent that starts after a kill runs it for every
instance that has an overlay.  A job still running is waited for; a guest
that was shut off on the overlay gets an offline `qemu-img commit` and its
definition back on the root disk.

Nova's recipe (a shallow block copy into a delta, then convert delta +
base) reads the data twice, and QEMU's mirror ran at about a third of
convert's speed here (docs/design-notes.md, "Snapshots").

Cold: the guest is off (or managed-saved by the caller) and the root disk
is converted directly.  Either way the result is a new file in workdir that
nothing else references; the caller uploads it and removes workdir.
"""
import contextlib
import logging
import os
import threading
import time

from imagecache import qemu_img
from virt import errors
from virt.driver import allocated
from virt.libvirt import guest_agent
from virt.libvirt.xml.domain import Domain
from virt.libvirt.xml.domainsnapshot import DomainSnapshot, SnapshotDisk

LOG = logging.getLogger(__name__)
OVERLAY = "disk.snapshot"


def snapshot_xml(disks, root_dev, overlay):
    """The domainsnapshot XML: root_dev to a qcow2 overlay, others not."""
    snap = DomainSnapshot()
    for d in disks:
        if d.target_dev == root_dev:
            snap.disks.append(SnapshotDisk(name=d.target_dev, snapshot="external",
                                           driver_type="qcow2", source_file=overlay))
        else:
            snap.disks.append(SnapshotDisk(name=d.target_dev, snapshot="no"))
    return snap.to_xml(pretty=False)


def disk_on(domain, path):
    """The <disk> of domain whose top image is path, or None."""
    return next((d for d in domain.devices.disks if d.source_file == path), None)


def freeze(guest, root, overlay, agent_timeout=10, root_format="qcow2"):
    """Move the running guest's writes to overlay (made here first, so it
    is the agent's file, not QEMU's); root is then frozen.
    With a connected guest agent the guest's filesystems are frozen for
    that instant (quiesced); an agent that does not answer within
    agent_timeout leaves a crash-consistent snapshot, as without one.
    Whether it was quiesced."""
    domain = Domain.parse(guest.xml_desc())
    disk = disk_on(domain, root)
    if disk is None:
        raise errors.VirtError(f"root disk {root} not found in the guest definition")
    xml = snapshot_xml(domain.devices.disks, disk.target_dev, overlay)
    qemu_img.create_overlay_in_use(overlay, root, root_format)
    try:
        return _snapshot(guest, domain, xml, root, overlay, agent_timeout)
    except Exception:
        if disk_on(Domain.parse(guest.xml_desc()), overlay) is None:
            os.unlink(overlay)             # the guest never moved onto it
        raise


def _snapshot(guest, domain, xml, root, overlay, agent_timeout):
    started, quiesced = time.monotonic(), False
    if guest_agent.state(domain) == "connected":
        try:
            guest.set_agent_timeout(agent_timeout)
            guest.snapshot_disks(xml, quiesce=True)
            quiesced = True
        except errors.VirtError as e:
            LOG.warning("%s: the guest agent did not freeze the filesystems (%s); "
                        "snapshot without the freeze", root, e)
    if not quiesced:
        guest.snapshot_disks(xml)
    LOG.info("%s frozen%s, the guest writes to %s (%.3f s)", root,
             " with the guest's filesystems quiesced" if quiesced else "", overlay,
             time.monotonic() - started)
    return quiesced


@contextlib.contextmanager
def watching(path, total, progress, interval=0.25):
    """Report path's growth as a percentage of total while the body runs."""
    done = threading.Event()

    def watch():
        while not done.wait(interval):
            progress(min(allocated(path) * 100 // max(total, 1), 99))
    watcher = threading.Thread(target=watch, name="snapshot-progress", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()
        watcher.join()
    progress(100)


def flatten(src, src_format, workdir, out_format, total, progress, frozen=False):
    """One self-contained image of src (with its backing chain) in workdir;
    total: the bytes expected, for progress.  frozen: a running QEMU still
    has src open, read-only, and nothing writes it."""
    out = os.path.join(workdir, f"snapshot.{out_format}")
    started = time.monotonic()
    with watching(out, total, progress):
        qemu_img.convert(src, src_format, out, out_format, force_share=frozen)
    LOG.info("%s flattened into %s in %.3f s", src, out, time.monotonic() - started)
    return out


def _wait_ready(guest, dev, timeout):
    deadline = time.monotonic() + timeout
    while True:
        info = guest.block_job_info(dev)
        if not info:
            raise errors.VirtError(f"the merge of {dev}'s snapshot overlay ended unexpectedly")
        if info.get("end") and info.get("cur") == info.get("end"):
            return
        if time.monotonic() > deadline:
            raise errors.VirtError(f"the merge of {dev}'s snapshot overlay was not in sync "
                                   f"after {timeout} s; the guest still runs on it")
        time.sleep(0.005)


def _pivot_when_ready(guest, dev, timeout):
    """Pivot dev onto the merge's target once the job is in sync.  In sync
    (cur == end) can come a moment before QEMU, and so libvirt, calls the
    job ready; a pivot then is refused (BlockJobNotReady, seen under load)
    and tried again until timeout."""
    deadline = time.monotonic() + timeout
    while True:
        _wait_ready(guest, dev, max(deadline - time.monotonic(), 0))
        try:
            return guest.block_job_pivot(dev)
        except errors.BlockJobNotReady:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def merge_back(guest, define, root, overlay, timeout=600):
    """Put the guest back on root with all it wrote to overlay, and remove
    overlay.  define(xml) replaces the persistent definition.  Nothing to
    do but the removal when the guest is not on overlay."""
    active = guest.is_active()
    if active:
        disk = disk_on(Domain.parse(guest.xml_desc()), overlay)
        if disk is not None:
            if not guest.block_job_info(disk.target_dev):   # else a merge already runs
                guest.block_commit_active(disk.target_dev, root)
            _pivot_when_ready(guest, disk.target_dev, timeout)
    persistent = Domain.parse(guest.inactive_xml())
    disk = disk_on(persistent, overlay)
    if disk is not None:
        if not active:                 # shut off while on the overlay
            LOG.warning("merging snapshot overlay %s into %s offline", overlay, root)
            qemu_img.commit(overlay, "qcow2")
        disk.source_file, disk.backing_store = root, False
        define(persistent.to_xml())
    os.unlink(overlay)
