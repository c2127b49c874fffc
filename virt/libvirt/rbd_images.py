"""Instance disks as Ceph RBD images (`[libvirt] images_type = rbd`).

Each disk of an instance is the image `<pool>/<uuid>_<name>` (`disk`,
`disk.local`, `disk.swap`), recorded with the format `rbd`.  A root disk
is a copy-on-write clone of the image when the image service says the
image already lives in this cluster (its `direct_url` an
`rbd://<fsid>/<pool>/<image>/<snap>` of the same fsid), otherwise an
import of the cached base; ephemeral and swap disks are imports of the
cache's formatted blank bases (sparse: only what mkfs wrote is stored).
QEMU opens them with its own librbd under the libvirt secret
`rbd_secret_uuid`; the agent reaches the cluster with the `rbd` and
`qemu-img` commands as `rbd_user`, with the keyring the ceph.conf names.

Pure parts (names, the monitors of a ceph.conf, direct URLs) are
functions; RbdImages runs the commands.  The images are shared by every
host of the cluster: only a delete (and a failed build) removes them,
never the clean-up of a host the instance left.
"""
import base64
import configparser
import dataclasses
import ipaddress
import json
import logging
import re
import uuid as uuidlib

from oslo_concurrency import processutils

from virt import errors
from virt.errors import DiskMissing
from virt.libvirt.builder import GuestDisk
from virt.libvirt.disks import root_size

LOG = logging.getLogger(__name__)
FORMAT = "rbd"
DISK_NAMES = ("disk", "disk.local", "disk.swap")
GiB = 1024 ** 3
NAME = re.compile(r"^[A-Za-z0-9_.-]{1,100}\Z")          # a pool, image or snapshot name
USER = re.compile(r"^[A-Za-z0-9_.-]{1,64}\Z")
SECRET_XML = """<secret ephemeral='no' private='yes'>
  <uuid>{uuid}</uuid>
  <description>compute-agent: instance disks in Ceph pool {pool}</description>
  <usage type='ceph'><name>compute-agent/images/{pool}</name></usage>
</secret>"""


class RbdError(errors.VirtError):
    """A command against the Ceph cluster failed."""


def check_name(value, what):
    if not isinstance(value, str) or not NAME.match(value) or value in (".", ".."):
        raise ValueError(f"{what} {value!r} is not an RBD name")
    return value


def image_name(uuid, disk):
    """The RBD image of an instance's disk (uuid canonical, disk known)."""
    if str(uuidlib.UUID(uuid)) != uuid or disk not in DISK_NAMES:
        raise ValueError(f"no RBD image for {uuid!r} {disk!r}")
    return f"{uuid}_{disk}"


def monitors(mon_host):
    """((address, v1 port), ...) from a ceph.conf mon_host: entries
    `[v2:a:3300,v1:a:6789]`, `a:6789` or `a`, separated by commas or
    spaces (QEMU's librbd is given the v1 port, which every monitor has)."""
    out = []
    for group in re.findall(r"\[[^\]]*\]|[^,\s\[\]]+", mon_host or ""):
        addrs = group.strip("[]").split(",")
        chosen = next((a for a in addrs if a.startswith("v1:")), None)
        if group.startswith("[") and chosen is None:
            continue                            # v2 only: QEMU's librbd may lack it
        entry = (chosen or addrs[0]).removeprefix("v1:").split("/")[0]
        host, _, port = entry.rpartition(":") if entry.count(":") == 1 \
            else (entry, "", "")
        host = host.strip("[]")
        out.append((str(ipaddress.ip_address(host)), int(port or 6789)))
    if not out:
        raise ValueError(f"no monitor address in mon_host {mon_host!r}")
    return tuple(out)


def parse_direct_url(url):
    """(fsid, pool, image, snap) of an image service's rbd:// location, or
    None for any other location (the image service is untrusted: every
    part is checked before it names anything)."""
    if not isinstance(url, str) or not url.startswith("rbd://"):
        return None
    parts = url[len("rbd://"):].split("/")
    if len(parts) != 4:
        return None
    try:
        fsid = str(uuidlib.UUID(parts[0]))
        return (fsid, *(check_name(p, "part") for p in parts[1:]))
    except ValueError:
        return None


def read_key(keyring, user):
    """The base64 cephx key of client.<user> in a keyring file."""
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    with open(keyring) as f:
        parser.read_string("\n".join(line.strip() for line in f))
    try:
        return parser[f"client.{user}"]["key"]
    except KeyError:
        raise errors.VirtError(f"keyring {keyring} has no key for client.{user}") from None


@dataclasses.dataclass(frozen=True)
class RbdSource:
    """Where QEMU finds the pool: what a disk's XML names."""

    pool: str
    hosts: tuple            # ((address, port), ...)
    username: str
    secret_uuid: str


