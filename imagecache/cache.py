"""The _base image cache: one verified file per image, shared by instances.

fetch() returns the cached file of an image, downloading it first when it is
missing: streamed into a temporary file in the cache directory while hashed,
its header inspected (declared format must match, no backing files),
converted to raw once when force_raw_images, then renamed into place
atomically.  A failure leaves nothing behind.  One file lock per image
(under the lock directory, so it also holds across agent restarts and other
processes) makes concurrent fetches of one image download it once.
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
DISK_FORMATS = {"raw", "qcow2"}
KERNEL_FORMATS = {"aki", "ari"}


@dataclasses.dataclass(frozen=True)
class CachedImage:
    image_id: str
    path: str
    format: str          # raw | qcow2 (kernels and ramdisks are raw)
    virtual_size: int


class ImageCache:
    def __init__(self, base_dir, client, lock_dir, force_raw=True):
        self.base_dir, self.client, self.lock_dir = base_dir, client, lock_dir
        self.force_raw = force_raw
        os.makedirs(base_dir, exist_ok=True)

    def path_for(self, image_id):
        name = hashlib.sha1(check_image_id(image_id).encode()).hexdigest()
        return os.path.join(self.base_dir, name)

    def lock(self, image_id):
        """The per-image lock shared by fetch and (later) cache cleanup."""
        return lockutils.lock(os.path.basename(self.path_for(image_id)),
                              lock_file_prefix="image-", external=True,
                              lock_path=self.lock_dir)

    def fetch(self, image_id, image_meta=None):
        """CachedImage for image_id, downloading it if it is not cached."""
        path = self.path_for(image_id)
        with self.lock(image_id):
            if os.path.exists(path):
                os.utime(path)
                return self._describe(image_id, path)
            meta = image_meta if image_meta is not None else self.client.show(image_id)
            self._download(image_id, meta, path)
            return self._describe(image_id, path)

    def _describe(self, image_id, path):
        fmt, virtual_size = inspector.detect(path)
        return CachedImage(image_id, path, fmt, virtual_size)

    def _download(self, image_id, meta, path):
        if meta.get("status") != "active":
            raise errors.ImageNotActive(f"image {image_id} is {meta.get('status')!r}, "
                                        "not active")
        declared = meta.get("disk_format")
        if declared not in DISK_FORMATS | KERNEL_FORMATS:
            raise errors.UnsafeImage(f"image {image_id}: disk_format {declared!r} is not "
                                     f"supported (use one of {sorted(DISK_FORMATS)})")
        fd, tmp = tempfile.mkstemp(prefix=".fetch-", dir=self.base_dir)
        converted = tmp + ".raw"
        try:
            with os.fdopen(fd, "wb") as f:
                size = self.client.download(image_id, f, expected=meta)
                f.flush()
                os.fsync(f.fileno())
            LOG.info("downloaded image %s (%d bytes)", image_id, size)
            final = tmp
            if declared not in KERNEL_FORMATS:
                detected, _ = inspector.detect(tmp)
                if detected != declared:
                    raise errors.UnsafeImage(f"image {image_id} claims disk_format {declared} "
                                             f"but its data is {detected}")
                if self.force_raw and detected != "raw":
                    qemu_img.convert(tmp, detected, converted, "raw")
                    final = converted
            os.chmod(final, 0o644)
            os.rename(final, path)
        finally:
            for leftover in (tmp, converted):
                if os.path.exists(leftover):
                    os.unlink(leftover)

    def blank_base(self, kind, size_mb, fs="ext4"):
        """A formatted base shared by every instance with the same size:
        ephemeral_<GiB>_<fs> (mkfs) or swap_<MiB> (mkswap), raw."""
        if kind == "ephemeral":
            name, cmd = f"ephemeral_{size_mb // 1024}_{fs}", ["mkfs", "-t", fs, "-q", "-F"]
        elif kind == "swap":
            name, cmd = f"swap_{size_mb}", ["mkswap"]
        else:
            raise ValueError(kind)
        path = os.path.join(self.base_dir, name)
        with lockutils.lock(name, lock_file_prefix="image-", external=True,
                            lock_path=self.lock_dir):
            if not os.path.exists(path):
                fd, tmp = tempfile.mkstemp(prefix=".blank-", dir=self.base_dir)
                try:
                    os.ftruncate(fd, size_mb * 1024 * 1024)
                    os.close(fd)
                    processutils.execute(*cmd, tmp)
                    os.chmod(tmp, 0o644)
                    os.rename(tmp, path)
                finally:
                    if os.path.exists(tmp):
                        os.unlink(tmp)
            else:
                os.utime(path)
        return CachedImage(name, path, "raw", size_mb * 1024 * 1024)
