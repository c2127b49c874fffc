"""The duties every instance operation shares: Operations.run takes the
instance's lock, records an instance action with its event, sends
start/end/error notifications and records a fault when it fails; Runner
accepts and settles operations by their row of compute.core.optable."""
import contextlib
import logging
import time
import traceback

from oslo_concurrency import lockutils

from compute.core import exception, optable
from compute.core.instance import power_state
from compute.core.resource_tracker import boots_from_volume

LOG = logging.getLogger(__name__)


class Operations:
    def __init__(self, db, notifier, host, metrics=None):
        self.db, self.notifier, self.host = db, notifier, host
        self.metrics = metrics              # compute.agent.metrics.Metrics, or None

    def notify(self, event_type, payload, error=False):
        if self.notifier is None:
            return
        send = self.notifier.error if error else self.notifier.info
        try:
            send({}, f"compute.instance.{event_type}", payload)
        except Exception:
            LOG.exception("could not send notification %s", event_type)

    @contextlib.contextmanager
    def run(self, ctxt, uuid, action, record_fault=True, lock=True):
        """with ops.run(ctxt, uuid, "create") as record: ... the steps;
        record.event(name, details) notes a noteworthy step.  lock=False:
        the caller already holds the instance (the destination side of a
        resize on the same host, called by its source side)."""
        # named with the host too: two agents in one process (the functional
        # migration tests) must not share an instance's lock
        with lockutils.lock(f"{self.host}-instance-{uuid}") if lock \
                else contextlib.nullcontext():
            action_id = self.db.action_start(uuid, action, (ctxt or {}).get("request_id"))
            event_id = self.db.event_start(action_id, f"compute_{action}")
            payload = {"instance_uuid": uuid, "host": self.host}
            self.notify(f"{action}.start", payload)
            started = time.monotonic()
            try:
                yield ActionRecord(self.db, action_id)
            except Exception as e:
                self._count(action, started, failed=True)
                LOG.error("instance %s: %s failed: %s", uuid, action, e)
                # the reason first, for whoever reads only that; then where
                details = f"{type(e).__name__}: {e}\n{traceback.format_exc()}"
                self.db.event_finish(event_id, "Error", details)
                self.db.action_finish(action_id, "Error")
                if record_fault:
                    self.db.fault_create(uuid, f"{type(e).__name__}: {e}", details)
                self.notify(f"{action}.error", dict(payload, message=str(e)), error=True)
                raise
            self._count(action, started, failed=False)
            self.db.event_finish(event_id, "Success")
            self.db.action_finish(action_id)
            self.notify(f"{action}.end", payload)

    def _count(self, action, started, failed):
        if self.metrics is not None:
            self.metrics.operation(action, time.monotonic() - started, failed)


class ActionRecord:
    """The action of a running operation, for recording extra events and
    the values its row's done update writes with it (finish_with)."""

    def __init__(self, db, action_id):
        self.db, self.action_id = db, action_id
        self.done_values = {}

    def event(self, name, details=None, result="Success"):
        event_id = self.db.event_start(self.action_id, name)
        self.db.event_finish(event_id, result, details)

    def finish_with(self, **values):
        """Written in the same update that ends the operation."""
        self.done_values.update(values)


def instance_facts(inst):
    """What the rows' refusals look at, of a record (optable.refuses)."""
    facts = set()
    if boots_from_volume(inst.volumes):
        facts.add(optable.BOOT_FROM_VOLUME)
    if ((inst.image_meta or {}).get("properties") or {}).get("hw_tpm_version"):
        facts.add(optable.VTPM)
    return facts


