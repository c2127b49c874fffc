"""Lifecycle events as the driver passes them on: a STOPPED event is held
back a few seconds (lifecycle_event_delay) and dropped if another event
for the guest comes first, so a reboot (STOPPED quickly followed by
STARTED) is never reported as a guest that went off."""
import threading

import libvirt


class HeldBackEvents:
    """Called with (uuid, event, detail) from the libvirt event thread;
    calls emit(uuid) now, or after delay() seconds for STOPPED (read at
    each event, so a changed setting applies at once)."""

    def __init__(self, delay, emit):
        self.delay, self.emit = delay, emit
        self.timers = {}
        self._lock = threading.Lock()

    def __call__(self, uuid, event, detail):
        with self._lock:
            pending = self.timers.pop(uuid, None)
            if pending is not None:
                pending.cancel()
            delay = self.delay()
            if event == libvirt.VIR_DOMAIN_EVENT_STOPPED and delay > 0:
                timer = threading.Timer(delay, self._emit_held, (uuid,))
                timer.daemon = True
                self.timers[uuid] = timer
                timer.start()
                return
        self.emit(uuid)

    def _emit_held(self, uuid):
        with self._lock:
            self.timers.pop(uuid, None)
        self.emit(uuid)
