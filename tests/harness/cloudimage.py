"""The Debian cloud image (cloud-init, openssh-server, qemu-guest-agent):
built once from Debian packages by tools/cloud-image/build.sh and cached
under $XDG_CACHE_HOME (or ~/.cache), like the test guest; and SSH into it
from a test host's namespace."""
import hashlib
import os
import subprocess
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD_DIR = os.path.join(ROOT, "tools", "cloud-image")
CMDLINE = "root=/dev/vda console=ttyS0"
USER = "debian"                  # cloud-init's default user on Debian
FLAVOR = {"vcpus": 2, "memory_mb": 768, "root_gb": 2}
CLOUD_INIT_DONE = "Cloud-init v. "   # ... finished at ...


def build():
    """Directory holding vmlinuz, initrd.img and disk.qcow2."""
    h = hashlib.sha1()
    for name in sorted(os.listdir(BUILD_DIR)):
        with open(os.path.join(BUILD_DIR, name), "rb") as f:
            h.update(name.encode() + f.read())
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    out = os.path.join(cache, "compute-agent", "cloud-image-" + h.hexdigest()[:12])
    subprocess.run([os.path.join(BUILD_DIR, "build.sh"), out], check=True)
    return out


def finished(console):
    """Whether cloud-init's last stage has ended (its 'finished at' line)."""
    return any(CLOUD_INIT_DONE in line and "finished at" in line
               for line in console.splitlines())


def ssh(ns, key, address, command, timeout=20):
    """Run command in the guest over SSH from network namespace ns; the
    CompletedProcess (never raises on the remote command's status)."""
    return subprocess.run(
        ["ip", "netns", "exec", ns, "ssh", "-q", "-i", str(key), "-o", "BatchMode=yes",
         "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
         "-o", "ConnectTimeout=5", f"{USER}@{address}", command],
        capture_output=True, text=True, timeout=timeout)


def wait_ssh(ns, key, address, timeout=600):
    """Seconds until an SSH login with key succeeds (raises on timeout)."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        try:
            if ssh(ns, key, address, "true").returncode == 0:
                return time.monotonic() - start
        except subprocess.TimeoutExpired:
            pass
        time.sleep(2)
    raise AssertionError(f"no SSH login to {address} within {timeout} s")
