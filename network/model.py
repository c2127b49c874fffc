"""What the agent knows of guest networking, as plain immutable data:
networks, ports, security groups and floating IPs, as they arrive in RPC
payloads.  from_payload functions check what a JSON schema cannot (address
syntax, an address inside its subnet, a port's groups being known) and raise
ValueError naming the field."""
import dataclasses
import ipaddress

from network import names


@dataclasses.dataclass(frozen=True)
class Rule:
    """One security-group rule; traffic it matches is allowed."""

    direction: str                    # ingress (to the guest) | egress (from it)
    ethertype: str = "IPv4"           # IPv4 | IPv6
    protocol: str | None = None       # tcp | udp | icmp | icmpv6 | None (any)
    port_min: int | None = None
    port_max: int | None = None
    remote_ip_prefix: str | None = None
    remote_group_id: str | None = None


@dataclasses.dataclass(frozen=True)
class SecurityGroup:
    id: str
    rules: tuple = ()
    members: tuple = ()               # IPs of the group's ports on other hosts


@dataclasses.dataclass(frozen=True)
class Segmentation:
    """How the network reaches other hosts.  The uplink itself is host
    configuration: physical_network names an entry of the agent's
    physical_interface_mappings, and a VXLAN's local address is the
    agent's tunnel_local_ip; a payload never names a host device."""

    type: str                         # flat | vlan | vxlan
    physical_network: str | None = None
    vlan_id: int | None = None
    vni: int | None = None
    peers: tuple = ()                 # other hosts' tunnel addresses (vxlan)


@dataclasses.dataclass(frozen=True)
class Network:
    id: str
    bridge: str
    segmentation: Segmentation
    cidr: str
    gateway: str | None = None
    dhcp: bool = False
    dns_servers: tuple = ()
    mtu: int | None = None
    host_address: str | None = None   # this host's address on the network (DHCP, NAT)
    metadata: bool = False            # guests reach the metadata service (needs host_address)

    @property
    def prefixlen(self):
        return ipaddress.ip_network(self.cidr).prefixlen


@dataclasses.dataclass(frozen=True)
class Port:
    id: str
    network_id: str
    mac: str
    fixed_ips: tuple = ()             # "10.0.0.5", "fd00::5"
    security_groups: tuple = ()       # SecurityGroup ids

    @property
    def devname(self):
        """The guest's tap device, named from a hash of the full port id."""
        return names.tap(self.id)

    def ips(self, version):
        return tuple(ip for ip in self.fixed_ips if (":" in ip) == (version == 6))


@dataclasses.dataclass(frozen=True)
class FloatingIP:
    address: str
    fixed_ip: str
    port_id: str
    cidr: str                         # the fixed IP's network (not SNATed)


def _ip(value, field):
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ValueError(f"{field}: {value!r} is not an IP address") from None


def _mac(value, field):
    """A MAC in the one form iptables, nftables and dnsmasq get: lower
    case, colons; a multicast or all-zero address is no port's."""
    octets = value.replace("-", ":").split(":")
    try:
        if len(octets) != 6 or not all(len(o) == 2 for o in octets):
            raise ValueError
        raw = bytes(int(o, 16) for o in octets)
    except ValueError:
        raise ValueError(f"{field}: {value!r} is not a MAC address") from None
    if raw[0] & 1 or raw == bytes(6):
        raise ValueError(f"{field}: {value} is a multicast or zero MAC, no port's address")
    return ":".join(f"{b:02x}" for b in raw)


def _peer(value, field):
    addr = ipaddress.ip_address(_ip(value, field))
    if addr.is_loopback or addr.is_multicast or addr.is_link_local or addr.is_unspecified:
        raise ValueError(f"{field}: {value} is not a unicast host address")
    return str(addr)


