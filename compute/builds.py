"""Builds: spawning an instance and deleting it, the steps in the order an
operator's runbook lists them.  The endpoint recorded the instance
(BUILDING/scheduling) before the build runs here; a delete is accepted
from any state.  Both settle through their rows of compute.optable."""
import logging

from compute import exception, faults, states
from compute.db.models import utcnow
from compute.instance import config_drive, power_state, virt_instance
from imagecache.glance import split_properties
from virt import driver as virt_driver

LOG = logging.getLogger(__name__)


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
            self.db.instance_update(uuid, expected_task_state=states.SCHEDULING,
                                    task_state=states.NETWORKING)
            network_info = self.networking.plug_vifs(inst)
            plugged = True
            faults.point("build.plugged")
            self.db.instance_update(uuid, expected_task_state=states.NETWORKING,
                                    task_state=states.SPAWNING)
            image_meta = split_properties(self.glance.show(inst.image_ref))
            files = self.images.files_for(inst, image_meta)
            vi = virt_instance(inst, config_drive=config_drive(inst, admin_pass))
            formats = self.driver.spawn(vi, image_meta, files, network_info)
            faults.point("build.spawned")
        except Exception:
            self.clean_up(inst, unplug=plugged)
            raise
        self.db.instance_update(uuid, expected_task_state=states.SPAWNING, launched_at=utcnow(),
                                image_meta=image_meta, disk_formats=formats,
                                power_state=power_state(self.driver, inst))

    def clean_up(self, inst, unplug=True):
        """Undo what a failed build created: guest, disks, instance dir, VIFs
        (plug_vifs undid its own partial work, hence unplug=False)."""
        try:
            self.driver.destroy(virt_instance(inst), [], destroy_disks=True)
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
            self.driver.destroy(virt_instance(inst), [], destroy_disks=True)
            faults.point("delete.destroyed")
            self.db.floating_ip_remove(instance_uuid=uuid)
            self.networking.unplug_vifs(inst)
            self.db.instance_update(uuid, expected_task_state=states.DELETING,
                                    vm_state=states.DELETED, task_state=None,
                                    power_state=virt_driver.NOSTATE, deleted=True,
                                    terminated_at=utcnow())
        self.runner.run("delete", ctxt, uuid, work)
