"""The test guest: built once from Debian packages by
tools/test-guest/build.sh and cached under $XDG_CACHE_HOME (or ~/.cache)."""
import hashlib
import os
import re
import subprocess
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD_DIR = os.path.join(ROOT, "tools", "test-guest")
BOOT_MARKER = "TB: boot-ok"
DISK_MARKER = "TB: disk-marker=test-guest-disk"


def _recipe_hash():
    h = hashlib.sha1()
    for name in sorted(os.listdir(BUILD_DIR)):
        with open(os.path.join(BUILD_DIR, name), "rb") as f:
            h.update(name.encode() + f.read())
    return h.hexdigest()[:12]


def build():
    """Directory holding vmlinux, initrd.img, disk.raw and disk.qcow2."""
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    out = os.path.join(cache, "compute-agent", "test-guest-" + _recipe_hash())
    subprocess.run([os.path.join(BUILD_DIR, "build.sh"), out], check=True)
    return out


def make_disk(directory, marker):
    """Another disk for the test guest, like build.sh's but with its own
    /marker (a "new image" for rebuilds); the qcow2 file's path."""
    content = os.path.join(directory, "content")
    os.makedirs(content, exist_ok=True)
    with open(os.path.join(content, "marker"), "w") as f:
        f.write(marker + "\n")
    raw, out = os.path.join(directory, "disk.raw"), os.path.join(directory, "disk.qcow2")
    subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "tbroot", "-d", content, raw, "64M"],
                   check=True)
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw, out], check=True)
    os.unlink(raw)
    return out


def boots(console):
    """How many times the guest booted, by its console."""
    return console.count(BOOT_MARKER)


def last_tick(console):
    """The number of the guest's last 'TB: tick N' line (0 if none)."""
    ticks = re.findall(r"^TB: tick (\d+) ", console, re.M)
    return int(ticks[-1]) if ticks else 0


def ticks_after_last_boot(console):
    """Tick numbers printed since the guest's last boot."""
    tail = console.rsplit(BOOT_MARKER, 1)[-1]
    return [int(n) for n in re.findall(r"^TB: tick (\d+) ", tail, re.M)]


class TickWatcher:
    """When each tick line reaches the host's console log, by the host's
    clock (a paused guest's own clock stops, so its uptime cannot show how
    long it was stopped).  Use as a context manager; .gaps() are the
    seconds between consecutive arrivals."""

    def __init__(self, path, poll=0.005):
        self.path, self.poll, self.arrivals = path, poll, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self):
        offset = os.path.getsize(self.path) if os.path.exists(self.path) else 0
        pending = b""
        while not self._stop.is_set():
            try:
                with open(self.path, "rb") as f:
                    f.seek(offset)
                    data = f.read()
            except FileNotFoundError:
                data = b""
            now = time.monotonic()
            if data:
                offset += len(data)
                pending += data
                *lines, pending = pending.split(b"\n")
                self.arrivals += [now for line in lines if line.startswith(b"TB: tick ")]
            time.sleep(self.poll)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        return False

    def gaps(self):
        return [b - a for a, b in zip(self.arrivals, self.arrivals[1:], strict=False)]
