"""The instance files on this host, as the libvirt driver lays them out:
one directory per instance under instances_path (named by its uuid),
holding its disks, console log and libvirt.xml; the shared-storage probe
files another host looks for; what a killed agent may have left there.
compute/ never joins a path under instances_path: it asks the driver."""
import errno
import os
import shutil
import tempfile
import time
import uuid as uuidlib

from imagecache import cleanup
from virt import errors
from virt.libvirt import builder, resize
from virt.sparse import copy_local

PROBE_PREFIX = ".shared-probe-"
LEFTOVER_PREFIXES = (PROBE_PREFIX, ".directio-")
# others (QEMU's user) may pass through to a file libvirt handed it, never
# list a directory; the files themselves stay 0640, the agent's
DIR_MODE = 0o751
LEFTOVER_AGE = 3600       # seconds; a probe lives for one RPC call


def free_bytes(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def write_probe(instances_path, host):
    name = f"{PROBE_PREFIX}{uuidlib.uuid4().hex}"
    with open(os.path.join(instances_path, name), "w") as f:
        f.write(host)
    return name


def probe_path(instances_path, name):
    if not name.startswith(PROBE_PREFIX) or "/" in name:
        raise ValueError(f"{name!r} is no probe file")
    return os.path.join(instances_path, name)


def remove_leftovers(instances_path, min_age):
    """Probe files older than min_age seconds (on shared storage a younger
    one may be another host's check in progress); their names."""
    now, removed = time.time(), []
    for entry in os.scandir(instances_path):
        if entry.name.startswith(LEFTOVER_PREFIXES) and entry.is_file() \
                and now - entry.stat().st_mtime > min_age:
            os.unlink(entry.path)
            removed.append(entry.name)
    return removed


def bases_in_use(instances_path, base_dir):
    return cleanup.bases_used_by_disks(instances_path, base_dir)


def make_dir(path):
    """A directory of the agent's that QEMU passes through (DIR_MODE,
    whatever the umask)."""
    os.makedirs(path, exist_ok=True)
    os.chmod(path, DIR_MODE)


def copy_aside(inst_dir):
    """Shared storage: inst_dir made anew from the copy set aside by the
    source (sparse copies of its disks)."""
    os.mkdir(inst_dir)
    os.chmod(inst_dir, DIR_MODE)
    for name, path in resize.aside_files(inst_dir).items():
        copy_local(path, os.path.join(inst_dir, name))


def nvram(inst_dir, image_meta, settings):
    """The UEFI variable store of a UEFI guest (None for a BIOS one), made
    from the template by the agent when missing, so it is the agent's file
    (QEMU writes it, the agent copies it with the disks)."""
    uefi, secure = builder.firmware(image_meta)
    if not uefi:
        return None
    path = os.path.join(inst_dir, resize.NVRAM)
    if not os.path.exists(path):
        template = (settings.uefi_secure if secure else settings.uefi)[1]
        tmp = path + ".part"
        shutil.copyfile(template, tmp)
        os.chmod(tmp, 0o640)
        os.rename(tmp, path)
    return path


def remove_dir(inst_dir):
    shutil.rmtree(inst_dir, ignore_errors=True)


def supports_direct_io(path):
    """Whether files under path can be opened with O_DIRECT (cache=none)."""
    fd, probe = tempfile.mkstemp(prefix=".directio-", dir=path)
    os.close(fd)
    try:
        fd = os.open(probe, os.O_RDWR | os.O_DIRECT)
        os.close(fd)
        return True
    except OSError as e:
        if e.errno != errno.EINVAL:
            raise
        return False
    finally:
        os.unlink(probe)


def check_uuid(value):
    """Instance directories are named by uuid: accept only canonical ones."""
    try:
        if str(uuidlib.UUID(value)) == value:
            return value
    except (ValueError, TypeError, AttributeError):
        pass
    raise errors.VirtError(f"invalid instance uuid {value!r}")
