"""The agent's side of systemd's service protocol (sd_notify(3)): READY=1
once it serves RPC, STOPPING=1 when it stops, STATUS= lines, and the
watchdog: WATCHDOG=1 every half WatchdogSec= from a thread that first
checks the agent's own health.  Without NOTIFY_SOCKET (not under
systemd) every call does nothing.

The health check sends WATCHDOG=1 only when the RPC server is running
and the check of libvirt returns: a hung agent (a deadlocked libvirt
connection, a dead RPC server) stops feeding the watchdog and systemd
restarts it.  libvirtd merely being down is reported in STATUS= and does
not stop the feeding: the agent reconnects by itself, and a restart
would not bring libvirtd back."""
import logging
import os
import socket
import threading

LOG = logging.getLogger(__name__)


def notify(*fields):
    """Send "KEY=value" fields to systemd; False when not under systemd."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
            s.connect(address)
            s.sendall("\n".join(fields).encode())
        return True
    except OSError as e:
        LOG.warning("cannot notify systemd at %s: %s", address, e)
        return False


def watchdog_interval(environ=None, pid=None):
    """Seconds between two WATCHDOG=1 (half of WatchdogSec=), or None when
    systemd expects none from this process."""
    environ = os.environ if environ is None else environ
    usec = environ.get("WATCHDOG_USEC")
    owner = environ.get("WATCHDOG_PID")
    if not usec or (owner and int(owner) != (pid or os.getpid())):
        return None
    return int(usec) / 2e6


def health(rpc_running, libvirt_alive):
    """(feed the watchdog?, STATUS text) of one check: a pure decision."""
    if not rpc_running:
        return False, "RPC server not running"
    if not libvirt_alive:
        return True, "serving RPC; libvirt unreachable, reconnecting"
    return True, "serving RPC; libvirt connected"


class Watchdog:
    """Feeds systemd's watchdog while checks() says the agent is healthy.
    checks: () -> (rpc_running, libvirt_alive)."""

    def __init__(self, checks, interval):
        self.checks, self.interval = checks, interval
        self._stop = threading.Event()
        self._status = None
        self.thread = threading.Thread(target=self._run, name="watchdog", daemon=True)

    def start(self):
        self.thread.start()

    def stop(self):
        self._stop.set()

    def _run(self):
        while not self._stop.wait(self.interval):
            try:
                feed, status = health(*self.checks())
            except Exception as e:       # noqa: BLE001 - a failing check is ill health
                feed, status = False, f"health check failed: {e}"
            fields = ["WATCHDOG=1"] if feed else []
            if status != self._status:
                self._status = status
                fields.append(f"STATUS={status}")
                (LOG.info if feed else LOG.error)("health: %s", status)
            if fields:
                notify(*fields)
