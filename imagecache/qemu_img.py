"""Every qemu-img invocation of the agent.

Commands go through oslo.concurrency's processutils.execute: argv lists (no
shell), logged, and a ProcessExecutionError carrying exit code and stderr on
failure.  The input format is always given with -f (or -F for a backing
file) so qemu-img never probes a format.  Calls on untrusted images run
under CPU-time and address-space limits.
"""
import json

from oslo_concurrency import processutils

QEMU_IMG_LIMITS = processutils.ProcessLimits(cpu_time=30, address_space=1024 * 1024 * 1024)


def configure_limits(cpu_seconds, address_space_mb):
    global QEMU_IMG_LIMITS
    QEMU_IMG_LIMITS = processutils.ProcessLimits(
        cpu_time=cpu_seconds, address_space=address_space_mb * 1024 * 1024)


def info(path, fmt):
    """qemu-img info of an untrusted file, as a dict (runs under limits)."""
    out, _ = processutils.execute("qemu-img", "info", "-f", fmt, "--output=json", path,
                                  prlimit=QEMU_IMG_LIMITS)
    return json.loads(out)


def create_overlay(path, backing, backing_format, size_bytes):
    """A qcow2 overlay on backing (explicit -F), of virtual size size_bytes."""
    processutils.execute("qemu-img", "create", "-q", "-f", "qcow2", "-o", "cluster_size=65536",
                         "-b", backing, "-F", backing_format, path, str(size_bytes))


def create(path, fmt, size_bytes):
    processutils.execute("qemu-img", "create", "-q", "-f", fmt, path, str(size_bytes))


def convert(src, src_format, dst, dst_format):
    processutils.execute("qemu-img", "convert", "-f", src_format, "-O", dst_format,
                         src, dst, prlimit=QEMU_IMG_LIMITS)


def resize(path, fmt, size_bytes):
    processutils.execute("qemu-img", "resize", "-q", "-f", fmt, path, str(size_bytes))
