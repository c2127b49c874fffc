"""Making the record and the hypervisor agree, without disturbing guests.

- init_host (agent start): a running guest is never rebooted, paused or
  re-created; an operation an earlier agent left half-done is finished or
  re-issued (an interrupted build is cleaned up and goes to ERROR); a guest
  of ours the record does not know is handled per
  running_deleted_instance_action, never destroyed silently.
- Lifecycle events and the periodic sync_power_states record power states;
  an ACTIVE instance whose guest went off (by itself, or outside the agent)
  becomes STOPPED.  Neither ever starts a guest.
A mixin of ComputeManager.
"""
import logging
import os
import time

from compute import exception, states
from compute.resize import RESIZE_TASKS
from compute.snapshot import SNAPSHOT_STATES
from compute.transitions import RESUME_AFTER_RESTART
from virt import driver as virt_driver

LOG = logging.getLogger(__name__)
OFF = (virt_driver.SHUTDOWN, virt_driver.CRASHED, virt_driver.NOSTATE)
BUILD_TASK_STATES = (states.SCHEDULING, states.NETWORKING, states.SPAWNING)
PROBE_PREFIXES = (".shared-probe-", ".directio-")


class ReconcileMixin:
    def init_host(self):
        self._remove_leftovers()
        self.driver.init_host(self.host)
        self.driver.register_event_listener(self.handle_power_state)
        self.cleanup_interrupted_snapshots()
        for inst in self.db.instance_list(host=self.host):
            try:
                self._reconcile(inst)
            except Exception:
                LOG.exception("instance %s: reconcile after restart failed", inst.uuid)
        self._handle_unknown_guests()
        self._restore_network()

    def _remove_leftovers(self):
        """Temporary files a killed agent left: partial downloads and blank
        bases in _base, and its probe files in instances_path (on shared
        storage only old ones: another host's check may be running)."""
        self.cache.remove_partial()
        now = time.time()
        for entry in os.scandir(self.conf.instances_path):
            if entry.name.startswith(PROBE_PREFIXES) and entry.is_file() \
                    and now - entry.stat().st_mtime > self.conf.rpc_peer_timeout:
                LOG.warning("removing %s, left by an interrupted check", entry.name)
                os.unlink(entry.path)

    def _restore_network(self):
        """Bridges and uplinks of every wired instance (after a host reboot
        they are gone), then firewall, NAT and DHCP from the records."""
        self._safely(self.vifs.cleanup)
        for inst in self.db.instance_list(host=self.host):
            if self._wired(inst):
                for net, _, vif in self._vifs(inst):
                    self._safely(self.vifs.plug, net, vif)
        self.apply_network()

    def _reconcile(self, inst):
        uuid, task = inst.uuid, inst.task_state
        if inst.vm_state == states.BUILDING or task in BUILD_TASK_STATES:
            LOG.warning("instance %s: build interrupted by an agent restart; cleaning up", uuid)
            self._cleanup_failed_build(inst)
            self.db.fault_create(uuid, "BuildInterrupted: the agent restarted during the "
                                       f"build (task_state {task}); the build was cleaned up")
            self.db.instance_update(uuid, vm_state=states.ERROR, task_state=None,
                                    power_state=virt_driver.NOSTATE)
        elif task in SNAPSHOT_STATES:
            LOG.warning("instance %s: snapshot interrupted by an agent restart", uuid)
            self._settle_snapshot(uuid)
        elif task == states.MIGRATING:
            # libvirt finishes or fails a peer-to-peer migration on its own;
            # the record follows where the guest is now
            power = self._power_state(inst)
            LOG.warning("instance %s: live migration interrupted by an agent restart; the "
                        "guest is %s here", uuid, "present" if power else "not")
            self.db.instance_update(uuid, task_state=None, power_state=power)
        elif task in RESIZE_TASKS:
            self.recover_resize(inst)
        elif task == states.DELETING:
            LOG.warning("instance %s: completing an interrupted delete", uuid)
            self.submit(self.terminate_instance, {}, uuid)
        elif task in RESUME_AFTER_RESTART:
            op = RESUME_AFTER_RESTART[task]
            LOG.warning("instance %s: re-issuing interrupted %s", uuid, op)
            self.submit(getattr(self, op), {}, uuid)
        elif task is None:
            power = self._power_state(inst)
            if (inst.vm_state == states.ACTIVE and power in OFF
                    and self.conf.resume_guests_state_on_host_boot):
                LOG.info("instance %s was running before the host went down; starting it", uuid)
                self.db.instance_update(uuid, expected_task_state=None, vm_state=states.STOPPED,
                                        power_state=power)
                self.accept("start", uuid)
                self.submit(self.start, {}, uuid)
            else:
                self._sync_instance(inst, power)
        else:
            LOG.warning("instance %s: unknown task_state %r left alone", uuid, task)

    # -- power-state sync -------------------------------------------------------

    def handle_power_state(self, uuid):
        """A lifecycle event from the hypervisor.  The power state is asked
        again after the record is read: the event's state may predate the
        record (a spawn that finished meanwhile), and judging a fresh record
        by a stale state would stop a running instance."""
        try:
            inst = self.db.instance_get(uuid)
        except exception.InstanceNotFound:
            return
        self._sync_instance(inst, self._power_state(inst))

    def sync_power_states(self):
        """Periodic: what lifecycle events missed, and unknown guests."""
        for inst in self.db.instance_list(host=self.host):
            if inst.task_state is None:
                self._sync_instance(inst, self._power_state(inst))
        self._handle_unknown_guests()

    def _sync_instance(self, inst, power):
        if inst.task_state is not None:
            return      # an operation in progress owns the state and records it at its end
        if power != inst.power_state:
            self.db.instance_update(inst.uuid, power_state=power)
        if inst.vm_state == states.ACTIVE and power in OFF:
            try:
                self.db.instance_update(inst.uuid, expected_task_state=None,
                                        expected_vm_state=states.ACTIVE,
                                        vm_state=states.STOPPED)
                LOG.warning("instance %s: guest is off (power %s); instance is now STOPPED",
                            inst.uuid, virt_driver.POWER_STATE_NAMES[power])
            except exception.UnexpectedTaskState:
                pass                # an operation started meanwhile
        elif inst.vm_state == states.STOPPED and power == virt_driver.RUNNING:
            LOG.warning("instance %s is STOPPED but its guest runs (started outside the "
                        "agent); left running", inst.uuid)

    def _handle_unknown_guests(self):
        known = {i.uuid for i in self.db.instance_list(host=self.host)}
        action = self.conf.running_deleted_instance_action
        for uuid in self.driver.list_instance_uuids():
            if uuid in known or action == "noop":
                continue
            ref = virt_driver.Instance.ref(uuid)
            if action == "log":
                LOG.warning("guest %s has no instance here (deleted or unknown); "
                            "running_deleted_instance_action=log leaves it alone", uuid)
            elif action == "shutdown":
                LOG.warning("guest %s has no instance here; powering it off", uuid)
                self.driver.power_off(ref)
            elif action == "reap":
                LOG.warning("guest %s has no instance here; reaping it", uuid)
                self.driver.destroy(ref, [], destroy_disks=True)


