"""Power operations of an instance: reboot (soft, hard), suspend/resume,
pause/unpause, stop/start, reset_state.

Each operation is accepted synchronously (accept(): a compare-and-swap into
its task_state per compute.transitions, or InstanceInvalidState) and then
runs in the worker pool under the instance lock, as the short list of steps
an operator would follow.  A mixin of ComputeManager.
"""
import logging

from compute import exception, states
from compute.transitions import TRANSITIONS
from virt import driver as virt_driver
from virt import errors as virt_errors

LOG = logging.getLogger(__name__)
ACTION_NAMES = {"reboot_soft": "reboot", "reboot_hard": "reboot"}


class LifecycleMixin:
    def accept(self, op, uuid):
        """Move the instance into op's task_state, or refuse with
        InstanceInvalidState naming the state it is in (nothing changes)."""
        t = TRANSITIONS[op]
        self.take_task(uuid, op.replace("_", " "), t.vm_from, t.task_from, t.task)

    def take_task(self, uuid, what, vm_from, task_from, task, **values):
        """Compare-and-swap the instance into task (with values) from
        vm_state in vm_from and task_state in task_from, or refuse with
        InstanceInvalidState naming the state it is in; nothing changes."""
        try:
            self.db.instance_update(uuid, expected_vm_state=vm_from,
                                    expected_task_state=task_from, task_state=task, **values)
        except exception.UnexpectedTaskState:
            inst = self.db.instance_get(uuid)
            raise exception.InstanceInvalidState(
                f"cannot {what} instance {uuid} in vm_state={inst.vm_state} "
                f"task_state={inst.task_state}; allowed: vm_state in "
                f"{sorted(vm_from)} with task_state in {list(task_from)}") from None

    def _run_op(self, ctxt, op, uuid, work):
        """Run work(inst, record) for an accepted op and settle the state."""
        t = TRANSITIONS[op]
        try:
            with self.ops.run(ctxt, uuid, ACTION_NAMES.get(op, op)) as record:
                inst = self.db.instance_get(uuid)
                work(inst, record)
                self.db.instance_update(uuid, expected_task_state=t.task, vm_state=t.done,
                                        task_state=None, power_state=self._power_state(inst))
        except Exception as e:
            LOG.error("instance %s: %s failed: %s", uuid, op, e)
            values = {"task_state": None}
            if t.failed:
                values["vm_state"] = t.failed
            try:
                inst = self.db.instance_get(uuid)
                self.db.instance_update(uuid, expected_task_state=t.task,
                                        power_state=self._power_state(inst), **values)
            except exception.ComputeError as e2:
                LOG.warning("instance %s: state not settled after failed %s: %s", uuid, op, e2)

    def _power_state(self, inst):
        try:
            return self.driver.get_info(self.virt_instance(inst)).power_state
        except virt_errors.InstanceNotFound:
            return virt_driver.NOSTATE

    def _power_on(self, inst):
        """Start from a regenerated definition: re-plug, re-fetch missing
        bases (the image service is asked only if a base is gone)."""
        network_info = self._plug_vifs(inst)
        files = self._image_files(inst, inst.image_meta)
        self.driver.power_on(self.virt_instance(inst), inst.image_meta, files, network_info)

    # -- the operations ---------------------------------------------------------

    def reboot_soft(self, ctxt, uuid):
        def work(inst, record):
            timeout = self.conf.wait_soft_reboot_seconds
            if not self.driver.shutdown(self.virt_instance(inst), timeout):
                LOG.warning("instance %s ignored the ACPI shutdown for %ss; rebooting hard",
                            uuid, timeout)
                record.event("hard_reboot_fallback",
                             f"guest did not shut down within {timeout}s of the ACPI request")
            self._power_on(inst)
        self._run_op(ctxt, "reboot_soft", uuid, work)

    def reboot_hard(self, ctxt, uuid):
        self._run_op(ctxt, "reboot_hard", uuid, lambda inst, record: self._power_on(inst))

    def stop(self, ctxt, uuid):
        def work(inst, record):
            vi, timeout = self.virt_instance(inst), self.conf.shutdown_timeout
            if timeout and not self.driver.shutdown(vi, timeout,
                                                    self.conf.shutdown_retry_interval):
                record.event("forced_power_off", f"guest still running after {timeout}s")
            self.driver.power_off(vi)
        self._run_op(ctxt, "stop", uuid, work)

    def start(self, ctxt, uuid):
        self._run_op(ctxt, "start", uuid, lambda inst, record: self._power_on(inst))

    def suspend(self, ctxt, uuid):
        self._run_op(ctxt, "suspend", uuid,
                     lambda inst, record: self.driver.suspend(self.virt_instance(inst)))

    def resume(self, ctxt, uuid):
        self._run_op(ctxt, "resume", uuid,
                     lambda inst, record: self.driver.resume(self.virt_instance(inst)))

    def pause(self, ctxt, uuid):
        self._run_op(ctxt, "pause", uuid,
                     lambda inst, record: self.driver.pause(self.virt_instance(inst)))

    def unpause(self, ctxt, uuid):
        self._run_op(ctxt, "unpause", uuid,
                     lambda inst, record: self.driver.unpause(self.virt_instance(inst)))

    def reset_state(self, ctxt, uuid, vm_state):
        """Admin: force vm_state (active or error) and clear task_state."""
        with self.ops.run(ctxt, uuid, "reset_state", record_fault=False) as record:
            inst = self.db.instance_get(uuid)
            record.event("reset_state", f"vm_state {inst.vm_state} -> {vm_state}, "
                                        f"task_state {inst.task_state} -> None")
            self.db.instance_update(uuid, vm_state=vm_state, task_state=None)

    def get_diagnostics(self, uuid):
        inst = self.db.instance_get(uuid)
        if inst.vm_state == states.BUILDING:
            raise exception.InstanceInvalidState(f"instance {uuid} is still building")
        try:
            return self.driver.get_diagnostics(self.virt_instance(inst))
        except virt_errors.InstanceNotFound:
            raise exception.InstanceInvalidState(f"instance {uuid} has no guest")
