"""Every qemu-img invocation of the agent.

Commands go through oslo.concurrency's processutils.execute: argv lists (no
shell), logged, and a ProcessExecutionError carrying exit code and stderr on
failure.  The input format is always given with -f (or -F for a backing
file) so qemu-img never probes a format.  Files reach qemu-img only after
imagecache.inspector passed them, and qemu-img reading a downloaded image
(untrusted=True) runs under CPU-time and address-space limits set by
util-linux's prlimit (1 ms, where processutils' own prlimit= option starts
a Python interpreter: 45 ms).  The agent's own files (instance disks,
snapshots) are not limited: converting a large disk takes more than any
limit that stops a hostile header, and each of a convert's I/O threads
reserves its own stack and heap address space.
"""
import json
import os

from oslo_concurrency import processutils

from imagecache.errors import UnsafeImage

LIMITS = {"cpu_seconds": 30, "address_space_mb": 1024}


def configure_limits(cpu_seconds, address_space_mb):
    LIMITS.update(cpu_seconds=cpu_seconds, address_space_mb=address_space_mb)


def _run(*args, untrusted=False):
    limits = ["prlimit", f"--cpu={LIMITS['cpu_seconds']}",
              f"--as={LIMITS['address_space_mb'] * 1024 * 1024}", "--"] if untrusted else []
    return processutils.execute(*limits, "qemu-img", *args)


def check(path, fmt):
    """Refuse (UnsafeImage) an image whose structure qemu-img finds
    corrupt (tables pointing past the end of the file, ...); leaked
    clusters are harmless.  Formats without a check pass."""
    try:
        _run("check", "-f", fmt, "--output=json", path, untrusted=True)
    except processutils.ProcessExecutionError as e:
        if e.exit_code == 63:                  # this format has no check
            return
        if e.exit_code == 3:                   # leaks only
            return
        try:
            found = json.loads(e.stdout)
            what = (f"{found.get('corruptions', 0)} corruptions, "
                    f"{found.get('check-errors', 0)} check errors")
        except ValueError:
            what = (e.stderr or "").strip().splitlines()[-1:] or [f"exit {e.exit_code}"]
            what = what[0]
        raise UnsafeImage(f"qemu-img check finds the {fmt} image corrupt: {what}") from None


# what qemu-img makes is a disk: the agent's and its group's to write (its
# own group at rest; QEMU's while libvirt hands the disk to it, a group the
# agent is in), no one else's; qemu-img itself makes 0644 less the umask
DISK_MODE = 0o660


def _made(path):
    os.chmod(path, DISK_MODE)


def create_overlay(path, backing, backing_format, size_bytes):
    """A qcow2 overlay on backing (explicit -F), of virtual size size_bytes."""
    _run("create", "-q", "-f", "qcow2", "-o", "cluster_size=65536", "-b", backing,
         "-F", backing_format, path, str(size_bytes))
    _made(path)


def create_overlay_in_use(path, backing, backing_format):
    """A qcow2 overlay on backing while a running QEMU has backing open
    (a live snapshot's overlay, made by the agent so that it owns it): the
    size read with -U (shared), the backing not opened (-u)."""
    info = json.loads(_run("info", "-U", "-f", backing_format, "--output=json", backing)[0])
    _run("create", "-q", "-f", "qcow2", "-o", "cluster_size=65536", "-u", "-b", backing,
         "-F", backing_format, path, str(info["virtual-size"]))
    _made(path)


def create_blank(path, size_bytes, fmt="qcow2"):
    """An empty image (qcow2 or sparse raw) of virtual size size_bytes."""
    _run("create", "-q", "-f", fmt, path, str(size_bytes))
    _made(path)


def convert(src, src_format, dst, dst_format, preallocation="off", force_share=False,
            untrusted=False):
    """Copy src into a new dst of dst_format; preallocation=falloc reserves
    the space up front (raw and qcow2 only).  force_share: read src although
    a running QEMU has it open (the caller guarantees nothing writes it).
    untrusted: src came from the image service (limits apply)."""
    opts = ["-o", f"preallocation={preallocation}"] if preallocation != "off" else []
    share = ["-U"] if force_share else []
    _run("convert", *share, "-f", src_format, "-O", dst_format, *opts, src, dst,
         untrusted=untrusted)
    _made(dst)


def commit(path, fmt):
    """Write path's data into its backing file (the guest is off)."""
    _run("commit", "-q", "-f", fmt, path)


def resize(path, fmt, size_bytes, preallocation="off"):
    """Grow path to size_bytes; preallocation=falloc reserves the new part."""
    opts = [f"--preallocation={preallocation}"] if preallocation != "off" else []
    _run("resize", "-q", "-f", fmt, *opts, path, str(size_bytes))


def rebase(path, fmt, backing, backing_format):
    """Move path onto another backing file keeping what the guest reads
    (safe mode: the clusters where the old and new backings differ are
    copied into path first)."""
    _run("rebase", "-q", "-f", fmt, "-b", backing, "-F", backing_format, path)


def rebase_unsafe(path, fmt, backing, backing_format):
    """Point path's header at backing (explicit -F) without reading data:
    for an overlay moved to a host whose copy of the same base lives
    elsewhere."""
    _run("rebase", "-q", "-u", "-f", fmt, "-b", backing, "-F", backing_format, path)