class RbdImages:
    """The pool's instance images, through the rbd and qemu-img commands."""

    def __init__(self, pool, ceph_conf, user, secret_uuid, keyring=""):
        self.pool, self.conf, self.keyring = check_name(pool, "pool"), ceph_conf, keyring
        for path in (ceph_conf, keyring):
            if ":" in path or "@" in path:      # both go into QEMU's rbd: filename
                raise errors.VirtError(f"{path!r}: a Ceph path may hold no ':' or '@'")
        if not USER.match(user or ""):
            raise errors.VirtError(f"rbd_user {user!r} is not a cephx user name")
        self.user = user
        self.secret_uuid = str(uuidlib.UUID(secret_uuid))
        parser = configparser.ConfigParser(interpolation=None, strict=False)
        with open(ceph_conf) as f:
            parser.read_string("\n".join(line.strip() for line in f))
        glob = parser["global"] if parser.has_section("global") else {}
        self.fsid = glob.get("fsid")
        self.source = RbdSource(self.pool, monitors(glob.get("mon_host") or
                                                     glob.get("mon host")),
                                user, self.secret_uuid)

    # -- commands -------------------------------------------------------------------

    def _auth(self):
        return ["--conf", self.conf, "--id", self.user] + \
            (["--keyring", self.keyring] if self.keyring else [])

    def _rbd(self, *args):
        try:
            return processutils.execute("rbd", *self._auth(), *args)[0]
        except processutils.ProcessExecutionError as e:
            raise RbdError(f"rbd {' '.join(args)}: {(e.stderr or '').strip()}") from None

    def _qemu_uri(self, spec):
        extra = f":keyring={self.keyring}" if self.keyring else ""
        return f"rbd:{spec}:id={self.user}:conf={self.conf}{extra}"

    def store_secret(self, host):
        """The libvirt secret QEMU opens the pool with, holding the user's key."""
        key = read_key(self.keyring, self.user)
        host.define_secret(SECRET_XML.format(uuid=self.secret_uuid, pool=self.pool),
                           base64.b64decode(key))

    def names(self, uuid):
        """The instance's images in the pool."""
        prefix = f"{uuid}_"
        return [n for n in json.loads(self._rbd("ls", "--format", "json", self.pool) or "[]")
                if n.startswith(prefix)]

    def size(self, uuid, disk):
        info = json.loads(self._rbd("info", "--format", "json",
                                    f"{self.pool}/{image_name(uuid, disk)}"))
        return info["size"]

    def _import(self, base, spec, size):
        """A new image at spec holding base's data, of at least size bytes
        (what an interrupted attempt left there goes first)."""
        self._remove(spec)
        try:
            processutils.execute("qemu-img", "convert", "-f", base.format, "-O", "raw",
                                 base.path, self._qemu_uri(spec))
        except processutils.ProcessExecutionError as e:
            raise RbdError(f"import of {base.path} into {spec}: {(e.stderr or '').strip()}") \
                from None
        if size > base.virtual_size:
            self._rbd("resize", "--size", f"{size}B", spec)

    def _clone(self, parent, spec, size):
        self._remove(spec)
        self._rbd("clone", parent, spec)
        if size > self._spec_size(spec):
            self._rbd("resize", "--size", f"{size}B", spec)

    def _spec_size(self, spec):
        return json.loads(self._rbd("info", "--format", "json", spec))["size"]

    def _remove(self, spec):
        try:
            self._rbd("snap", "purge", spec)
        except RbdError as e:
            if "No such file" in str(e) or "does not exist" in str(e):
                return
            raise
        self._rbd("rm", "--no-progress", spec)

    def clone_parent(self, image_meta):
        """pool/image@snap of the image's copy in this cluster, or None."""
        found = parse_direct_url(image_meta.get("direct_url"))
        if found is None or self.fsid is None or found[0] != self.fsid:
            return None
        return f"{found[1]}/{found[2]}@{found[3]}"

    # -- an instance's disks ----------------------------------------------------------

    def guest_disk(self, uuid, disk):
        return GuestDisk(disk, f"{self.pool}/{image_name(uuid, disk)}", FORMAT)

    def create_root(self, uuid, size, base=None, parent=None):
        spec = f"{self.pool}/{image_name(uuid, 'disk')}"
        if parent:
            self._clone(parent, spec, size)
        else:
            self._import(base, spec, size)
        return self.guest_disk(uuid, "disk")

    def create_blank(self, uuid, disk, base):
        self._import(base, f"{self.pool}/{image_name(uuid, disk)}", base.virtual_size)
        return self.guest_disk(uuid, disk)

    def grow(self, uuid, disk, size):
        """The image grown to size bytes (never shrunk)."""
        spec = f"{self.pool}/{image_name(uuid, disk)}"
        if size > self._spec_size(spec):
            self._rbd("resize", "--size", f"{size}B", spec)

    def remove(self, uuid, disk):
        self._remove(f"{self.pool}/{image_name(uuid, disk)}")

    def _snaps(self, spec):
        return {s["name"] for s in json.loads(self._rbd("snap", "ls", "--format", "json",
                                                        spec) or "[]")}

    def snapshot_all(self, uuid, snap):
        """A snapshot named snap of each of the instance's images (one that
        has it already keeps it: taking them again is harmless)."""
        check_name(snap, "snapshot")
        for name in self.names(uuid):
            spec = f"{self.pool}/{name}"
            if snap not in self._snaps(spec):
                self._rbd("snap", "create", f"{spec}@{snap}")

    def rollback_all(self, uuid, snap):
        """Each image that has snap back to it (data and size), the
        snapshot then removed; images without it are left as they are."""
        for name in self.names(uuid):
            spec = f"{self.pool}/{name}"
            if snap in self._snaps(spec):
                self._rbd("snap", "rollback", "--no-progress", f"{spec}@{snap}")
                self._rbd("snap", "rm", "--no-progress", f"{spec}@{snap}")

    def remove_snapshots(self, uuid, snap):
        for name in self.names(uuid):
            spec = f"{self.pool}/{name}"
            if snap in self._snaps(spec):
                self._rbd("snap", "rm", "--no-progress", f"{spec}@{snap}")

    def remove_all(self, uuid):
        """Every image of the instance, with its snapshots (none is fine)."""
        for name in self.names(uuid):
            self._remove(f"{self.pool}/{name}")
            LOG.info("instance %s: removed RBD image %s/%s", uuid, self.pool, name)

    def export_snapshot(self, uuid, disk, dst, out_format, snap_name):
        """A point-in-time copy of the disk (an RBD snapshot, removed after)
        written to dst in out_format."""
        spec = f"{self.pool}/{image_name(uuid, disk)}"
        check_name(snap_name, "snapshot")
        self._rbd("snap", "create", f"{spec}@{snap_name}")
        try:
            processutils.execute("qemu-img", "convert", "-f", "raw", "-O", out_format,
                                 self._qemu_uri(f"{spec}@{snap_name}"), dst)
        except processutils.ProcessExecutionError as e:
            raise RbdError(f"export of {spec}@{snap_name}: {(e.stderr or '').strip()}") \
                from None
        finally:
            self._rbd("snap", "rm", "--no-progress", f"{spec}@{snap_name}")
        return dst


