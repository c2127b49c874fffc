"""DiskStore: which backend (virt.libvirt.disk_backends) holds an
instance's disks, decided in one place.  A new instance's disks are made
where this host makes them (files, or the RBD pool with `images_type =
rbd`); an existing instance's are where its record's formats say
(virt.driver.disks_shared), whatever this host makes now; a root disk that
is a volume is the VolumeRoot over either.  The instance's directory
(definition, console log, a resize's aside copy) is handled here for
every backend; each step on the disks is its backend's."""
from virt import driver as virt_driver
from virt import errors
from virt.libvirt import rbd_images, resize
from virt.libvirt.disk_backends import FileDisks, RbdDisks, VolumeRoot


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
        if not virt_driver.disks_shared(instance.disk_formats):
            return False
        if self.rbd is None:
            raise errors.DiskMissing(f"instance {instance.uuid} has its disks in Ceph and "
                                     "this host has no images_type = rbd")
        return True

    def _backend(self, instance, in_pool):
        root = instance.boot_volume is None
        base = (RbdDisks(self.rbd, self.cache, root) if in_pool
                else FileDisks(self.conf, self.cache, self.instance_dir, root))
        return base if root else VolumeRoot(base)

    def of(self, instance):
        """The backend of an instance that exists (its record's formats)."""
        return self._backend(instance, self.in_ceph(instance))

    def new(self, instance):
        """The backend this host makes a new instance's disks on."""
        return self._backend(instance, self.rbd is not None)

    def create(self, instance, image_meta, image_files):
        return self.new(instance).create(instance, image_meta, image_files)

    def reopen(self, instance):
        return self.of(instance).reopen(instance)

    def recreate_root(self, instance, image_meta, image_files, preserve_ephemeral):
        return self.of(instance).recreate_root(instance, image_meta, image_files,
                                               preserve_ephemeral)

    def formats_after(self, instance, formats):
        """The formats to record once the guest is defined (reopen made the
        missing blank disk files as qcow2)."""
        return self.of(instance).present(instance, formats)

    def remove_shared(self, instance):
        """A deleted instance's disks that outlive its directory (RBD
        images; none is fine): only a delete, a failed build or an offload
        removes them, never a host's clean-up.  A build records no formats
        yet: its disks are where this host makes new ones."""
        backend = self.of(instance) if instance.disk_formats else self.new(instance)
        if backend.shared:
            backend.remove(instance)

    # -- a resize ----------------------------------------------------------------------

    def move_aside(self, instance):
        """Source, the guest off: the way back taken (the directory moved
        aside, the backend's own); {name: path} of the disk files to send."""
        self.of(instance).set_aside(instance)
        return resize.move_aside(self.instance_dir(instance))

    def adopt(self, instance, old_flavor, image_files):
        """Destination: the disks made ready for the new flavor; the formats
        of those that remain."""
        return self.of(instance).adopt(instance, old_flavor, image_files)

    def move_back(self, instance):
        """Source, on revert: the directory back, the disks as they were."""
        resize.move_back(self.instance_dir(instance))
        self.of(instance).restore_aside(instance)

    def confirm(self, instance):
        resize.remove_aside(self.instance_dir(instance))
        self.of(instance).drop_aside(instance)
