"""The _base cache: one verified file per image, shared by instances.

fetch() returns the cached file of an image, downloading it first when it
is missing:
1. decide the hash the data must have and the most bytes it may have
   (imagecache.verify): no accepted hash, or a declared size over the
   bound, refuses the image before a byte is read;
2. refuse up front when the filesystem lacks room for the image plus the
   configured reserve;
3. stream into a temporary file in the cache directory while hashing, cut
   as soon as the stream passes its bound;
4. inspect the headers (imagecache.inspector): the declared format must be
   the real one and every safety check must pass, before any qemu-img runs;
   then `qemu-img check` (under the untrusted limits) refuses a structurally
   corrupt image;
5. convert to raw once when force_raw_images, after checking that the
   virtual size fits the filesystem (and the flavor's root disk);
6. rename into place atomically.
A failure at any step leaves nothing behind.  A cached base is inspected
again before each use, in case it was replaced on disk.  Bases are 0644
in a 0751 directory (others may open a base they can name, never list
the cache): libvirt's dynamic ownership hands a base to QEMU's user for a
guest's run, and after a host crash it may give a shared base back to
root:root (measured: the evacuation e2e's power losses left bases
root:root 0640, and every later spawn failed with Permission denied), so
the agent and QEMU must be able to read a base whoever owns it.

One file lock per image (under the lock directory, so it also holds across
agent restarts and between processes) makes concurrent fetches of one image
download it once; the cache cleaner takes the same lock before removing.
"""
import dataclasses
import hashlib
import logging
import os
import tempfile

from oslo_concurrency import lockutils, processutils

from imagecache import cleanup, errors, inspector, qemu_img, verify
from imagecache.glance import check_image_id

LOG = logging.getLogger(__name__)
KERNEL_FORMATS = {"aki", "ari"}
MiB = 1024 * 1024
PARTIAL_PREFIXES = (".fetch-", ".blank-")
# others (QEMU's user) pass through to the bases libvirt hands them, never list
FILE_MODE, DIR_MODE = 0o644, 0o751      # see above: a base's owner is libvirt's


@dataclasses.dataclass(frozen=True)
class CachedImage:
    image_id: str
    path: str
    format: str          # the format qemu-img -f/-F wants (raw, qcow2, vpc, ...)
    virtual_size: int
    downloaded: bool = dataclasses.field(default=False, compare=False)


