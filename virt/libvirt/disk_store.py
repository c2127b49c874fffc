"""DiskStore: where an instance's disks live, decided in one place.  New
disks are files in the instance's directory, or RBD images when the host
has `images_type = rbd`; an existing instance's disks are where its
record's formats say (`rbd`), whatever this host makes now.  Each method
is one step the driver takes (make, reopen, remake the root, adopt after
a resize, its revert and confirm), done on files (virt.libvirt.disks,
resize) or on the pool (virt.libvirt.rbd_images)."""
from virt import errors
from virt.libvirt import disks, rbd_images, resize
from virt.libvirt.files import check_uuid

RESIZE_SNAP = "resize"      # an RBD resize's way back, until it is confirmed


class DiskStore:
    def __init__(self, conf, cache, instance_dir):
        """instance_dir(instance) -> its directory (a checked uuid)."""
        self.conf, self.cache, self.instance_dir = conf, cache, instance_dir
        self.rbd = None             # rbd_images.RbdImages when images_type = rbd

    def start(self, host):
        """Open the pool (images_type = rbd) and, given the keyring, store
        the key in the libvirt secret QEMU opens it with."""
        lv = self.conf.libvirt
        if lv.images_type != "rbd":
            return
        self.rbd = rbd_images.RbdImages(lv.images_rbd_pool, lv.images_rbd_ceph_conf,
                                        lv.rbd_user, lv.rbd_secret_uuid, lv.images_rbd_keyring)
        if lv.images_rbd_keyring:
            self.rbd.store_secret(host)

    def new_disks_shared(self):
        return self.rbd is not None

    def in_ceph(self, instance):
        """Whether the instance's disks are RBD images (shared by every host);
        DiskMissing when they are and this host has no pool configured."""
        if rbd_images.FORMAT not in (instance.disk_formats or {}).values():
            return False
        if self.rbd is None:
            raise errors.DiskMissing(f"instance {instance.uuid} has its disks in Ceph and "
                                     "this host has no images_type = rbd")
        return True

    def create(self, instance, image_meta, image_files):
        """The new instance's disks, where this host makes them."""
        root = instance.boot_volume is None
        if self.rbd is not None:
            return rbd_images.create_all(self.rbd, check_uuid(instance.uuid), instance.flavor,
                                         image_files.root, image_meta, self.cache, root)
        img = self.conf.image
        return disks.create_all(self.instance_dir(instance), instance.flavor, image_files,
                                self.cache, img.use_cow_images, img.preallocate_images,
                                root=root)

    def reopen(self, instance):
        """The disks of an instance that exists, where its record says."""
        root = instance.boot_volume is None
        if self.in_ceph(instance):
            return rbd_images.reopen_all(self.rbd, check_uuid(instance.uuid), instance.flavor,
                                         self.cache, root)
        return disks.reopen_all(self.instance_dir(instance), instance.flavor, self.cache,
                                instance.disk_formats, root=root)

    def recreate_root(self, instance, image_meta, image_files, preserve_ephemeral):
        """A rebuild's disks (see disks.recreate_root); their formats."""
        if self.in_ceph(instance):
            return rbd_images.recreate_root(self.rbd, check_uuid(instance.uuid), instance.flavor,
                                            image_files.root, image_meta, preserve_ephemeral)
        img = self.conf.image
        return disks.recreate_root(self.instance_dir(instance), instance.flavor,
                                   image_files.root, img.use_cow_images, img.preallocate_images,
                                   instance.disk_formats, preserve_ephemeral)

    def formats_after(self, instance, formats):
        """The formats to record once the guest is defined (reopen made the
        missing blank disk files as qcow2)."""
        if self.in_ceph(instance):
            return formats
        return resize.present_formats(self.instance_dir(instance), formats) | formats

    def remove_shared(self, instance):
        """A deleted instance's RBD images (none is fine): only a delete, a
        failed build or an offload removes them, never a host's clean-up."""
        if self.rbd is not None and (not instance.disk_formats or self.in_ceph(instance)):
            self.rbd.remove_all(check_uuid(instance.uuid))      # (a build records no formats)

    # -- a resize ----------------------------------------------------------------------

    def move_aside(self, instance):
        """Source, the guest off: the directory moved aside, RBD images
        snapshotted (what a revert goes back to); {name: path} to send."""
        if self.in_ceph(instance):
            self.rbd.snapshot_all(check_uuid(instance.uuid), RESIZE_SNAP)
        return resize.move_aside(self.instance_dir(instance))

    def adopt(self, instance, old_flavor, image_files):
        """Destination: the disks made ready for the new flavor; the formats
        of those that remain."""
        if self.in_ceph(instance):
            return rbd_images.grow_all(self.rbd, check_uuid(instance.uuid), old_flavor,
                                       instance.flavor, image_files.root, instance.disk_formats)
        return resize.adopt(self.instance_dir(instance), instance.disk_formats, old_flavor,
                            instance.flavor, image_files, self.cache)

    def move_back(self, instance):
        """Source, on revert: the directory back, RBD images rolled back."""
        resize.move_back(self.instance_dir(instance))
        if self.in_ceph(instance):
            self.rbd.rollback_all(check_uuid(instance.uuid), RESIZE_SNAP)

    def confirm(self, instance):
        resize.remove_aside(self.instance_dir(instance))
        if self.in_ceph(instance):
            self.rbd.remove_snapshots(check_uuid(instance.uuid), RESIZE_SNAP)

    # -- a snapshot of the root ----------------------------------------------------------

    def root_in_ceph(self, instance):
        """Whether the root disk is an RBD image (snapshots export it)."""
        return instance.disk_formats.get("disk") == rbd_images.FORMAT and self.in_ceph(instance)
