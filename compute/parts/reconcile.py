"""Reconciler: making the record and the hypervisor agree, without
disturbing guests.

- init_host (agent start): a running guest is never rebooted, paused or
  re-created; an operation an earlier agent left half-done is handled as
  its row of compute.core.optable says (resumed, cleaned up to ERROR, settled,
  or decided with the peer by the part that runs it); a guest of ours the
  record does not know is handled per running_deleted_instance_action,
  never destroyed silently.
- Lifecycle events and the periodic sync_power_states record power states;
  an ACTIVE instance whose guest went off (by itself, or outside the agent)
  becomes STOPPED.  Neither ever starts a guest.
- A guest of ours whose record here says it was deleted on this host is
  handled per running_deleted_instance_action (log, shut down, reap).  A
  guest no record here knows (another tool's, another agent's on a shared
  libvirtd, one newer than a restored database) is only reported: logged,
  counted in the metrics and listed in the host status; never touched.
"""
import logging

from compute.core import exception, optable, states
from compute.core.instance import power_state
from virt import driver as virt_driver

LOG = logging.getLogger(__name__)
OFF = (virt_driver.SHUTDOWN, virt_driver.CRASHED, virt_driver.NOSTATE)
REPORT = "report"


def stray_guest_action(record, host, action):
    """What to do with a guest of ours that no live record here names
    (pure): the configured action when this host's record says the
    instance was deleted here, REPORT for anything else (no record, or a
    record of an instance deleted after it moved away): an agent never
    destroys what it has no word of its own for."""
    if record is not None and record.deleted and record.host == host:
        return action
    return REPORT


class Reconciler:
    """restarts: {op name: the part method its row's restart_with names},
    built from compute.core.optable by the manager: callable(ctxt, uuid) to
    issue an operation again (RESUME), callable(inst) for the parts that
    decide an interrupted migration with the peer (ASK_PEER) or undo a
    build (CLEAN_UP); at_start: what the parts finish before any record is
    looked at (snapshot work directories, half-made devices and files)."""

    def __init__(self, conf, db, driver, runner, networking, submit, restarts, at_start,
                 host):
        self.conf, self.db, self.driver, self.runner = conf, db, driver, runner
        self.networking, self.submit, self.host = networking, submit, host
        self.restarts = restarts
        self.at_start = at_start
        self.unknown_guests = []        # uuids of guests no record here knows, last sync

    def init_host(self):
        self.driver.init_host(self.host)
        self.driver.register_event_listener(self.handle_power_state)
        for finish in self.at_start:
            finish()
        for inst in self.db.instance_list(host=self.host):
            try:
                self._reconcile(inst)
            except Exception:
                LOG.exception("instance %s: reconcile after restart failed", inst.uuid)
        self._handle_unknown_guests()
        self.networking.restore()

    def _reconcile(self, inst):
        uuid, task = inst.uuid, inst.task_state
        if task is None:
            return self._settled(inst)
        op = optable.interrupted(task)
        if op is None or op.restart is None:
            LOG.warning("instance %s: unknown task_state %r left alone", uuid, task)
            return
        LOG.warning("instance %s: %s interrupted by an agent restart (%s): %s", uuid, op.name,
                    task, op.restart)
        if op.restart == optable.CLEAN_UP:
            self.restarts[op.name](inst)
            name = op.name.title().replace("_", "")
            self.db.fault_create(uuid, f"{name}Interrupted: the agent restarted during the "
                                       f"{op.name} (task_state {task}); it was cleaned up")
            self.runner.finish(op.name, uuid, checked=False, vm_state=op.failed,
                               power_state=virt_driver.NOSTATE)
        elif op.restart == optable.RESUME:
            self.submit(self.restarts[op.name], {}, uuid)
        elif op.restart == optable.SETTLE:
            self.runner.settle(op, uuid)
        elif op.restart == optable.ASK_PEER:
            self.restarts[op.name](inst)

    def _settled(self, inst):
        power = power_state(self.driver, inst)
        if (inst.vm_state == states.ACTIVE and power in OFF
                and self.conf.resume_guests_state_on_host_boot):
            LOG.info("instance %s was running before the host went down; starting it",
                     inst.uuid)
            self.db.instance_update(inst.uuid, expected_task_state=None,
                                    vm_state=states.STOPPED, power_state=power)
            self.runner.accept("start", inst.uuid)
            self.submit(self.restarts["start"], {}, inst.uuid)
        else:
            self._sync_instance(inst, power)

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
        self._sync_instance(inst, power_state(self.driver, inst))

    def sync_power_states(self):
        """Periodic: what lifecycle events missed, and unknown guests."""
        for inst in self.db.instance_list(host=self.host):
            if inst.task_state is None:
                self._sync_instance(inst, power_state(self.driver, inst))
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
        unknown = []
        for uuid in self.driver.list_instance_uuids():
            if uuid in known:
                continue
            try:
                record = self.db.instance_get(uuid, include_deleted=True)
            except exception.InstanceNotFound:
                record = None
            what = stray_guest_action(record, self.host, action)
            ref = virt_driver.Instance.ref(uuid)
            if what == REPORT:
                unknown.append(uuid)
                if action != "noop":
                    LOG.warning("guest %s: no record of this host names it (%s); left alone "
                                "and reported, whatever running_deleted_instance_action "
                                "says", uuid, "none" if record is None else
                                f"deleted after it moved to {record.host}")
            elif what == "log":
                LOG.warning("guest %s runs though its instance was deleted here; "
                            "running_deleted_instance_action=log leaves it alone", uuid)
            elif what == "shutdown":
                LOG.warning("guest %s runs though its instance was deleted here; "
                            "powering it off", uuid)
                self.driver.power_off(ref)
            elif what == "reap":
                LOG.warning("guest %s runs though its instance was deleted here; reaping it",
                            uuid)
                self.driver.destroy(ref, [], destroy_disks=True)
        self.unknown_guests = sorted(unknown)