class ImageCache:
    def __init__(self, base_dir, client, lock_dir, force_raw=True,
                 vmdk_allowed_types=("monolithicSparse", "streamOptimized"),
                 reserve_mb=512, ephemeral_fs="ext4", max_image_mb=1024 * 1024,
                 allow_md5=True, allow_unverified=False):
        self.base_dir, self.client, self.lock_dir = base_dir, client, lock_dir
        self.force_raw, self.vmdk_allowed_types = force_raw, tuple(vmdk_allowed_types)
        self.reserve_bytes, self.ephemeral_fs = reserve_mb * MiB, ephemeral_fs
        self.max_image_bytes = max_image_mb * MiB
        self.allow_md5, self.allow_unverified = allow_md5, allow_unverified
        os.makedirs(base_dir, exist_ok=True)
        os.chmod(base_dir, DIR_MODE)

    @classmethod
    def from_conf(cls, conf, client, lock_dir):
        im = conf.image
        return cls(os.path.join(conf.instances_path, im.cache_subdirectory), client, lock_dir,
                   im.force_raw_images, im.vmdk_allowed_types, im.cache_free_space_reserve_mb,
                   im.default_ephemeral_format, im.max_image_size_mb, im.allow_md5_checksum,
                   im.allow_unverified_images)

    def remove_partial(self):
        """Agent start: temporary files a killed fetch left behind (no fetch
        runs yet, and each takes its image's lock)."""
        for name in os.listdir(self.base_dir):
            if name.startswith(PARTIAL_PREFIXES):
                LOG.warning("removing %s, left by an interrupted fetch", name)
                os.unlink(os.path.join(self.base_dir, name))

    def path_for(self, image_id):
        name = hashlib.sha1(check_image_id(image_id).encode()).hexdigest()
        return os.path.join(self.base_dir, name)

    def lock(self, name):
        """The lock of one base file (by file name), shared by fetch and
        the cache cleaner."""
        return lockutils.lock(name, lock_file_prefix="image-", external=True,
                              lock_path=self.lock_dir)

    def fetch(self, image_id, image_meta=None, max_virtual_size=None, boot_file=False):
        """CachedImage of image_id, downloading it if it is not cached.
        image_meta (the image service's record) is fetched when not given
        and the image is not cached.  boot_file: wanted as a kernel or
        ramdisk (see inspector.inspect)."""
        path = self.path_for(image_id)
        with self.lock(os.path.basename(path)):
            if os.path.exists(path):
                cleanup.mark_used(self.base_dir, os.path.basename(path))
                return self._recheck(image_id, path, image_meta, max_virtual_size,
                                     boot_file or self._boot_file(image_meta))
            meta = image_meta if image_meta is not None else self.client.show(image_id)
            self._download(image_id, meta, path, max_virtual_size)
            fmt, size = inspector.inspect(path, self._stored_format(meta),
                                          boot_file=boot_file or self._boot_file(meta))
            return CachedImage(image_id, path, inspector.qemu_format(fmt), size, True)

    @staticmethod
    def _boot_file(meta):
        return (meta or {}).get("disk_format") in KERNEL_FORMATS

    def _stored_format(self, meta):
        """The format the cached file has: raw after conversion, kernels
        and ramdisks raw, else the declared one."""
        declared = (meta or {}).get("disk_format", "raw")
        if declared in KERNEL_FORMATS or self.force_raw:
            return "raw"
        return declared

    def _recheck(self, image_id, path, meta, max_virtual_size, boot_file):
        try:
            fmt, size = inspector.inspect(path, self._stored_format(meta),
                                          self.vmdk_allowed_types, max_virtual_size,
                                          boot_file=boot_file)
        except errors.UnsafeImage as e:
            raise errors.UnsafeImage(f"cached base {path} of image {image_id} failed its "
                                     f"re-check (replaced on disk?): {e}")
        return CachedImage(image_id, path, inspector.qemu_format(fmt), size)

    def _check_space(self, image_id, size, what="downloaded"):
        st = os.statvfs(self.base_dir)
        free = st.f_bavail * st.f_frsize
        if size is not None and size + self.reserve_bytes > free:
            raise errors.InsufficientSpace(
                f"image {image_id} {what} needs {size // MiB} MiB plus a reserve of "
                f"{self.reserve_bytes // MiB} MiB, but {self.base_dir} has "
                f"{free // MiB} MiB free")

    def _download(self, image_id, meta, path, max_virtual_size):
        if meta.get("status") != "active":
            raise errors.ImageNotActive(f"image {image_id} is {meta.get('status')!r}, "
                                        "not active")
        declared = meta.get("disk_format")
        if declared not in set(inspector.DECLARED_AS) | KERNEL_FORMATS:
            raise errors.UnsafeImage(f"image {image_id}: disk_format {declared!r} is not "
                                     "supported")
        algorithm, want = verify.expected_hash(dict(meta, id=image_id), self.allow_md5,
                                               self.allow_unverified)
        limit = verify.download_limit(meta.get("size"), self.max_image_bytes, max_virtual_size)
        self._check_space(image_id, meta.get("size"))
        fd, tmp = tempfile.mkstemp(prefix=".fetch-", dir=self.base_dir)
        converted = tmp + ".raw"
        try:
            try:
                size, digest = self.client.download(image_id, fd, algorithm, limit)
                os.fsync(fd)
            finally:
                os.close(fd)
            if meta.get("size") is not None and size != meta["size"]:
                raise errors.ImageDownloadFailed(
                    f"image {image_id}: got {size} bytes, expected {meta['size']}")
            if want is not None and digest != want:
                raise errors.ImageChecksumMismatch(f"image {image_id}: {algorithm} mismatch")
            if want is None:
                LOG.warning("image %s has no hash; its data was not verified", image_id)
            LOG.info("downloaded image %s (%d bytes)", image_id, size)
            final = tmp
            if declared in KERNEL_FORMATS:
                inspector.inspect(tmp, "raw", boot_file=True)
            else:
                fmt, virtual_size = inspector.inspect(tmp, declared, self.vmdk_allowed_types,
                                                      max_virtual_size)
                qemu_img.check(tmp, inspector.qemu_format(fmt))
                if self.force_raw and fmt != "raw":
                    self._check_space(image_id, virtual_size, "converted to raw")
                    qemu_img.convert(tmp, inspector.qemu_format(fmt), converted, "raw",
                                     untrusted=True)
                    final = converted
            os.chmod(final, FILE_MODE)
            os.rename(final, path)
        finally:
            for leftover in (tmp, converted):
                if os.path.exists(leftover):
                    os.unlink(leftover)

    def blank_base(self, kind, size_mb):
        """A formatted base shared by every instance with the same size:
        ephemeral_<GiB>_<fs> (mkfs) or swap_<MiB> (mkswap), raw."""
        if kind == "ephemeral":
            fs = self.ephemeral_fs
            name, cmd = f"ephemeral_{size_mb // 1024}_{fs}", ["mkfs", "-t", fs, "-q", "-F"]
        elif kind == "swap":
            name, cmd = f"swap_{size_mb}", ["mkswap"]
        else:
            raise ValueError(kind)
        path = os.path.join(self.base_dir, name)
        with self.lock(name):
            if not os.path.exists(path):
                fd, tmp = tempfile.mkstemp(prefix=".blank-", dir=self.base_dir)
                try:
                    os.ftruncate(fd, size_mb * MiB)
                    os.close(fd)
                    processutils.execute(*cmd, tmp)
                    os.chmod(tmp, FILE_MODE)
                    os.rename(tmp, path)
                finally:
                    if os.path.exists(tmp):
                        os.unlink(tmp)
            else:
                cleanup.mark_used(self.base_dir, name)
        return CachedImage(name, path, "raw", size_mb * MiB)
