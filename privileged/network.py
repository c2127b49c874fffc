"""Privileged entry points for guest networking devices and DHCP
(privileged.net_admin: CAP_NET_ADMIN and what dnsmasq needs); the
firewall's is privileged.firewall.  network.linux_net and network.dhcp
call these for every change; reading (ip addr show, bridge fdb show,
/sys/class/net) needs no privilege and stays in the agent.  Each entry
point takes typed values, checks them (privileged.checks) against the
roots and limits the daemon was forked with, and builds its command
itself: devices only the agent's (its alias) or configured ones,
addresses only a bridge's own subnet or a floating IP of the configured
ranges, VXLAN only from tunnel_local_ip, dnsmasq only with the agent's
options on one of its bridges."""
import ipaddress
import os
import secrets
import signal

from network import dnsmasq_args, hoststate, names
from privileged import ROOTS, Refused, checks, firewall, net_admin
from privileged.process import execute

SYS_NET = "/sys/class/net"
OWNER = "compute-agent network "


def _alias(dev):
    try:
        with open(os.path.join(SYS_NET, dev, "ifalias")) as f:
            return f.read().strip()
    except OSError:
        return ""


def _owned(dev, uplinks=False, taps=False):
    return checks.owned_device(dev, _alias, ROOTS["uplinks"] if uplinks else frozenset(), taps)


def _exists(dev):
    return os.path.exists(os.path.join(SYS_NET, dev))


@net_admin.entrypoint
def create_link(name, network_id, kind, lower=None, vlan_id=None, vni=None, local_ip=None):
    """Make a bridge, VLAN or VXLAN device under a temporary name, mark it
    as network_id's (alias), then give it its name, in one `ip -batch`."""
    checks.network_id(network_id)
    if kind == "bridge":
        type_args = "bridge forward_delay 0 stp_state 0"
    elif kind == "vlan":
        type_args = f"vlan id {checks.vlan_id(vlan_id)}"
    elif kind == "vxlan":
        if local_ip is None or checks.ip_address(local_ip) != ROOTS["tunnel_ip"]:
            raise Refused(f"VXLAN local address {local_ip!r}: only tunnel_local_ip")
        type_args = f"vxlan id {checks.vni(vni)} dstport 4789 local {local_ip} nolearning"
    else:
        raise Refused(f"device kind {kind!r} refused")
    checks.new_device(name, kind, ROOTS["uplinks"], lower, vlan_id)
    if _exists(name):
        raise Refused(f"device {name} exists already")
    tmp = "canew" + secrets.token_hex(5)
    lower_arg = f"link {lower} " if kind == "vlan" else ""
    batch = (f"link add {lower_arg}name {tmp} type {type_args}\n"
             f'link set {tmp} alias "{OWNER}{network_id}"\n'
             f"link set {tmp} name {name}\n")
    try:
        execute("ip", "-batch", "-", process_input=batch)
    except Exception:
        if _exists(tmp):
            execute("ip", "link", "del", tmp)
        raise


@net_admin.entrypoint
def set_mtu(dev, mtu):
    execute("ip", "link", "set", _owned(dev), "mtu", str(checks.mtu(mtu)))


@net_admin.entrypoint
def set_up(dev):
    execute("ip", "link", "set", _owned(dev, uplinks=True, taps=True), "up")


@net_admin.entrypoint
def set_master(dev, bridge):
    """dev (an uplink or a device of ours) becomes a port of our bridge."""
    checks.new_device(bridge, "bridge", ())
    execute("ip", "link", "set", _owned(dev, uplinks=True), "master", _owned(bridge))


@net_admin.entrypoint
def release(dev):
    execute("ip", "link", "set", _owned(dev, uplinks=True), "nomaster")


@net_admin.entrypoint
def delete_link(dev):
    """Delete a device the agent made, or a guest's tap; never an uplink."""
    if _exists(dev):
        execute("ip", "link", "del", _owned(dev, taps=True))


