"""Names of the host objects the agent makes for guest networking, and how
it marks them as its own.

Names come from a hash of the full id, never from a prefix of it: two ids
that share their first characters (UUIDs from one generator, say) get
different taps, chains and bridges.  Devices the agent creates carry an
interface alias naming the network they serve (`ip link ... alias`): a
device without that alias is not the agent's, and no payload may make the
agent use it."""
import functools
import hashlib

BRIDGE_PREFIX = "brca"          # bridges the agent names itself: brca + 11 hex
TAP_PREFIX = "tap"
NEW_PREFIX = "canew"            # a device being created, before its alias is set
OWNER = "compute-agent network "
IFNAMSIZ = 15


@functools.lru_cache(maxsize=65536)
def digest(value, length):
    return hashlib.sha256(value.encode()).hexdigest()[:length]


def bridge(network_id):
    """The bridge of a network whose payload names none."""
    return BRIDGE_PREFIX + digest(network_id, IFNAMSIZ - len(BRIDGE_PREFIX))


def tap(port_id):
    """The guest's tap device of a port (libvirt creates it)."""
    return TAP_PREFIX + digest(port_id, IFNAMSIZ - len(TAP_PREFIX))


def chain_id(port_id):
    """What names a port's iptables chains and nftables chain."""
    return digest(port_id, 20)


def vxlan(vni):
    return f"vxlan-{vni}"


def vlan(interface, vlan_id):
    """A VLAN sub-interface, cut to IFNAMSIZ."""
    return f"{interface[:IFNAMSIZ - len(str(vlan_id)) - 1]}.{vlan_id}"


def owner_alias(network_id):
    """The interface alias that marks a device as this agent's, for one
    network."""
    return OWNER + network_id


def owner_of(alias):
    """The network id an alias names, or None if the device is not ours."""
    return alias[len(OWNER):] if alias and alias.startswith(OWNER) else None