def rule_from_payload(d, field):
    prefix = d.get("remote_ip_prefix")
    if prefix is not None:
        try:
            net = ipaddress.ip_network(prefix, strict=False)
        except ValueError:
            raise ValueError(f"{field}.remote_ip_prefix: {prefix!r} is not a CIDR") from None
        if (net.version == 6) != (d.get("ethertype", "IPv4") == "IPv6"):
            raise ValueError(f"{field}.remote_ip_prefix: {prefix} is not {d.get('ethertype')}")
        prefix = str(net)
    lo, hi = d.get("port_range_min"), d.get("port_range_max")
    if lo is not None and hi is not None and hi < lo:
        raise ValueError(f"{field}: port_range_max {hi} < port_range_min {lo}")
    return Rule(d["direction"], d.get("ethertype", "IPv4"), d.get("protocol"), lo, hi, prefix,
                d.get("remote_group_id"))


def group_from_payload(d, field="security_group"):
    rules = tuple(rule_from_payload(r, f"{field}.rules[{i}]")
                  for i, r in enumerate(d.get("rules", ())))
    members = tuple(_ip(m, f"{field}.members") for m in d.get("members", ()))
    return SecurityGroup(d["id"], rules, members)


def network_from_payload(d, field="network"):
    s = d["segmentation"]
    seg = Segmentation(s["type"], s.get("physical_network"), s.get("vlan_id"), s.get("vni"),
                       tuple(_peer(p, f"{field}.segmentation.peers")
                             for p in s.get("peers", ())))
    if seg.type == "vlan" and not seg.physical_network:
        raise ValueError(f"{field}.segmentation: a vlan needs physical_network")
    bridge = d.get("bridge") or names.bridge(d["id"])
    if not bridge.startswith(names.BRIDGE_PREFIX):
        raise ValueError(f"{field}.bridge: {bridge!r} is not one of this agent's bridges "
                         f"(their names start with {names.BRIDGE_PREFIX!r})")
    try:
        cidr = ipaddress.ip_network(d["cidr"])
    except ValueError as e:
        raise ValueError(f"{field}.cidr: {e}") from None
    inside = {}
    for key in ("gateway", "host_address"):
        if d.get(key) is not None:
            inside[key] = _ip(d[key], f"{field}.{key}")
            if ipaddress.ip_address(inside[key]) not in cidr:
                raise ValueError(f"{field}.{key}: {inside[key]} is outside {cidr}")
    if d.get("metadata") and (cidr.version != 4 or "host_address" not in inside):
        raise ValueError(f"{field}.metadata: the metadata service needs an IPv4 network "
                         "with a host_address (where its requests are sent)")
    return Network(d["id"], bridge, seg, str(cidr), inside.get("gateway"),
                   bool(d.get("dhcp", False)),
                   tuple(_ip(x, f"{field}.dns_servers") for x in d.get("dns_servers", ())),
                   d.get("mtu"), inside.get("host_address"), bool(d.get("metadata", False)))


def port_from_payload(d, network, field="port"):
    cidr = ipaddress.ip_network(network.cidr)
    reserved = {network.gateway, network.host_address}
    if cidr.version == 4 and cidr.prefixlen < 31:
        reserved |= {str(cidr.network_address), str(cidr.broadcast_address)}
    ips = []
    for ip in d.get("fixed_ips", ()):
        ip = _ip(ip, f"{field}.fixed_ips")
        if ipaddress.ip_address(ip) not in cidr:
            raise ValueError(f"{field}.fixed_ips: {ip} is outside {cidr}")
        if ip in reserved:
            raise ValueError(f"{field}.fixed_ips: {ip} is the network's own address "
                             "(gateway, host, network or broadcast), no port's")
        ips.append(ip)
    return Port(d["id"], network.id, _mac(d["mac"], f"{field}.mac"), tuple(ips),
                tuple(d.get("security_groups", ())))


def vif_from_payload(item, field="networks"):
    """(Network, Port) of one element of a build's `networks` list."""
    net = network_from_payload(item["network"], f"{field}.network")
    return net, port_from_payload(item["port"], net, f"{field}.port")
