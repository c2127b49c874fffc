"""Linux network devices of the host: bridges, VLAN sub-interfaces, VXLAN
devices, addresses and sysctls.  What only reads (sysfs, `ip addr show`,
`bridge fdb show`) runs in the agent, through privileged.process.execute;
every change goes through an entry point of privileged.network, which
checks its arguments again and runs the command.  Each function is
idempotent: it checks /sys/class/net first, so plugging again after a
crash or a restart finishes what was half done."""
import logging
import os

from network import names
from privileged import network as priv
from privileged.process import execute

LOG = logging.getLogger(__name__)
SYS_NET = "/sys/class/net"


def exists(dev):
    return os.path.exists(os.path.join(SYS_NET, dev))


def bridge_ports(bridge):
    try:
        return sorted(os.listdir(os.path.join(SYS_NET, bridge, "brif")))
    except FileNotFoundError:
        return []


def master_of(dev):
    link = os.path.join(SYS_NET, dev, "master")
    return os.path.basename(os.readlink(link)) if os.path.islink(link) else None


class DeviceConflict(Exception):
    """A device the agent was to use exists and is not the agent's for
    this network (network.names.owner_alias)."""


def alias(dev):
    try:
        with open(os.path.join(SYS_NET, dev, "ifalias")) as f:
            return f.read().strip()
    except OSError:
        return ""


def devices():
    """{name: alias} of every network device of the host."""
    return {dev: alias(dev) for dev in os.listdir(SYS_NET)}


def host_addresses():
    """(device, "address/prefix") of every address on the host but the
    kernel's own link-local ones."""
    out = execute("ip", "-o", "addr", "show")
    found = []
    for line in out.splitlines():
        words = line.split()
        if words[2] in ("inet", "inet6") and "scope link" not in line:
            found.append((words[1].split("@")[0], words[3]))
    return tuple(found)


def set_up(dev):
    """Bring dev up unless it is (IFF_UP in its flags)."""
    try:
        with open(os.path.join(SYS_NET, dev, "flags")) as f:
            if int(f.read(), 16) & 0x1:
                return
    except (OSError, ValueError):
        pass
    priv.set_up(dev)


def _create(name, network_id, kind, **kind_args):
    """Make a device marked as network_id's (privileged.network.create_link:
    a temporary name, the alias, then the real name, in one `ip -batch`, so
    a device with the real name is always marked, even if the agent is
    killed half-way; what is left under a temporary name goes at the next
    start).  An existing device must carry that mark already."""
    if exists(name):
        if names.owner_of(alias(name)) != network_id:
            raise DeviceConflict(f"device {name} exists and is not this agent's for "
                                 f"network {network_id} (alias {alias(name)!r})")
        return False
    priv.create_link(name, network_id, kind, **kind_args)
    return True


def remove_unfinished():
    """Devices a killed agent left half-made (still under a temporary
    name); their names are the agent's alone."""
    for dev in os.listdir(SYS_NET):
        if dev.startswith(names.NEW_PREFIX):
            delete_link(dev)


def ensure_bridge(name, network_id, mtu=None):
    _create(name, network_id, "bridge")
    if mtu:
        priv.set_mtu(name, mtu)
    set_up(name)


def ensure_vlan(interface, vlan_id, network_id, mtu=None):
    dev = names.vlan(interface, vlan_id)
    _create(dev, network_id, "vlan", lower=interface, vlan_id=vlan_id)
    if mtu:
        priv.set_mtu(dev, mtu)
    set_up(dev)
    return dev


def ensure_vxlan(vni, local_ip, peers, network_id, mtu=None):
    """A VXLAN device with static flooding to peers (no multicast needed),
    sourced from the host's configured tunnel address."""
    dev = names.vxlan(vni)
    _create(dev, network_id, "vxlan", vni=vni, local_ip=local_ip)
    known = fdb_flood_peers(dev)
    for peer in peers:
        if peer not in known:
            priv.fdb("append", dev, peer)
    for peer in known - set(peers):
        priv.fdb("del", dev, peer)
    if mtu:
        priv.set_mtu(dev, mtu)
    set_up(dev)
    return dev


def fdb_flood_peers(dev):
    out = execute("bridge", "fdb", "show", "dev", dev)
    peers = set()
    for line in out.splitlines():
        words = line.split()
        if words[:1] == ["00:00:00:00:00:00"] and "dst" in words:
            peers.add(words[words.index("dst") + 1])
    return peers


def set_master(dev, bridge):
    """Make dev a port of bridge; a device that is a port of another
    bridge stays where it is (DeviceConflict)."""
    master = master_of(dev)
    if master not in (None, bridge):
        raise DeviceConflict(f"{dev} is a port of {master}; it cannot also be the uplink "
                             f"of {bridge}")
    if master != bridge:
        priv.set_master(dev, bridge)
    set_up(dev)


def delete_link(dev):
    if exists(dev):
        priv.delete_link(dev)


def delete_owned(dev, network_id):
    """Delete a device the agent made for network_id; any other is left."""
    if exists(dev) and names.owner_of(alias(dev)) == network_id:
        priv.delete_link(dev)


def release_from_bridge(dev, bridge):
    if exists(dev) and master_of(dev) == bridge:
        priv.release(dev)


def addresses(dev):
    """The CIDR addresses on dev, as `ip -o addr` prints them."""
    if not exists(dev):
        return set()
    out = execute("ip", "-o", "addr", "show", "dev", dev)
    return {line.split()[3] for line in out.splitlines()
            if line.split()[2] in ("inet", "inet6") and "scope link" not in line}


def ensure_address(dev, cidr):
    if cidr not in addresses(dev):
        priv.address("add", dev, cidr)


def remove_address(dev, cidr):
    if cidr in addresses(dev):
        priv.address("del", dev, cidr)


def enable_ip_forward():
    """Routing for floating IPs; written only when it is off."""
    path = "/proc/sys/net/ipv4/ip_forward"
    with open(path) as f:
        if f.read().strip() == "1":
            return
    priv.enable_ip_forward()
