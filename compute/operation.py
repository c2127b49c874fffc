"""The duties every instance operation shares, in one context manager:
take the instance's lock, record an instance action with its event, send
start/end/error notifications, and record a fault when it fails."""
import contextlib
import logging
import traceback

from oslo_concurrency import lockutils

LOG = logging.getLogger(__name__)


class Operations:
    def __init__(self, db, notifier, host):
        self.db, self.notifier, self.host = db, notifier, host

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
        with lockutils.lock(f"instance-{uuid}") if lock else contextlib.nullcontext():
            action_id = self.db.action_start(uuid, action, (ctxt or {}).get("request_id"))
            event_id = self.db.event_start(action_id, f"compute_{action}")
            payload = {"instance_uuid": uuid, "host": self.host}
            self.notify(f"{action}.start", payload)
            try:
                yield ActionRecord(self.db, action_id)
            except Exception as e:
                LOG.error("instance %s: %s failed: %s", uuid, action, e)
                # the reason first, for whoever reads only that; then where
                details = f"{type(e).__name__}: {e}\n{traceback.format_exc()}"
                self.db.event_finish(event_id, "Error", details)
                self.db.action_finish(action_id, "Error")
                if record_fault:
                    self.db.fault_create(uuid, f"{type(e).__name__}: {e}", details)
                self.notify(f"{action}.error", dict(payload, message=str(e)), error=True)
                raise
            self.db.event_finish(event_id, "Success")
            self.db.action_finish(action_id)
            self.notify(f"{action}.end", payload)


class ActionRecord:
    """The action of a running operation, for recording extra events."""

    def __init__(self, db, action_id):
        self.db, self.action_id = db, action_id

    def event(self, name, details=None, result="Success"):
        event_id = self.db.event_start(self.action_id, name)
        self.db.event_finish(event_id, result, details)
