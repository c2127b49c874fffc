"""What the agent does while its state database cannot be reached.

The guests keep running: nothing here touches them.  An RPC request that
needs the database fails with DatabaseUnavailable (a call's caller sees
it at once; a refused cast is logged and notified) instead of a driver
traceback, and the first request after the database returns works again:
the pool replaces dropped connections when it lends them (pre-ping).
"""
import logging
import threading
import time

from compute.core import exception
from compute.db.api import unreachable
from compute.rpc.endpoint_wrapper import EndpointWrapper

LOG = logging.getLogger(__name__)


class DatabaseWatch:
    """Whether the database answered last time, so an outage and its end
    are logged once each rather than on every failed statement."""

    def __init__(self):
        self._lock = threading.Lock()
        self.down_since = None

    def failed(self, error, what):
        with self._lock:
            first = self.down_since is None
            if first:
                self.down_since = time.monotonic()
        if first:
            LOG.warning("state database unreachable (%s): %s; guests keep running, "
                        "requests are refused until it answers", what,
                        str(error).splitlines()[0])

    def answered(self):
        if self.down_since is None:      # the usual case: no lock on every request
            return
        with self._lock:
            was, self.down_since = self.down_since, None
        if was is not None:
            LOG.info("state database reachable again")


class OutageGuard(EndpointWrapper):
    """The RPC endpoint with database outages turned into
    DatabaseUnavailable."""

    def __init__(self, endpoint, watch, notify):
        super().__init__(endpoint)
        self._watch, self._notify = watch, notify

    def _around(self, name, method):
        def guarded(*args, **kwargs):
            try:
                result = method(*args, **kwargs)
            except Exception as e:
                if not unreachable(e):
                    raise
                self._watch.failed(e, name)
                reason = (f"{name} refused: the state database is unreachable; "
                          f"nothing was changed, ask again when it is back")
                self._notify(f"{name}.refused", {"reason": reason})
                raise exception.DatabaseUnavailable(reason) from None
            self._watch.answered()
            return result
        return guarded