@net_admin.entrypoint
def fdb(action, dev, peer):
    if action not in ("append", "del") or not checks.VXLAN.match(str(dev)):
        raise Refused(f"fdb {action!r} on {dev!r} refused")
    peer = checks.unicast(peer)
    execute("bridge", "fdb", action, "00:00:00:00:00:00", "dev", _owned(dev), "dst", peer)


@net_admin.entrypoint
def address(action, dev, cidr):
    """Add or delete an address on a bridge of ours (its host address on
    the network: a subnet that overlaps none the host holds elsewhere) or
    a floating IP (/32 of the configured floating_ranges) on the public
    interface; nothing else on any other device."""
    if action not in ("add", "del"):
        raise Refused(f"address action {action!r} refused")
    iface = ipaddress.ip_interface(checks.cidr(cidr))
    if dev is not None and dev == ROOTS["public_interface"]:
        checks.floating_address(iface, ROOTS["floating_ranges"])
    elif isinstance(dev, str) and checks.BRIDGE.match(dev):
        checks.bridge_address(iface, _owned(dev), firewall.limits().foreign_subnets)
    else:
        raise Refused(f"address on {dev!r}: only on the agent's bridges and the public "
                      "interface")
    execute("ip", "addr", action, str(iface), "dev", _owned(dev, uplinks=True))


@net_admin.entrypoint
def enable_ip_forward():
    with open("/proc/sys/net/ipv4/ip_forward", "w") as f:
        f.write("1\n")


def _dhcp_root():
    if not ROOTS["state_path"]:
        raise Refused("state_path is not configured")
    return os.path.join(ROOTS["state_path"], "dhcp")


@net_admin.entrypoint
def start_dnsmasq(network_id, network, lease_seconds):
    """Start the DHCP server of a network (network.hoststate.network_doc's
    form): the argv is network.dnsmasq_args's, built here, bound only
    to the network's own bridge (the agent's, carrying its alias for this
    network) at the host address that bridge holds, its files in
    state_path/dhcp/<network id>."""
    checks.network_id(network_id)
    if not isinstance(lease_seconds, int) or isinstance(lease_seconds, bool) \
            or not 120 <= lease_seconds <= 2 ** 31 - 1:
        raise Refused(f"lease time {lease_seconds!r} refused")
    addresses = firewall.host_addresses()
    try:
        net = hoststate.network_from_wire(network_id, network, firewall.limits(addresses))
    except ValueError as e:
        raise Refused(f"dnsmasq network refused: {e}") from None
    if net.host_address is None or ":" in net.host_address:
        raise Refused(f"network {net.id}: no IPv4 host address to serve DHCP from")
    if names.owner_of(_alias(net.bridge)) != net.id:
        raise Refused(f"bridge {net.bridge!r} is not this agent's for network {net.id}")
    if not any(dev == net.bridge and cidr.split("/")[0] == net.host_address
               for dev, cidr in addresses):
        raise Refused(f"{net.host_address} is not an address of {net.bridge}")
    conf_dir = os.path.join(_dhcp_root(), checks.network_id(net.id))
    execute(*dnsmasq_args.dnsmasq_argv(net, conf_dir, lease_seconds))


@net_admin.entrypoint
def signal_dnsmasq(network_id, signame):
    """SIGHUP (re-read the hosts file) or SIGTERM the dnsmasq of a network:
    the pid comes from its pid file, and the process must be the dnsmasq
    started with that pid file."""
    sig = {"HUP": signal.SIGHUP, "TERM": signal.SIGTERM}.get(signame)
    if sig is None:
        raise Refused(f"signal {signame!r} refused")
    pid_file = os.path.join(_dhcp_root(), checks.network_id(network_id), "pid")
    try:
        with open(os.open(pid_file, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)) as f:
            pid = int(f.read(32).strip())
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read().split(b"\0")
    except (OSError, ValueError):
        return False
    if cmdline[:1] != [b"dnsmasq"] or f"--pid-file={pid_file}".encode() not in cmdline:
        return False
    os.kill(pid, sig)
    return True
