"""Where an instance's disks live, one class per place: files in the
instance's directory (qcow2 overlays over _base, or flat), RBD images in
the Ceph pool, and a root disk that is a volume (the guest's other disks
in one of the first two).  Each has the same steps (DiskBackend); the
DiskStore picks one per instance and never branches on the kind.  The
instance directory itself (definition, console log, a resize's aside
copy) is the DiskStore's, whatever the backend."""
from typing import Protocol

from virt import errors
from virt.libvirt import disks, rbd_images, resize
from virt.libvirt.files import check_uuid

RESIZE_SNAP = "resize"      # an RBD resize's way back, until it is confirmed


class DiskBackend(Protocol):
    shared: bool            # its disks are on storage every host reaches
    exports_root: bool      # a snapshot reads the root from it (export_root)

    def create(self, instance, image_meta, image_files):
        """The new instance's disks (virt.libvirt.disks.GuestDisk), in the
        order the guest sees them."""

    def reopen(self, instance):
        """The disks of an instance that exists (a missing root is an
        error; missing blank disks are made again)."""

    def recreate_root(self, instance, image_meta, image_files, preserve_ephemeral):
        """A rebuild's disks; their formats."""

    def present(self, instance, formats):
        """The formats to record once the guest is defined."""

    def remove(self, instance):
        """A deleted instance's disks that outlive the directory (none is fine)."""

    def set_aside(self, instance):
        """A resize's way back, taken on the source with the guest off."""

    def adopt(self, instance, old_flavor, image_files):
        """Destination: the disks made ready for the new flavor; formats."""

    def restore_aside(self, instance):
        """A revert: the disks as set_aside found them."""

    def drop_aside(self, instance):
        """A confirm: the way back removed."""


class FileDisks:
    """Disk files in the instance's directory (virt.libvirt.disks, resize):
    a resize's way back is the directory moved aside, which the DiskStore
    does; a snapshot reads the file (the driver freezes and flattens it)."""
    shared, exports_root = False, False

    def __init__(self, conf, cache, instance_dir, root=True):
        self.image, self.cache, self.instance_dir, self.root = conf.image, cache, instance_dir, root

    def create(self, instance, image_meta, image_files):
        return disks.create_all(self.instance_dir(instance), instance.flavor, image_files,
                                self.cache, self.image.use_cow_images,
                                self.image.preallocate_images, root=self.root)

    def reopen(self, instance):
        return disks.reopen_all(self.instance_dir(instance), instance.flavor, self.cache,
                                instance.disk_formats, root=self.root)

    def recreate_root(self, instance, image_meta, image_files, preserve_ephemeral):
        return disks.recreate_root(self.instance_dir(instance), instance.flavor,
                                   image_files.root, self.image.use_cow_images,
                                   self.image.preallocate_images, instance.disk_formats,
                                   preserve_ephemeral)

    def present(self, instance, formats):
        return resize.present_formats(self.instance_dir(instance), formats) | formats

    def remove(self, instance):
        pass                                # they go with the directory

    def set_aside(self, instance):
        pass                                # they go aside with the directory

    def adopt(self, instance, old_flavor, image_files):
        return resize.adopt(self.instance_dir(instance), instance.disk_formats, old_flavor,
                            instance.flavor, image_files, self.cache)

    def restore_aside(self, instance):
        pass

    def drop_aside(self, instance):
        pass


class RbdDisks:
    """RBD images in the pool (virt.libvirt.rbd_images), shared by every
    host that has it: a resize's way back is a snapshot of each image, and
    a snapshot of the root is exported from the pool while the guest runs."""
    shared, exports_root = True, True

    def __init__(self, images, cache, root=True):
        self.images, self.cache, self.root = images, cache, root

    def create(self, instance, image_meta, image_files):
        return rbd_images.create_all(self.images, check_uuid(instance.uuid), instance.flavor,
                                     image_files.root, image_meta, self.cache, self.root)

    def reopen(self, instance):
        return rbd_images.reopen_all(self.images, check_uuid(instance.uuid), instance.flavor,
                                     self.cache, self.root)

    def recreate_root(self, instance, image_meta, image_files, preserve_ephemeral):
        return rbd_images.recreate_root(self.images, check_uuid(instance.uuid),
                                        instance.flavor, image_files.root, image_meta,
                                        preserve_ephemeral)

    def present(self, instance, formats):
        return formats

    def remove(self, instance):
        self.images.remove_all(check_uuid(instance.uuid))

    def set_aside(self, instance):
        self.images.snapshot_all(check_uuid(instance.uuid), RESIZE_SNAP)

    def adopt(self, instance, old_flavor, image_files):
        return rbd_images.grow_all(self.images, check_uuid(instance.uuid), old_flavor,
                                   instance.flavor, image_files.root, instance.disk_formats)

    def restore_aside(self, instance):
        self.images.rollback_all(check_uuid(instance.uuid), RESIZE_SNAP)

    def drop_aside(self, instance):
        self.images.remove_snapshots(check_uuid(instance.uuid), RESIZE_SNAP)

    def root_size(self, instance):
        return self.images.size(check_uuid(instance.uuid), "disk")

    def export_root(self, instance, out, out_format, snap_name):
        return self.images.export_snapshot(check_uuid(instance.uuid), "disk", out, out_format,
                                           snap_name)


class VolumeRoot:
    """A root disk that is a volume (attached by its volume driver, never
    made, grown or removed here); the guest's other disks in `others`, a
    FileDisks or RbdDisks built without a root.  The steps that work on a
    root disk on the host refuse (the operation table refuses them first:
    optable.BOOT_FROM_VOLUME)."""
    exports_root = False

    def __init__(self, others):
        self.others = others
        self.shared = others.shared

    def create(self, instance, image_meta, image_files):
        return self.others.create(instance, image_meta, image_files)

    def reopen(self, instance):
        return self.others.reopen(instance)

    def recreate_root(self, instance, image_meta, image_files, preserve_ephemeral):
        raise errors.DiskMissing(f"instance {instance.uuid} boots from a volume: "
                                 "there is no root disk here to make again")

    def present(self, instance, formats):
        return self.others.present(instance, formats)

    def remove(self, instance):
        self.others.remove(instance)        # the volume's data is never touched

    def set_aside(self, instance):
        raise errors.DiskMissing(f"instance {instance.uuid} boots from a volume: a resize "
                                 "works on a root disk on the host")

    def adopt(self, instance, old_flavor, image_files):
        raise errors.DiskMissing(f"instance {instance.uuid} boots from a volume: a resize "
                                 "works on a root disk on the host")

    def restore_aside(self, instance):
        self.others.restore_aside(instance)

    def drop_aside(self, instance):
        self.others.drop_aside(instance)
