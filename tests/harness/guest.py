"""The test guest: built once from Debian packages by
tools/test-guest/build.sh and cached under $XDG_CACHE_HOME (or ~/.cache)."""
import hashlib
import os
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
