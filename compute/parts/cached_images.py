"""CachedImages: the manager's use of the _base cache.  Fetching an
instance's images (recording hits and misses in cached_images), pre-caching
on request (an image a request could not cache is reported with the
reason and the request's id until it is cached), the periodic cache
manager, and the cache status report."""
import logging
import os

from compute.core.resource_tracker import boots_from_volume
from imagecache import cleanup
from imagecache.glance import check_image_id, split_properties
from virt import driver as virt_driver

LOG = logging.getLogger(__name__)
GiB = 1024 ** 3


class CachedImages:
    def __init__(self, conf, db, cache, glance, driver, host):
        self.conf, self.db, self.cache, self.glance = conf, db, cache, glance
        self.driver, self.host = driver, host
        self._failed = {}        # image id -> (request id, reason) of its last pre-cache

    def fetch(self, image_id, image_meta=None, max_virtual_size=None, boot_file=False):
        cached = self.cache.fetch(image_id, image_meta, max_virtual_size, boot_file)
        self._failed.pop(image_id, None)
        try:
            self.db.cached_image_used(self.host, image_id, os.path.basename(cached.path),
                                      os.path.getsize(cached.path), hit=not cached.downloaded)
        except Exception:
            LOG.exception("could not count a use of cached image %s", image_id)
        return cached

    def files_for(self, inst, image_meta, image_id=None):
        """The cached bases of an instance's image and its kernel/ramdisk;
        each is downloaded only if it is not cached (so a base removed from
        _base is fetched again, verified against the checksum recorded at
        spawn).  An image larger than the flavor's root disk is refused
        before qemu-img ever sees it.  image_id: another image than the
        instance's (a rescue's), under the same limit.  An instance booted
        from a volume has no root base (root None)."""
        props = image_meta.get("properties") or {}
        root_gb = inst.flavor.get("root_gb", 0)
        root = None         # an instance booted from a volume: the image is on it
        if image_id or not boots_from_volume(inst.volumes):
            root = self.fetch(image_id or inst.image_ref, image_meta,
                              root_gb * GiB if root_gb else None)
        kernel = ramdisk = None
        if props.get("kernel_id"):
            kernel = self.fetch(check_image_id(props["kernel_id"]), boot_file=True)
        if props.get("ramdisk_id"):
            ramdisk = self.fetch(check_image_id(props["ramdisk_id"]), boot_file=True)
        return virt_driver.ImageFiles(root, kernel, ramdisk)

    def cache_images(self, ctxt, image_ids):
        """Pre-cache: fetch images before any spawn needs them; what fails
        is reported by status() with the request's id."""
        # the caller's words: kept short, and only to be echoed back
        request_id = str((ctxt or {}).get("request_id") or "")[:128]
        for image_id in image_ids:
            try:
                self.fetch(image_id, split_properties(self.glance.show(image_id)))
                LOG.info("image %s is cached", image_id)
            except Exception as e:
                LOG.error("pre-caching image %s failed: %s", image_id, e)
                self._failed[image_id] = (request_id, f"{type(e).__name__}: {e}"[:1000])

    def _bases_in_use(self):
        shared = self.conf.image_cache.instances_path_shared
        names = set()      # with a shared _base: every host's instances (a shared database)
        if shared:
            in_use = self.db.images_in_use()
        else:
            in_use = [(i.image_ref, i.image_meta) for i in self.db.instance_list(host=self.host)]
        for image_ref, image_meta in in_use:
            props = (image_meta or {}).get("properties") or {}
            for image_id in (image_ref, props.get("kernel_id"), props.get("ramdisk_id")):
                if image_id:
                    names.add(os.path.basename(self.cache.path_for(image_id)))
        return names | self.driver.bases_in_use()

    def manage(self):
        """Periodic (and on request): touch bases in use, remove old unused."""
        ic = self.conf.image_cache
        removed, kept = cleanup.clean(self.cache, self._bases_in_use(),
                                      ic.remove_unused_original_minimum_age_seconds,
                                      remove=ic.remove_unused_base_images)
        if removed:
            self.db.cached_image_forget(self.host, removed)
        return {"removed": removed, "kept": kept}

    def status(self):
        rows = self.db.cached_images(self.host)
        sizes = cleanup.base_sizes(self.cache.base_dir)
        images = [{"image_id": r.image_id, "filename": r.filename, "size_bytes": r.size_bytes,
                   "hits": r.hits, "misses": r.misses, "last_used": r.last_used.isoformat() + "Z",
                   "present": r.filename in sizes} for r in rows]
        failed = [{"image_id": i, "request_id": req, "reason": why}
                  for i, (req, why) in sorted(dict(self._failed).items())]
        return {"images": images, "bases": len(sizes), "size_bytes": sum(sizes.values()),
                "hits": sum(r.hits for r in rows), "misses": sum(r.misses for r in rows),
                "failed": failed}
