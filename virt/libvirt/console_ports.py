"""Where a guest's consoles listen, as pure functions over domain XML:
the TCP port its serial console takes (picked from a range, away from
every other guest's), and the address and port its serial console or VNC
server is reached at.  The only I/O is can_bind, passed in by the driver."""
import socket
import threading

from virt import errors
from virt.libvirt.xml.domain import Domain


def port_range(text):
    """(low, high) of "LOW:HIGH" ([libvirt] serial_port_range)."""
    low, high = (int(p) for p in text.split(":"))
    if not 1 <= low <= high <= 65535:
        raise ValueError(f"serial_port_range {text!r} is not LOW:HIGH within 1-65535")
    return low, high


def serial_target(xml):
    """(host, port) of the domain's TCP serial console server, or None."""
    for serial in Domain.parse(xml).devices.serials:
        if serial.type == "tcp" and serial.source_mode == "bind" and serial.source_service:
            return serial.source_host, int(serial.source_service)
    return None


def vnc_target(live_xml):
    """(listen address, port, password) of a running domain's VNC server
    (the password None unless the XML was asked for with its secrets, or
    it has none), or None (no VNC, or libvirt has not given it a port yet)."""
    for graphics in Domain.parse(live_xml).devices.graphics:
        if graphics.type == "vnc" and graphics.port and graphics.port > 0:
            return graphics.listen, graphics.port, graphics.passwd
    return None


def ports_in_use(xmls):
    """Every serial console port the domains whose XML is given take."""
    return {t[1] for t in map(serial_target, xmls) if t is not None}


def pick_port(low, high, taken, can_bind):
    """The lowest port in [low, high] not taken that can_bind(port) accepts."""
    for port in range(low, high + 1):
        if port not in taken and can_bind(port):
            return port
    raise errors.VirtError(f"no free serial console port in {low}:{high} "
                           f"({len(taken)} taken by guests)")


def can_bind(address, port):
    """Whether nothing else listens on address:port now."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((address, port))
        except OSError:
            return False
    return True


class SerialPorts:
    """Hands out this host's serial console ports.  A guest keeps its port
    across redefinitions; a new guest gets the lowest port no other guest
    (nor an incoming live migration) holds.  Callers hold `lock` from
    listen_for() until the definition is saved, so two guests never get the
    same port.  list_xmls() returns {uuid: domain XML} of the host's guests."""

    def __init__(self, enabled, address, range_text, list_xmls):
        self.enabled, self.address, self.list_xmls = enabled, address, list_xmls
        self.low, self.high = port_range(range_text)
        self.lock = threading.RLock()
        self._incoming = {}            # uuid -> port held for a live migration

    def listen_for(self, uuid):
        """(address, port) for uuid's serial console; None when disabled."""
        if not self.enabled:
            return None
        with self.lock:
            xmls = self.list_xmls()
            own = serial_target(xmls[uuid]) if uuid in xmls else None
            if own is not None and own[0] == self.address:
                return own
            if uuid in self._incoming:
                return self.address, self._incoming[uuid]
            taken = ports_in_use(x for u, x in xmls.items() if u != uuid)
            taken |= set(self._incoming.values())
            return self.address, pick_port(self.low, self.high, taken,
                                           lambda p: can_bind(self.address, p))

    def hold_for_incoming(self, uuid):
        """A port for a guest about to arrive by live migration, held until
        release(uuid); None when disabled."""
        with self.lock:
            listen = self.listen_for(uuid)
            if listen is not None:
                self._incoming[uuid] = listen[1]
            return listen

    def release(self, uuid):
        with self.lock:
            self._incoming.pop(uuid, None)
