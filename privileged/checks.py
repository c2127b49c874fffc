"""Argument checks of the privileged entry points, as pure functions: each
returns the value it accepts or raises privileged.Refused.  They allow
only what the agent itself would ask for: devices named the agent's way,
addresses of the agent's networks and floating ranges, and nothing that
starts with '-' where a command would read it as an option.  Rules are
not checked here: the firewall's entry point renders them itself from a
decoded state (network.hoststate)."""
import ipaddress
import re

from privileged import Refused

NET_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}\Z")
BRIDGE = re.compile(r"brca[A-Za-z0-9_-]{1,11}\Z")
TAP = re.compile(r"tap[0-9a-f]{12}\Z")
NEW = re.compile(r"canew[0-9a-f]{10}\Z")
VXLAN = re.compile(r"vxlan-([0-9]{1,8})\Z")
IFNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,14}\Z")


def _refuse(what, value):
    raise Refused(f"{what}: {value!r} refused")


def network_id(value):
    if not isinstance(value, str) or not NET_ID.match(value):
        _refuse("network id", value)
    return value


def new_device(name, kind, uplinks, lower=None, vlan_id=None):
    """The name a device of kind may be created under."""
    if not isinstance(name, str):
        _refuse("device name", name)
    if kind == "bridge" and BRIDGE.match(name):
        return name
    if kind == "vxlan" and VXLAN.match(name):
        return name
    if kind == "vlan" and lower in uplinks and IFNAME.match(name) \
            and name.endswith(f".{vlan_id}"):
        return name
    _refuse(f"{kind} device name", name)


def vlan_id(value):
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 4094:
        _refuse("VLAN id", value)
    return value


def vni(value):
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value < 2 ** 24:
        _refuse("VNI", value)
    return value


def ip_address(value):
    try:
        return str(ipaddress.ip_address(value))
    except (TypeError, ValueError):
        _refuse("IP address", value)


def cidr(value):
    try:
        return str(ipaddress.ip_interface(value))
    except (TypeError, ValueError):
        _refuse("address", value)


def mtu(value):
    if not isinstance(value, int) or isinstance(value, bool) or not 68 <= value <= 65535:
        _refuse("MTU", value)
    return value


def owned_device(name, alias_of, uplinks=frozenset(), taps=False):
    """A device the agent made (its alias says so; see network.names) or,
    when allowed, one of the configured uplinks or a guest's tap.
    alias_of: name -> the device's alias ('' when there is none)."""
    if not isinstance(name, str) or not IFNAME.match(name):
        _refuse("device", name)
    if name in uplinks or (taps and TAP.match(name)) or NEW.match(name):
        return name
    if alias_of(name).startswith("compute-agent network "):
        return name
    _refuse("device (not one this agent made)", name)


def unicast(value):
    """A unicast host address (a VXLAN flooding peer)."""
    ip = ipaddress.ip_address(ip_address(value))
    if ip.is_loopback or ip.is_multicast or ip.is_link_local or ip.is_unspecified:
        _refuse("unicast address", value)
    return str(ip)


def floating_address(iface, ranges):
    """A floating IP as it goes on the public interface: a /32 inside one
    of the configured floating ranges, not their network or broadcast."""
    nets = [ipaddress.ip_network(r, strict=False) for r in ranges]
    ip = iface.ip
    if iface.version != 4 or iface.network.prefixlen != 32 \
            or not any(ip in n for n in nets) \
            or any(n.prefixlen < 31 and ip in (n.network_address, n.broadcast_address)
                   for n in nets):
        _refuse("floating address (not a /32 of floating_ranges)", str(iface))
    return iface


def bridge_address(iface, dev, foreign_subnets):
    """A network's host address on its bridge: a unicast address whose
    subnet overlaps no subnet the host holds on another device (the
    management, storage or public networks)."""
    ip, net = iface.ip, iface.network
    if ip.is_loopback or ip.is_multicast or ip.is_link_local or ip.is_unspecified \
            or net.prefixlen == 0:
        _refuse(f"address for {dev}", str(iface))
    for other in foreign_subnets:
        if other.version == net.version and other.overlaps(net):
            _refuse(f"address for {dev} (overlaps {other}, a network of this host)",
                    str(iface))
    return iface
