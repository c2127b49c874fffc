"""Privileged entry points for guest networking (privileged.net_admin:
CAP_NET_ADMIN and what dnsmasq needs).  network.linux_net, network.iptables
and network.dhcp call these for every change; reading (ip addr show,
bridge fdb show, /sys/class/net) needs no privilege and stays in the
agent.  Each entry point checks its arguments (privileged.checks) against
the roots the daemon was forked with, and builds its command itself."""
import os
import secrets
import signal

from privileged import ROOTS, Refused, checks, net_admin
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
        type_args = (f"vxlan id {checks.vni(vni)} dstport 4789 local "
                     f"{checks.ip_address(local_ip)} nolearning")
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
    execute("bridge", "fdb", action, "00:00:00:00:00:00", "dev", _owned(dev), "dst",
            checks.ip_address(peer))


@net_admin.entrypoint
def address(action, dev, cidr):
    """Add or delete an address on a bridge of ours (its gateway address)
    or an uplink (a floating IP on the public interface)."""
    if action not in ("add", "del"):
        raise Refused(f"address action {action!r} refused")
    execute("ip", "addr", action, checks.cidr(cidr), "dev", _owned(dev, uplinks=True))


@net_admin.entrypoint
def enable_ip_forward():
    with open("/proc/sys/net/ipv4/ip_forward", "w") as f:
        f.write("1\n")


SAVE = {4: "iptables-save", 6: "ip6tables-save"}
RESTORE = {4: "iptables-restore", 6: "ip6tables-restore"}


@net_admin.entrypoint
def iptables_save(version):
    if version not in SAVE:
        raise Refused(f"IP version {version!r} refused")
    return execute(SAVE[version])


@net_admin.entrypoint
def iptables_restore(version, text):
    """Apply an iptables-restore --noflush input that touches only the
    agent's chains (privileged.checks.iptables_restore_text)."""
    if version not in RESTORE:
        raise Refused(f"IP version {version!r} refused")
    execute(RESTORE[version], "--noflush", process_input=checks.iptables_restore_text(text))


@net_admin.entrypoint
def nft_apply(text):
    execute("nft", "-f", "-", process_input=checks.nft_text(text))


def _dhcp_root():
    return os.path.join(ROOTS["state_path"], "dhcp")


@net_admin.entrypoint
def start_dnsmasq(argv):
    execute(*checks.dnsmasq_argv(argv, _dhcp_root()))


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
        with open(pid_file) as f:
            pid = int(f.read().strip())
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read().split(b"\0")
    except (OSError, ValueError):
        return False
    if cmdline[:1] != [b"dnsmasq"] or f"--pid-file={pid_file}".encode() not in cmdline:
        return False
    os.kill(pid, sig)
    return True
