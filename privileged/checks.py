"""Argument checks of the privileged entry points, as pure functions: each
returns the value it accepts or raises privileged.Refused.  They allow
only what the agent itself would ask for: devices named the agent's way,
paths under the agent's roots, rule sets that touch only the agent's
chains and table, and nothing that starts with '-' where a command would
read it as an option."""
import ipaddress
import os
import re

from privileged import Refused

NET_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}\Z")
BRIDGE = re.compile(r"brca[A-Za-z0-9_-]{1,11}\Z")
TAP = re.compile(r"tap[0-9a-f]{12}\Z")
NEW = re.compile(r"canew[0-9a-f]{10}\Z")
VXLAN = re.compile(r"vxlan-([0-9]{1,8})\Z")
IFNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,14}\Z")
CHAIN = re.compile(r"ca-[A-Za-z0-9_-]{1,26}\Z")
BUILTIN_JUMPS = {"filter": {"FORWARD", "INPUT", "OUTPUT"},
                 "nat": {"PREROUTING", "OUTPUT", "POSTROUTING"}}
L2_TABLE = "bridge compute_agent"
HOOK_LINE = "type filter hook prerouting priority -200; policy accept;"


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


def path_under(path, root, names=None):
    """path (resolved, no symlink out) when it lies under root; names: the
    base names allowed."""
    if not isinstance(path, str) or not root or "\0" in path:
        _refuse("path", path)
    real, top = os.path.realpath(path), os.path.realpath(root)
    if os.path.commonpath([real, top]) != top or real == top:
        _refuse(f"path outside {root}", path)
    if names is not None and os.path.basename(real) not in names:
        _refuse("file name", path)
    return real


def iptables_restore_text(text):
    """An iptables-restore --noflush input of network.firewall.render: it
    declares, fills, deletes only the agent's chains (ca-...), and adds or
    deletes only jumps from built-in chains to them."""
    if not isinstance(text, str):
        _refuse("ruleset", text)
    table = None
    for line in text.splitlines():
        words = line.split()
        if not words:
            continue
        if words[0] in ("*filter", "*nat") and len(words) == 1:
            table = words[0][1:]
        elif words == ["COMMIT"] and table:
            table = None
        elif table and words[0].startswith(":") and CHAIN.match(words[0][1:]) \
                and words[1:] == ["-", "[0:0]"]:
            continue
        elif table and words[0] in ("-A", "-X") and len(words) >= 2 and CHAIN.match(words[1]):
            if words[0] == "-X" and len(words) != 2:
                _refuse("rule", line)
        elif table and words[0] == "-I" and len(words) == 5 and words[2] == "1" \
                and words[3] == "-j" and words[1] in BUILTIN_JUMPS[table] \
                and CHAIN.match(words[4]):
            continue
        elif table and words[0] == "-D" and len(words) == 4 and words[2] == "-j" \
                and words[1] in BUILTIN_JUMPS[table] and CHAIN.match(words[3]):
            continue
        else:
            _refuse("rule (not of the agent's chains)", line)
    if table:
        _refuse("ruleset without COMMIT", text[-80:])
    return text


def nft_text(text):
    """An `nft -f` input of network.l2filter.ruleset: only the agent's
    bridge table, and no include, define or other table."""
    if not isinstance(text, str):
        _refuse("nft ruleset", text)
    for line in text.splitlines():
        words = line.split()
        if not words:
            continue
        if (";" in line and line.strip() != HOOK_LINE) or words.count("table") > 1:
            _refuse("nft statement", line)
        if words[0] in ("include", "define", "flush", "add", "insert", "replace",
                        "destroy", "reset", "list", "monitor", "import", "export"):
            _refuse("nft statement", line)
        if words[0] in ("table", "delete") or "table" in words:
            target = " ".join(words[words.index("table") + 1:][:2]) if "table" in words else ""
            if target != L2_TABLE:
                _refuse("nft table (not the agent's)", line)
    return text


DNSMASQ_FIXED = {"--conf-file=/dev/null", "--strict-order", "--bind-interfaces",
                 "--except-interface=lo", "--port=0", "--dhcp-no-override", "--log-dhcp",
                 "--dhcp-option=3"}
DNSMASQ_PATHS = {"--dhcp-hostsfile": "hosts", "--dhcp-leasefile": "leases",
                 "--pid-file": "pid", "--log-facility": "log"}
DHCP_OPTION = re.compile(r"--dhcp-option=(3|6|26),[0-9a-fA-F.:,]{1,200}\Z")
DHCP_RANGE = re.compile(r"--dhcp-range=[0-9.]{7,15},static,[0-9.]{7,15},[0-9]{1,9}s\Z")


def dnsmasq_argv(argv, dhcp_root):
    """The argv of network.dhcp.dnsmasq_argv: dnsmasq, the fixed options,
    its files in one directory of dhcp_root, an agent bridge, addresses."""
    if not isinstance(argv, (list, tuple)) or not argv or argv[0] != "dnsmasq":
        _refuse("dnsmasq command", argv)
    directory = None
    for arg in argv[1:]:
        if not isinstance(arg, str):
            _refuse("dnsmasq argument", arg)
        key, _, value = arg.partition("=")
        if arg in DNSMASQ_FIXED or DHCP_OPTION.match(arg) or DHCP_RANGE.match(arg):
            continue
        if key == "--interface" and BRIDGE.match(value):
            continue
        if key == "--listen-address":
            ip_address(value)
            continue
        if key in DNSMASQ_PATHS:
            real = path_under(value, dhcp_root, {DNSMASQ_PATHS[key]})
            if directory not in (None, os.path.dirname(real)):
                _refuse("dnsmasq files in two directories", arg)
            directory = os.path.dirname(real)
            continue
        _refuse("dnsmasq argument", arg)
    if not any(a.startswith("--pid-file=") for a in argv):
        _refuse("dnsmasq command without its pid file", argv)
    return argv
