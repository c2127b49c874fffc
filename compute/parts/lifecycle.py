"""Lifecycle: the power operations of an instance (reboot soft and hard,
suspend/resume, pause/unpause, stop/start), reset_state and diagnostics.

Each operation is accepted synchronously by the endpoint (Runner.accept,
from its row of compute.core.optable) and then runs in the worker pool under the
instance lock, as the short list of steps an operator would follow; the
Runner settles the record as the row says."""
import logging

from compute.core import exception, faults, states
from compute.core.instance import virt_instance
from compute.parts import volume_attachments
from virt import errors as virt_errors

LOG = logging.getLogger(__name__)


class Lifecycle:
    def __init__(self, conf, db, driver, runner, networking, images):
        self.conf, self.db, self.driver = conf, db, driver
        self.runner, self.networking, self.images = runner, networking, images

    def power_on(self, inst):
        """Start from a regenerated definition: re-plug, re-fetch missing
        bases (the image service is asked only if a base is gone), store
        the volumes' credentials again (a libvirtd that lost them)."""
        network_info = self.networking.plug_vifs(inst)
        files = self.images.files_for(inst, inst.image_meta)
        volume_attachments.connect_all(self.driver, inst)
        self.driver.power_on(virt_instance(inst), inst.image_meta, files, network_info)

    def reboot_soft(self, ctxt, uuid):
        def work(inst, record):
            timeout = self.conf.wait_soft_reboot_seconds
            if not self.driver.shutdown(virt_instance(inst), timeout):
                LOG.warning("instance %s ignored the ACPI shutdown for %ss; rebooting hard",
                            uuid, timeout)
                record.event("hard_reboot_fallback",
                             f"guest did not shut down within {timeout}s of the ACPI request")
            self.power_on(inst)
        self.runner.run("reboot_soft", ctxt, uuid, work)

    def reboot_hard(self, ctxt, uuid):
        self.runner.run("reboot_hard", ctxt, uuid, lambda inst, record: self.power_on(inst))

    def stop(self, ctxt, uuid):
        def work(inst, record):
            vi, timeout = virt_instance(inst), self.conf.shutdown_timeout
            if timeout and not self.driver.shutdown(vi, timeout,
                                                    self.conf.shutdown_retry_interval):
                record.event("forced_power_off", f"guest still running after {timeout}s")
            self.driver.power_off(vi)
        self.runner.run("stop", ctxt, uuid, work)

    def start(self, ctxt, uuid):
        self.runner.run("start", ctxt, uuid, lambda inst, record: self.power_on(inst))

    def suspend(self, ctxt, uuid):
        self.runner.run("suspend", ctxt, uuid,
                        lambda inst, record: self.driver.suspend(virt_instance(inst)))

    def resume(self, ctxt, uuid):
        self.runner.run("resume", ctxt, uuid,
                        lambda inst, record: self.driver.resume(virt_instance(inst)))

    def pause(self, ctxt, uuid):
        self.runner.run("pause", ctxt, uuid,
                        lambda inst, record: self.driver.pause(virt_instance(inst)))

    def unpause(self, ctxt, uuid):
        self.runner.run("unpause", ctxt, uuid,
                        lambda inst, record: self.driver.unpause(virt_instance(inst)))

    def reset_state(self, ctxt, uuid, vm_state):
        """Admin: force vm_state (active or error) and clear task_state."""
        def work(inst, record):
            record.event("reset_state", f"vm_state {inst.vm_state} -> {vm_state}, "
                                        f"task_state {inst.task_state} -> None")
            self.runner.finish("reset_state", uuid, vm_state=vm_state)
        self.runner.run("reset_state", ctxt, uuid, work, reraise=True)

    def set_admin_password(self, ctxt, uuid, password, user):
        """Set a guest user's password through the QEMU guest agent (the
        password is never written anywhere); answers when done."""
        def work(inst, record):
            faults.point("set_admin_password.accepted")
            try:
                self.driver.set_admin_password(virt_instance(inst), user, password)
            except virt_errors.GuestAgentUnavailable as e:
                raise exception.GuestAgentUnavailable(str(e)) from None
            record.event("password_set", f"user {user}")
        self.runner.run("set_admin_password", ctxt, uuid, work, reraise=True)

    def get_diagnostics(self, uuid):
        inst = self.db.instance_get(uuid)
        if inst.vm_state == states.BUILDING:
            raise exception.InstanceInvalidState(f"instance {uuid} is still building")
        try:
            return self.driver.get_diagnostics(virt_instance(inst))
        except virt_errors.InstanceNotFound:
            raise exception.InstanceInvalidState(f"instance {uuid} has no guest")
