"""Builds: spawning an instance, rebuilding it in place and deleting it, the steps in the order an
operator's runbook lists them.  The endpoint recorded the instance
(BUILDING/scheduling) before the build runs here; a delete is accepted
from any state.  Both settle through their rows of compute.core.optable."""
import logging

from compute.core import exception, faults, states
from compute.core.instance import config_drive, virt_instance
from compute.db.models import utcnow
from compute.parts import volume_attachments
from imagecache import errors as image_errors
from imagecache.glance import split_properties
from virt import driver as virt_driver

LOG = logging.getLogger(__name__)


def show_or_refuse(glance, image_ref, what):
    """The image's record; InvalidRequest when the image service says it
    does not exist or is not ours (an outage is raised as it is)."""
    try:
        return glance.show(image_ref)
    except (image_errors.ImageNotFound, image_errors.ImageForbidden,
            image_errors.InvalidImageId) as e:
        raise exception.InvalidRequest(f"{what} image {image_ref}: {e}") from None


class Builds:
    def __init__(self, db, driver, runner, networking, images, glance):
        self.db, self.driver, self.runner = db, driver, runner
        self.networking, self.images, self.glance = networking, images, glance

    def build_and_run_instance(self, ctxt, uuid, admin_pass=None):
        """Runs in the build pool after the endpoint recorded the instance.
        On failure the fault is recorded (by ops.run) before the instance is
        moved to ERROR, so ERROR always comes with its reason.  admin_pass
        (never recorded) goes into the first config drive only."""
        self.runner.run("build", ctxt, uuid,
                        lambda inst, record: self._build(inst, record, admin_pass))

    def _build(self, inst, record, admin_pass=None):
        uuid, plugged = inst.uuid, False
        try:
            self.runner.advance("build", uuid, states.NETWORKING)
            network_info = self.networking.plug_vifs(inst)
            plugged = True
            faults.point("build.plugged")
            self.runner.advance("build", uuid, states.SPAWNING)
            image_meta = split_properties(self.glance.show(inst.image_ref))
            files = self.images.files_for(inst, image_meta)
            vi = virt_instance(inst, config_drive=config_drive(inst, admin_pass))
            volume_attachments.connect_all(self.driver, inst)
            formats = self.driver.spawn(vi, image_meta, files, network_info)
            faults.point("build.spawned")
        except Exception:
            self.clean_up(inst, unplug=plugged)
            raise
        record.finish_with(launched_at=utcnow(), image_meta=image_meta, disk_formats=formats)

    def accept_rebuild(self, uuid, image_ref=None, preserve_ephemeral=False):
        """The image checked (the call fails, nothing changes, when it is
        not found), then the instance in REBUILDING with its new image_ref."""
        image_ref = image_ref or self.db.instance_get(uuid).image_ref
        show_or_refuse(self.glance, image_ref, "rebuild")
        self.runner.accept("rebuild", uuid, image_ref=image_ref,
                           task_args={"preserve_ephemeral": bool(preserve_ephemeral)})
        return image_ref

    def rebuild_instance(self, ctxt, uuid):
        """Reimage in place from the recorded image_ref: same uuid, ports,
        addresses and config-drive data; the root disk new; the ephemeral
        disk kept when asked."""
        def work(inst, record):
            preserve = bool((inst.task_args or {}).get("preserve_ephemeral"))
            image_meta = split_properties(self.glance.show(inst.image_ref))
            files = self.images.files_for(inst, image_meta)
            network_info = self.networking.plug_vifs(inst)
            faults.point("rebuild.prepared")
            formats = self.driver.rebuild(virt_instance(inst), image_meta, files,
                                          network_info, preserve)
            faults.point("rebuild.spawned")
            self.db.instance_update(uuid, image_meta=image_meta, disk_formats=formats,
                                    launched_at=utcnow())
            record.event("rebuilt", f"image {inst.image_ref}; ephemeral disk "
                                    f"{'kept' if preserve else 'blank'}")
        self.runner.run("rebuild", ctxt, uuid, work)

    def clean_up(self, inst, unplug=True):
        """Undo what a failed build created: guest, disks, instance dir, VIFs
        (plug_vifs undid its own partial work, hence unplug=False)."""
        try:
            self.driver.destroy(virt_instance(inst), [], destroy_disks=True)
            self.driver.remove_shared_disks(virt_instance(inst))
            volume_attachments.forget_all(self.driver, inst)
            if unplug:
                self.networking.unplug_vifs(inst)
        except Exception:
            LOG.exception("instance %s: cleanup after failed build failed", inst.uuid)

    def terminate_instance(self, ctxt, uuid):
        """Destroy the guest (running, paused, suspended with a save file,
        stopped or in error), its disks and directory; unplug; mark deleted.
        An instance already deleted is not an error; the base stays cached."""
        try:
            self.runner.accept("delete", uuid)
        except exception.InstanceNotFound:
            LOG.info("instance %s: already deleted", uuid)
            return

        def work(inst, record):
            vi = virt_instance(inst)
            self.driver.destroy(vi, [], destroy_disks=True)
            self.driver.remove_shared_disks(vi)
            volume_attachments.forget_all(self.driver, inst)   # the volumes' data stays
            faults.point("delete.destroyed")
            self.db.floating_ip_remove(instance_uuid=uuid)
            self.networking.unplug_vifs(inst)
            self.runner.finish("delete", uuid, vm_state=states.DELETED,
                               power_state=virt_driver.NOSTATE, deleted=True,
                               terminated_at=utcnow())
            self._close_migrations(uuid)
        self.runner.run("delete", ctxt, uuid, work)

    def _close_migrations(self, uuid):
        """A deleted instance's migrations that were still open here (a
        resize never confirmed or reverted) end in error: nothing will
        finish them (the chaos invariants found them left `finished`).  An
        evacuation's row is left as it is: its status is what tells the
        down host, when it is back, to remove its own copy."""
        for mig in self.db.migrations(uuid):
            if mig.status in states.FINAL_MIGRATION or mig.migration_type == "evacuation":
                continue
            try:
                self.db.migration_update(mig.id, status=states.MigrationStatus.ERROR,
                                         message="the instance was deleted during the "
                                                 f"{mig.migration_type}")
            except Exception as e:      # the delete stands; the row is only left open
                LOG.warning("instance %s: migration %s left %s: %s", uuid, mig.id,
                            mig.status, e)
