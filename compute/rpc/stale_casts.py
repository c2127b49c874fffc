"""Casts that waited in the broker past their deadline: a build queued for
an agent that was down, or a pre-cache, run when it comes back only while
someone may still want them.  The client stamps each request with its
wall-clock send time (rpcapi); the endpoint, seen through StaleCastGuard,
drops a cast older than [DEFAULT] cast_deadline with a logged reason and
no effect.  A delete is never dropped: it is wanted whenever it arrives.
A request without a stamp (an older client) is taken as before."""
import logging
import time

from compute.rpc.contract import WITH_DEADLINE
from compute.rpc.endpoint_wrapper import EndpointWrapper

LOG = logging.getLogger(__name__)


def stale_cast_refusal(method, ctxt, now, deadline):
    """Why the cast must be dropped, or None (pure)."""
    if method not in WITH_DEADLINE or not deadline:
        return None
    sent = (ctxt or {}).get("sent_at")
    if isinstance(sent, bool) or not isinstance(sent, (int, float)):
        return None
    age = now - sent
    if age > deadline:
        return f"it was sent {age:.0f} s ago, past cast_deadline ({deadline} s)"
    return None


class StaleCastGuard(EndpointWrapper):
    def __init__(self, endpoint, deadline, notify):
        super().__init__(endpoint)
        self._deadline, self._notify = deadline, notify

    def _around(self, name, method):
        def guarded(ctxt, **payload):
            why = stale_cast_refusal(name, ctxt, time.time(), self._deadline)
            if why:
                uuid = payload.get("instance_uuid", "")
                LOG.warning("%s %s dropped, nothing done: %s", name, uuid, why)
                self._notify(f"{name}.dropped", {"instance_uuid": uuid, "reason": why})
                return None
            return method(ctxt, **payload)
        return guarded