def create_all(images, uuid, flavor, root_base, image_meta, cache, root=True):
    """Every disk the flavor asks for as RBD images, in the order the guest
    sees them (no root disk when root is False: it is a volume)."""
    out = []
    if root:
        parent = images.clone_parent(image_meta)
        out.append(images.create_root(uuid, root_size(flavor, root_base), root_base, parent))
    if flavor.ephemeral_gb:
        out.append(images.create_blank(uuid, "disk.local",
                                       cache.blank_base("ephemeral", flavor.ephemeral_gb * 1024)))
    if flavor.swap_mb:
        out.append(images.create_blank(uuid, "disk.swap", cache.blank_base("swap", flavor.swap_mb)))
    return out


def reopen_all(images, uuid, flavor, cache, root=True):
    """The RBD disks of an instance that exists (power on, hard reboot):
    a missing root image is an error, missing ephemeral and swap images
    are blank and are made again."""
    present = set(images.names(uuid))
    if root and image_name(uuid, "disk") not in present:
        raise DiskMissing(f"RBD image {images.pool}/{image_name(uuid, 'disk')} is missing; "
                          "refusing to boot a blank disk")
    out = [images.guest_disk(uuid, "disk")] if root else []
    for disk, kind, size_mb in (("disk.local", "ephemeral", flavor.ephemeral_gb * 1024),
                                ("disk.swap", "swap", flavor.swap_mb)):
        if not size_mb:
            continue
        if image_name(uuid, disk) in present:
            out.append(images.guest_disk(uuid, disk))
        else:
            out.append(images.create_blank(uuid, disk, cache.blank_base(kind, size_mb)))
    return out


def grow_all(images, uuid, old, new, root_base, formats):
    """A resize's disks on RBD: the root and ephemeral images grown to the
    new flavor (never shrunk: refused before anything moved), a swap image
    whose size changed removed (reopen_all makes it blank at the new
    size); the formats of the disks after it."""
    formats = dict(formats)
    images.grow(uuid, "disk", root_size(new, root_base))
    if "disk.local" in formats and new.ephemeral_gb > old.ephemeral_gb:
        images.grow(uuid, "disk.local", new.ephemeral_gb * GiB)
    if "disk.swap" in formats and new.swap_mb != old.swap_mb:
        images.remove(uuid, "disk.swap")
        del formats["disk.swap"]
    if new.swap_mb:
        formats["disk.swap"] = FORMAT
    if new.ephemeral_gb:
        formats["disk.local"] = FORMAT
    return formats


def recreate_root(images, uuid, flavor, root_base, image_meta, preserve_ephemeral):
    """A rebuild's disks in the pool: the root made anew from the (new)
    image, swap and, unless kept, the ephemeral disk removed (reopen_all
    makes them blank again); the formats of the instance's disks."""
    for disk in ("disk.swap",) + (() if preserve_ephemeral else ("disk.local",)):
        images.remove(uuid, disk)
    images.create_root(uuid, root_size(flavor, root_base), root_base,
                       images.clone_parent(image_meta))
    return {"disk": FORMAT} | {d: FORMAT for d, size in (("disk.local", flavor.ephemeral_gb),
                                                           ("disk.swap", flavor.swap_mb)) if size}
