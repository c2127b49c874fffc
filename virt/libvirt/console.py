"""The guest's serial console log, as the agent reads it.

QEMU does not write the log itself: libvirt hands the serial port's file
to virtlogd (qemu.conf stdio_handler = "logd", the default), which caps
it at virtlogd.conf's max_size and keeps max_backups rotated copies
(console.log.0 the newest), so a guest that floods its console fills at
most (1 + max_backups) * max_size bytes of the host's disk.  tail() reads
the latest bytes across the current file and the newest rotated one, so a
rotation just before a read still returns the latest lines."""
import os

LOG_NAME = "console.log"


def tail(directory, max_bytes):
    """The last max_bytes of the console log in directory (str)."""
    parts, need = [], max_bytes
    for name in (LOG_NAME, LOG_NAME + ".0"):           # newest first
        try:
            with open(os.path.join(directory, name), "rb") as f:
                size = os.fstat(f.fileno()).st_size
                take = min(size, need)
                f.seek(size - take)
                parts.insert(0, f.read(take))
        except FileNotFoundError:
            continue
        need -= take
        if need <= 0:
            break
    return b"".join(parts).decode("utf-8", "replace")
