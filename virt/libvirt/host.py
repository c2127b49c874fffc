"""The one libvirt connection of the agent.

Owns: opening (and re-opening after libvirtd restarts) the connection, the
native thread that runs libvirt's default event loop, and delivery of guest
lifecycle events to a listener.  Events are handed from the event-loop
thread to a dispatcher thread through a queue, so a slow listener never
stalls libvirt's keepalives.
"""
import logging
import queue
import threading
import time

import libvirt
from lxml import etree

from virt import driver, errors
from virt.libvirt import confine
from virt.libvirt.guest import Guest, translate

LOG = logging.getLogger(__name__)
_EVENT_LOOP_LOCK = threading.Lock()
_EVENT_LOOP_STARTED = False


def _start_event_loop():
    """libvirt's default event implementation, run by one daemon thread per
    process; it must be registered before the first connection opens."""
    global _EVENT_LOOP_STARTED
    with _EVENT_LOOP_LOCK:
        if _EVENT_LOOP_STARTED:
            return
        libvirt.virEventRegisterDefaultImpl()

        def run():
            while True:
                libvirt.virEventRunDefaultImpl()

        threading.Thread(target=run, name="libvirt-event-loop", daemon=True).start()
        _EVENT_LOOP_STARTED = True


class Host:
    def __init__(self, uri, allowed=None):
        """allowed: the confine.Allowed every definition, attached device
        and migration destination XML is checked against (None: no check,
        for tools that only read)."""
        self.uri, self.allowed = uri, allowed
        self._conn = None
        self._lock = threading.Lock()
        self._listener = None
        self._events = queue.Queue()
        self._changed = threading.Condition()
        self._generation = 0      # bumped after every delivered event

    def start(self, lifecycle_listener=None):
        """Start the event loop, open the connection, deliver lifecycle
        events as listener(uuid, event, detail) from a dispatcher thread."""
        self._listener = lifecycle_listener
        _start_event_loop()
        threading.Thread(target=self._dispatch, name="libvirt-events", daemon=True).start()
        self.get_connection()

    def _dispatch(self):
        while True:
            uuid, event, detail = self._events.get()
            try:
                if self._listener:
                    self._listener(uuid, event, detail)
            except Exception:
                LOG.exception("lifecycle listener failed for %s", uuid)
            with self._changed:
                self._generation += 1
                self._changed.notify_all()

    def wait_events_quiet(self, quiet, timeout):
        """Wait until every lifecycle event so far has been handled and none
        came for `quiet` seconds; True if so within timeout."""
        deadline, last = time.monotonic() + timeout, None
        while time.monotonic() < deadline:
            with self._changed:
                generation = self._generation
            if self._events.empty() and generation == last:
                return True
            last = generation
            time.sleep(quiet)
        return False

    def wait_for_power_state(self, uuid, wanted, timeout):
        """Wait (on lifecycle events, re-checking at least every second)
        until the guest's power state is in wanted; a guest that is gone
        counts as NOSTATE.  True if reached within timeout."""
        deadline = time.monotonic() + timeout
        while True:
            with self._changed:
                generation = self._generation
            try:
                state = self.lookup(uuid).power_state()
            except errors.InstanceNotFound:
                state = driver.NOSTATE
            if state in wanted:
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            with self._changed:
                if self._generation == generation:
                    self._changed.wait(min(remaining, 1.0))

    def _on_lifecycle(self, conn, dom, event, detail, opaque):
        self._events.put((dom.UUIDString(), event, detail))

    def _on_close(self, conn, reason, opaque):
        LOG.warning("libvirt connection %s closed (reason %s); will reconnect", self.uri, reason)
        with self._lock:
            if self._conn is conn:
                self._conn = None

    def get_connection(self):
        with self._lock:
            if self._conn is not None:
                return self._conn
            try:
                conn = libvirt.open(self.uri)
            except libvirt.libvirtError as e:
                raise errors.HypervisorUnavailable(f"cannot connect to {self.uri}: "
                                                   f"{e.get_error_message()}")
            try:
                conn.registerCloseCallback(self._on_close, None)
            except libvirt.libvirtError:
                LOG.debug("driver of %s has no close callback", self.uri)
            conn.domainEventRegisterAny(None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE,
                                        self._on_lifecycle, None)
            LOG.info("connected to %s", self.uri)
            self._conn = conn
            return conn

    def alive(self):
        """Whether libvirtd answers (connecting again if it went away)."""
        try:
            return bool(self._call(lambda c: c.isAlive()))
        except errors.VirtError:
            return False

    def _call(self, fn):
        """Run fn(conn), reconnecting once if libvirtd went away."""
        try:
            return fn(self.get_connection())
        except libvirt.libvirtError as e:
            if e.get_error_code() not in (libvirt.VIR_ERR_SYSTEM_ERROR,
                                          libvirt.VIR_ERR_INTERNAL_ERROR,
                                          libvirt.VIR_ERR_NO_CONNECT,
                                          libvirt.VIR_ERR_INVALID_CONN):
                raise translate(e)
            with self._lock:
                self._conn = None
        try:
            return fn(self.get_connection())
        except libvirt.libvirtError as e:
            raise translate(e)

    def lookup(self, uuid):
        return self._guest(self._call(lambda c: c.lookupByUUIDString(uuid)))

    def _guest(self, dom):
        return Guest(dom, self.allowed)

    def define(self, xml):
        if self.allowed is not None:
            confine.check_domain(xml, self.allowed)
        return self._guest(self._call(lambda c: c.defineXML(xml)))

    def define_secret(self, xml, value):
        """A libvirt secret from xml, holding value (bytes)."""
        secret = self._call(lambda c: c.secretDefineXML(xml, 0))
        self._call(lambda c: secret.setValue(value, 0))

    def undefine_secret(self, uuid):
        """Remove the secret of that uuid; none is fine."""
        try:
            secret = self._call(lambda c: c.secretLookupByUUIDString(uuid))
        except errors.VirtError:
            return
        self._call(lambda c: secret.undefine())

    def list_guests(self):
        return [self._guest(d) for d in self._call(lambda c: c.listAllDomains(0))]

    def node_info(self):
        """(memory_mb, cpus) of the host."""
        info = self._call(lambda c: c.getInfo())
        return info[1], info[2]

    def free_memory_mb(self):
        return self._call(lambda c: c.getFreeMemory()) // (1024 * 1024)

    def cpu_xml(self):
        """This host's CPU, as libvirt's capabilities describe it."""
        caps = etree.fromstring(self._call(lambda c: c.getCapabilities()).encode())
        return etree.tostring(caps.find("host/cpu"), encoding="unicode")

    def compare_cpu(self, xml, virt_type):
        """Raise CPUIncompatible (with libvirt's reason) unless this host's
        hypervisor can provide the CPU described by xml."""
        flags = libvirt.VIR_CONNECT_COMPARE_CPU_FAIL_INCOMPATIBLE
        try:
            self.get_connection().compareHypervisorCPU(None, None, None, virt_type, xml, flags)
        except libvirt.libvirtError as e:
            if e.get_error_code() == libvirt.VIR_ERR_CPU_INCOMPATIBLE:
                raise errors.CPUIncompatible(e.get_error_message()) from None
            raise translate(e) from None

    def hostname(self):
        return self._call(lambda c: c.getHostname())

    def version(self):
        return self._call(lambda c: c.getVersion())

    def hypervisor_type(self):
        return self._call(lambda c: c.getType())
