"""Privileged entry point for guests' console logs (privileged.read_logs:
CAP_DAC_READ_SEARCH only).

QEMU does not write the log itself: libvirt hands the serial port's file
to virtlogd (qemu.conf stdio_handler = "logd", the default), which writes
it as root, mode 0600, caps it at virtlogd.conf's max_size and keeps
max_backups rotated copies (console.log.0 the newest), so a guest that
floods its console fills at most (1 + max_backups) * max_size bytes of
the host's disk.  tail() reads the latest bytes across the current file
and the newest rotated one, so a rotation just before a read still
returns the latest lines.

The entry point takes an instance uuid, never a path: it opens the
instance's directory under instances_path's fd and the log in it without
following links (privileged.files), and reads only a regular file with
one link owned by root (virtlogd) or by the agent, so the capability
reads the guest's log and nothing the caller points it at."""
import os
import uuid as uuidlib

from privileged import Refused, files, read_logs, root_fd

__all__ = ["LOG_NAME", "Refused", "console_tail", "tail"]

LOG_NAME = "console.log"
MAX_BYTES = 16 * 1024 * 1024


def tail(open_log, max_bytes):
    """The last max_bytes of the console log (str); open_log(name) gives
    an open binary file, or None when there is none by that name."""
    parts, need = [], max_bytes
    for name in (LOG_NAME, LOG_NAME + ".0"):           # newest first
        f = open_log(name)
        if f is None:
            continue
        with f:
            size = os.fstat(f.fileno()).st_size
            take = min(size, need)
            f.seek(size - take)
            parts.insert(0, f.read(take))
        need -= take
        if need <= 0:
            break
    return b"".join(parts).decode("utf-8", "replace")


def _canonical_uuid(value):
    try:
        if isinstance(value, str) and str(uuidlib.UUID(value)) == value:
            return value
    except ValueError:
        pass
    raise Refused(f"instance uuid {value!r} refused")


@read_logs.entrypoint
def console_tail(instance_uuid, max_bytes):
    """The last max_bytes of an instance's console log."""
    if not isinstance(max_bytes, int) or isinstance(max_bytes, bool) \
            or not 0 < max_bytes <= MAX_BYTES:
        raise Refused(f"length {max_bytes!r} refused")
    me = os.getuid()
    dir_fd = files.open_dir(root_fd("instances_path"), _canonical_uuid(instance_uuid), {me})
    try:
        return tail(lambda name: files.open_regular(dir_fd, name, {0, me}), max_bytes)
    finally:
        os.close(dir_fd)