class Runner:
    """Operations by their row of compute.core.optable, and the only writer of
    task states: record() makes a record in its first task state;
    accept() takes the row's first task state by compare-and-swap (or
    refuses, changing nothing); advance() moves to the row's next step;
    run() runs the work under Operations.run and settles the record as the
    row says, on success and on failure; finish() ends an operation whose
    part settles the record itself (a migration's sides, a recovery)."""

    def __init__(self, db, ops, driver):
        self.db, self.ops, self.driver = db, ops, driver

    @staticmethod
    def _refuse(op, uuid, inst):
        why = optable.refusal(op, instance_facts(inst))
        if why:
            raise exception.InvalidRequest(f"instance {uuid}: {why}")

    @staticmethod
    def _invalid_state(op, uuid, inst):
        return exception.InstanceInvalidState(
            f"cannot {op.name.replace('_', ' ')} instance {uuid} in "
            f"vm_state={inst.vm_state} task_state={inst.task_state}; allowed: vm_state "
            f"in {sorted(op.vm_from or ['any'])} with task_state in "
            f"{list(op.task_from or ['any'])}")

    def record(self, op_name, failed=False, **values):
        """A new record (instance_create's values) in op's first task state;
        failed: in the row's failed vm_state with no task state instead."""
        op = optable.TABLE[op_name]
        if failed:
            values.update(vm_state=op.failed, task_state=None)
        else:
            values["task_state"] = op.tasks[0]
        return self.db.instance_create(**values)

    def accept(self, op_name, uuid, **values):
        """Move the instance into op's first task state (with values), or
        raise InstanceInvalidState naming the state it is in."""
        op = optable.TABLE[op_name]
        inst = self.db.instance_get(uuid)
        self._refuse(op, uuid, inst)
        expected = {}
        if op.vm_from is not optable.ANY:
            expected["expected_vm_state"] = op.vm_from
        if op.task_from is not optable.ANY:
            expected["expected_task_state"] = op.task_from
        try:
            self.db.instance_update(uuid, task_state=op.tasks[0], **expected, **values)
        except exception.UnexpectedTaskState:
            raise self._invalid_state(op, uuid, self.db.instance_get(uuid)) from None

    def advance(self, op_name, uuid, task, after=None, **values):
        """The instance to task, a step of op's row, from the step before it
        (after: from these task states instead: a step taken again, or a
        record another row of the same move left), by compare-and-swap."""
        op = optable.TABLE[op_name]
        i = op.tasks.index(task)            # ValueError: not a step of the row
        if after is None:
            after = op.tasks[i - 1] if i else op.tasks
        self.db.instance_update(uuid, expected_task_state=after, task_state=task, **values)

    def finish(self, op_name, uuid, checked=True, **values):
        """op ended, settled by its part: the task state cleared (checked:
        only from one of the row's steps) with values."""
        op = optable.TABLE[op_name]
        if checked and op.tasks:
            values["expected_task_state"] = op.tasks
        self.db.instance_update(uuid, task_state=None, **values)

    def run(self, op_name, ctxt, uuid, work, lock=True, reraise=False, migration_id=None,
            then=None):
        """work(inst, record) for an accepted op (a row without task states
        is checked against its accepted states here); on success the row's
        done state (if it has one, with record.finish_with's values), on
        failure the row's settle; the work's result.  reraise: the failure
        also goes to the caller (an RPC call waiting for it); otherwise it
        is logged and recorded.  then: the op that follows at once, whose
        first task state the done update takes (no reader sees the
        instance idle in between)."""
        op = optable.TABLE[op_name]
        try:
            with self.ops.run(ctxt, uuid, op.action, record_fault=op.fault, lock=lock) as record:
                inst = self.db.instance_get(uuid)
                if not op.tasks:
                    self._refuse(op, uuid, inst)
                    if not optable.accepts(op, inst.vm_state, inst.task_state):
                        raise self._invalid_state(op, uuid, inst)
                result = work(inst, record)
                if op.done is not None:
                    done = {} if op.done == optable.KEEP else {"vm_state": op.done}
                    follow = optable.TABLE[then].tasks[0] if then else None
                    self.db.instance_update(uuid, expected_task_state=op.tasks,
                                            task_state=follow,
                                            progress=None,
                                            power_state=power_state(self.driver, inst),
                                            **{**record.done_values, **done})
                return result
        except Exception as e:
            LOG.error("instance %s: %s failed: %s", uuid, op_name, e)
            if op.on_failure == optable.SETTLE:
                self.settle(op, uuid, e, migration_id)
            if reraise:
                raise
            return None

    def settle(self, op, uuid, error=None, migration_id=None):
        """A failed (or interrupted) op's record as its row says: task state
        cleared, the row's failed vm_state, the guest's power state; its
        migration row in the row's failed status with the reason.  A row
        without task states leaves the record as it is."""
        if migration_id is not None and op.migration_failed:
            if isinstance(error, exception.ComputeError):
                error = exception.local_copy(error)     # a peer's reason, no traceback
            self.db.migration_update(migration_id, status=op.migration_failed,
                                     message=f"{type(error).__name__}: {error}"[:1000])
        if not op.tasks:
            return
        values = {"task_state": None, "progress": None}
        if op.failed:
            values["vm_state"] = op.failed
        try:
            inst = self.db.instance_get(uuid)
            self.db.instance_update(uuid, expected_task_state=op.tasks,
                                    power_state=power_state(self.driver, inst), **values)
        except exception.ComputeError as e:
            LOG.warning("instance %s: not settled after a failed %s: %s", uuid, op.name, e)


def progress_writer(db, uuid, start, end):
    """progress(percent of one step) -> the record's progress between start
    and end, written in steps of 5."""
    last = [start]

    def progress(pct):
        value = start + (end - start) * pct // 100
        if value >= last[0] + 5:
            last[0] = value
            db.instance_update(uuid, progress=value)
    return progress
