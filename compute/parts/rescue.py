"""Rescues: boot an instance from a rescue image (its own, or one given)
with its own disks attached after the rescue disk, so a broken fstab,
init or sshd can be repaired from outside; unrescue boots the own disks
again and the rescue disk is removed.  The rescue image is recorded
(instances.task_args) when the rescue is accepted, so an agent restart
can issue it again."""
import logging

from compute.core import faults
from compute.core.instance import virt_instance
from compute.parts.builds import show_or_refuse
from imagecache.glance import split_properties

LOG = logging.getLogger(__name__)
# what the guest keeps whatever it boots: its TPM (and its state) is the
# instance's, not the rescue image's
KEPT_PROPERTIES = ("hw_tpm_version", "hw_tpm_model")


def rescue_image_meta(rescue_meta, instance_meta):
    """The rescue image's metadata with the instance's own device
    properties (KEPT_PROPERTIES) in place of the rescue image's (pure)."""
    props = {k: v for k, v in (rescue_meta.get("properties") or {}).items()
             if k not in KEPT_PROPERTIES}
    own = (instance_meta or {}).get("properties") or {}
    props.update({k: own[k] for k in KEPT_PROPERTIES if k in own})
    return {**rescue_meta, "properties": props}


class Rescues:
    def __init__(self, db, driver, runner, networking, images, glance, power_on):
        self.db, self.driver, self.runner = db, driver, runner
        self.networking, self.images, self.glance = networking, images, glance
        self.power_on = power_on            # Lifecycle.power_on: the own disks again

    def accept_rescue(self, uuid, image_ref=None):
        """Check the rescue image exists (the call fails, nothing changes,
        when it does not), then take the instance into RESCUING."""
        image_ref = image_ref or self.db.instance_get(uuid).image_ref
        show_or_refuse(self.glance, image_ref, "rescue")
        self.runner.accept("rescue", uuid, task_args={"image_ref": image_ref})
        return image_ref

    def rescue(self, ctxt, uuid):
        def work(inst, record):
            image_ref = (inst.task_args or {}).get("image_ref") or inst.image_ref
            meta = split_properties(self.glance.show(image_ref))
            files = self.images.files_for(inst, meta, image_id=image_ref)
            network_info = self.networking.plug_vifs(inst)
            faults.point("rescue.prepared")
            self.driver.rescue(virt_instance(inst), rescue_image_meta(meta, inst.image_meta),
                               files, network_info)
            faults.point("rescue.booted")
            record.event("rescue", f"booted image {image_ref}; the instance's disks follow it")
        self.runner.run("rescue", ctxt, uuid, work)

    def unrescue(self, ctxt, uuid):
        def work(inst, record):
            self.power_on(inst)
            faults.point("unrescue.booted")
        self.runner.run("unrescue", ctxt, uuid, work)
