"""Linux network devices of the host: bridges, VLAN sub-interfaces, VXLAN
devices, addresses and sysctls.  Every command goes through
processutils.execute (argv lists, logged, ProcessExecutionError with stderr
on failure).  Each function is idempotent: it checks /sys/class/net first, so
plugging again after a crash or a restart finishes what was half done."""
import logging
import os

from oslo_concurrency import processutils

LOG = logging.getLogger(__name__)
SYS_NET = "/sys/class/net"


def execute(*argv, process_input=None):
    return processutils.execute(*argv, process_input=process_input)[0]


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


def vlan_device_name(physical_interface, vlan_id):
    """The VLAN sub-interface's name, cut to IFNAMSIZ (15)."""
    return f"{physical_interface[:15 - len(str(vlan_id)) - 1]}.{vlan_id}"


def vxlan_device_name(vni):
    return f"vxlan-{vni}"


def ensure_bridge(name, mtu=None):
    if not exists(name):
        execute("ip", "link", "add", name, "type", "bridge", "forward_delay", "0",
                "stp_state", "0")
    if mtu:
        execute("ip", "link", "set", name, "mtu", str(mtu))
    execute("ip", "link", "set", name, "up")


def ensure_vlan(physical_interface, vlan_id, mtu=None):
    dev = vlan_device_name(physical_interface, vlan_id)
    if not exists(dev):
        execute("ip", "link", "add", "link", physical_interface, "name", dev, "type", "vlan",
                "id", str(vlan_id))
    if mtu:
        execute("ip", "link", "set", dev, "mtu", str(mtu))
    execute("ip", "link", "set", dev, "up")
    return dev


def ensure_vxlan(vni, local_ip, peers, physical_interface=None, mtu=None):
    """A VXLAN device with static flooding to peers (no multicast needed)."""
    dev = vxlan_device_name(vni)
    if not exists(dev):
        argv = ["ip", "link", "add", dev, "type", "vxlan", "id", str(vni), "dstport", "4789",
                "local", local_ip, "nolearning"]
        if physical_interface:
            argv += ["dev", physical_interface]
        execute(*argv)
    known = fdb_flood_peers(dev)
    for peer in peers:
        if peer not in known:
            execute("bridge", "fdb", "append", "00:00:00:00:00:00", "dev", dev, "dst", peer)
    for peer in known - set(peers):
        execute("bridge", "fdb", "del", "00:00:00:00:00:00", "dev", dev, "dst", peer)
    if mtu:
        execute("ip", "link", "set", dev, "mtu", str(mtu))
    execute("ip", "link", "set", dev, "up")
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
    if master_of(dev) != bridge:
        execute("ip", "link", "set", dev, "master", bridge)
    execute("ip", "link", "set", dev, "up")


def delete_link(dev):
    if exists(dev):
        execute("ip", "link", "del", dev)


def release_from_bridge(dev):
    if exists(dev) and master_of(dev):
        execute("ip", "link", "set", dev, "nomaster")


def addresses(dev):
    """The CIDR addresses on dev, as `ip -o addr` prints them."""
    if not exists(dev):
        return set()
    out = execute("ip", "-o", "addr", "show", "dev", dev)
    return {line.split()[3] for line in out.splitlines()
            if line.split()[2] in ("inet", "inet6") and "scope link" not in line}


def ensure_address(dev, cidr):
    if cidr not in addresses(dev):
        execute("ip", "addr", "add", cidr, "dev", dev)


def remove_address(dev, cidr):
    if cidr in addresses(dev):
        execute("ip", "addr", "del", cidr, "dev", dev)


def enable_ip_forward():
    """Routing for floating IPs; written only when it is off."""
    path = "/proc/sys/net/ipv4/ip_forward"
    with open(path) as f:
        if f.read().strip() == "1":
            return
    execute("sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
