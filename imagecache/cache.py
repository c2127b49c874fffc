"""The _base image cache: one verified file per image, shared by instances.

fetch() returns the cached file of an image, downloading it first when it
is missing:
1. refuse up front when the filesystem lacks room for the image plus the
   configured reserve;
2. stream into a temporary file in the cache directory while hashing
   (os_hash_algo/os_hash_value, else the md5 checksum);
3. inspect the headers (imagecache.inspector): the declared format must be
   the real one and every safety check must pass, before any qemu-img runs;
4. convert to raw once when force_raw_images;
5. rename into place atomically.
A failure at any step leaves nothing behind.  A cached base is inspected
again before each use, in case it was replaced on disk.

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

from imagecache import errors, inspector, qemu_img
from imagecache.glance import check_image_id

LOG = logging.getLogger(__name__)
KERNEL_FORMATS = {"aki", "ari"}
MiB = 1024 * 1024


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
                 reserve_mb=512, ephemeral_fs="ext4"):
        self.base_dir, self.client, self.lock_dir = base_dir, client, lock_dir
        self.force_raw, self.vmdk_allowed_types = force_raw, tuple(vmdk_allowed_types)
        self.reserve_bytes, self.ephemeral_fs = reserve_mb * MiB, ephemeral_fs
        os.makedirs(base_dir, exist_ok=True)

    @classmethod
    def from_conf(cls, conf, client, lock_dir):
        return cls(os.path.join(conf.instances_path, conf.image.cache_subdirectory), client,
                   lock_dir, conf.image.force_raw_images, conf.image.vmdk_allowed_types,
                   conf.image.cache_free_space_reserve_mb, conf.image.default_ephemeral_format)

    def path_for(self, image_id):
        name = hashlib.sha1(check_image_id(image_id).encode()).hexdigest()
        return os.path.join(self.base_dir, name)

    def lock(self, name):
        """The lock of one base file (by file name), shared by fetch and
        the cache cleaner."""
        return lockutils.lock(name, lock_file_prefix="image-", external=True,
                              lock_path=self.lock_dir)

    def fetch(self, image_id, image_meta=None, max_virtual_size=None):
        """CachedImage of image_id, downloading it if it is not cached.
        image_meta (the image service's record) is fetched when not given
        and the image is not cached."""
        path = self.path_for(image_id)
        with self.lock(os.path.basename(path)):
            if os.path.exists(path):
                os.utime(path)
                return self._recheck(image_id, path, image_meta, max_virtual_size)
            meta = image_meta if image_meta is not None else self.client.show(image_id)
            self._download(image_id, meta, path, max_virtual_size)
            fmt, size = inspector.inspect(path, self._stored_format(meta))
            return CachedImage(image_id, path, inspector.qemu_format(fmt), size, True)

    def _stored_format(self, meta):
        """The format the cached file has: raw after conversion, kernels
        and ramdisks raw, else the declared one."""
        declared = (meta or {}).get("disk_format", "raw")
        if declared in KERNEL_FORMATS or self.force_raw:
            return "raw"
        return declared

    def _recheck(self, image_id, path, meta, max_virtual_size):
        try:
            fmt, size = inspector.inspect(path, self._stored_format(meta),
                                          self.vmdk_allowed_types, max_virtual_size)
        except errors.UnsafeImage as e:
            raise errors.UnsafeImage(f"cached base {path} of image {image_id} failed its "
                                     f"re-check (replaced on disk?): {e}")
        return CachedImage(image_id, path, inspector.qemu_format(fmt), size)

    def _check_space(self, image_id, size):
        st = os.statvfs(self.base_dir)
        free = st.f_bavail * st.f_frsize
        if size is not None and size + self.reserve_bytes > free:
            raise errors.InsufficientSpace(
                f"image {image_id} needs {size // MiB} MiB plus a reserve of "
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
        self._check_space(image_id, meta.get("size"))
        fd, tmp = tempfile.mkstemp(prefix=".fetch-", dir=self.base_dir)
        converted = tmp + ".raw"
        try:
            with os.fdopen(fd, "wb") as f:
                size = self.client.download(image_id, f, expected=meta)
                f.flush()
                os.fsync(f.fileno())
            LOG.info("downloaded image %s (%d bytes)", image_id, size)
            if declared in KERNEL_FORMATS:
                inspector.inspect(tmp, "raw")
                final = tmp
            else:
                fmt, _ = inspector.inspect(tmp, declared, self.vmdk_allowed_types,
                                           max_virtual_size)
                final = tmp
                if self.force_raw and fmt != "raw":
                    qemu_img.convert(tmp, inspector.qemu_format(fmt), converted, "raw",
                                     untrusted=True)
                    final = converted
            os.chmod(final, 0o644)
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
                    os.chmod(tmp, 0o644)
                    os.rename(tmp, path)
                finally:
                    if os.path.exists(tmp):
                        os.unlink(tmp)
            else:
                os.utime(path)
        return CachedImage(name, path, "raw", size_mb * MiB)
