"""The test guest: built once from Debian packages by
tools/test-guest/build.sh and cached under $XDG_CACHE_HOME (or ~/.cache)."""
import hashlib
import os
import re
import subprocess

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
