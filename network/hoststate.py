"""The host's guest-network state as the firewall's privileged entry
point receives it: plain data that crosses the privsep channel, and the
strict decoder that turns it back into the model (network.model) or
refuses it.

The agent never sends rules.  It sends what the rules are made of (its
ports with their networks and addresses, the security groups, the
floating IPs, which networks it routes, whether the metadata service
listens), and the privileged side renders every chain itself
(network.firewall, network.l2filter).  So whatever the caller sends,
the rules installed are ones the agent's own code writes: only its chains
and table, only its targets, and a guest's tap always ends in the guard
that keeps guests off the host's own addresses.

from_wire() trusts nothing: every key is known, every value typed and
bounded, addresses parse and lie in their networks, a network's subnet
overlaps no address the host holds on a device that is not one of the
agent's bridges (so no rule can name the management or storage network
as a guest's), floating IPs come from the configured ranges only and
map to a port's own fixed address.  A refusal is a ValueError naming the
field.  Pure: what the host holds comes in as Limits."""
import dataclasses
import ipaddress
import re

from network import hostres, model, names

MAX_ITEMS = 4096                      # ports, groups, members, floating IPs
MAX_RULES = 1024                      # rules of one group
TEXT = re.compile(r"[\x21-\x7e]{1,255}\Z")    # ids: printable, no blank, bounded
FAMILIES = {"IPv4": 4, "IPv6": 6}


@dataclasses.dataclass(frozen=True)
class HostState:
    """What the firewall is rendered from."""

    vifs: tuple = ()                  # ((Network, Port), ...), sorted by port id
    groups: dict = dataclasses.field(default_factory=dict)   # id -> SecurityGroup
    floating_ips: tuple = ()          # FloatingIP, sorted by address
    snat_networks: tuple = ()         # Network: guests leave through SNAT
    metadata: bool = False            # the metadata service listens


@dataclasses.dataclass(frozen=True)
class Limits:
    """What the privileged side knows of the host (never from the caller)."""

    floating_ranges: tuple = ()       # CIDRs of [network] floating_ranges
    foreign_subnets: tuple = ()       # ip_network of every address on a device
    #                                   that is not an agent bridge


# -- the agent's side ------------------------------------------------------------------

def network_doc(n):
    """The plain-data form of a Network (what its rules and its DHCP
    server need of it)."""
    return {"bridge": n.bridge, "cidr": n.cidr, "gateway": n.gateway,
            "host_address": n.host_address, "metadata": n.metadata,
            "dns_servers": list(n.dns_servers), "mtu": n.mtu}


def _rule_doc(r):
    return {"direction": r.direction, "ethertype": r.ethertype, "protocol": r.protocol,
            "port_range_min": r.port_min, "port_range_max": r.port_max,
            "remote_ip_prefix": r.remote_ip_prefix, "remote_group_id": r.remote_group_id}


def to_wire(vifs, groups, floating_ips=(), snat_networks=(), metadata=False):
    """The plain-data form of a host's state; vifs: [(Network, Port)],
    groups: {id: SecurityGroup}."""
    networks = {n.id: network_doc(n) for n, _ in vifs}
    return {
        "networks": networks,
        "ports": [{"id": p.id, "network": n.id, "mac": p.mac, "fixed_ips": list(p.fixed_ips),
                   "security_groups": list(p.security_groups)} for n, p in vifs],
        "groups": {gid: {"rules": [_rule_doc(r) for r in g.rules],
                         "members": list(g.members)} for gid, g in groups.items()},
        "floating_ips": [{"address": f.address, "fixed_ip": f.fixed_ip, "port": f.port_id}
                         for f in floating_ips],
        "snat_networks": sorted({n.id for n in snat_networks}),
        "metadata": bool(metadata),
    }


# -- the privileged side: strict decoding -----------------------------------------------

def _fields(doc, field, required, optional=()):
    if not isinstance(doc, dict):
        raise ValueError(f"{field}: not a mapping")
    unknown = set(doc) - set(required) - set(optional)
    if unknown:
        raise ValueError(f"{field}: unknown keys {sorted(map(str, unknown))}")
    missing = set(required) - set(doc)
    if missing:
        raise ValueError(f"{field}: missing keys {sorted(missing)}")
    return doc


def _text(value, field, pattern=TEXT):
    if not isinstance(value, str) or not pattern.match(value):
        raise ValueError(f"{field}: {value!r} is not an accepted name")
    return value


def _list(value, field, limit=MAX_ITEMS):
    if not isinstance(value, (list, tuple)) or len(value) > limit:
        raise ValueError(f"{field}: not a list of at most {limit} items")
    return value


def _map(value, field, limit=MAX_ITEMS):
    if not isinstance(value, dict) or len(value) > limit:
        raise ValueError(f"{field}: not a mapping of at most {limit} items")
    for key in value:
        _text(key, f"{field} key")
    return value


def _opt_int(value, field, low, high):
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ValueError(f"{field}: {value!r} is not an integer in {low}-{high}")
    return value


def _opt_ip(value, field):
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{field}: {value!r} is not an IP address")
    return value


def network_from_wire(nid, doc, limits, field="network"):
    """The Network of network_doc's form, or ValueError."""
    _text(nid, field)
    _fields(doc, field, ("bridge", "cidr"),
            ("gateway", "host_address", "metadata", "dns_servers", "mtu"))
    bridge = _text(doc["bridge"], f"{field}.bridge")
    if not re.match(names.BRIDGE_PREFIX + r"[A-Za-z0-9_-]{1,11}\Z", bridge):
        raise ValueError(f"{field}.bridge: {bridge!r} is not one of this agent's bridges")
    if not isinstance(doc.get("metadata", False), bool):
        raise ValueError(f"{field}.metadata: not a boolean")
    dns = [_opt_ip(x, f"{field}.dns_servers") for x in
           _list(doc.get("dns_servers", []), f"{field}.dns_servers", 16)]
    if not isinstance(doc["cidr"], str):
        raise ValueError(f"{field}.cidr: not a CIDR")
    payload = {"id": nid, "bridge": bridge, "cidr": doc["cidr"],
               "segmentation": {"type": "flat"},   # not the firewall's business
               "gateway": _opt_ip(doc.get("gateway"), f"{field}.gateway"),
               "host_address": _opt_ip(doc.get("host_address"), f"{field}.host_address"),
               "metadata": doc.get("metadata", False), "dns_servers": dns,
               "mtu": _opt_int(doc.get("mtu"), f"{field}.mtu", 68, 65535)}
    net = model.network_from_payload(payload, field)
    hostres.check_subnet(net.cidr, f"{field}.cidr", limits.foreign_subnets)
    return net


def _group(gid, doc, field):
    _text(gid, field)
    _fields(doc, field, (), ("rules", "members"))
    rules = []
    for i, r in enumerate(_list(doc.get("rules", []), f"{field}.rules", MAX_RULES)):
        where = f"{field}.rules[{i}]"
        _fields(r, where, ("direction",), ("ethertype", "protocol", "port_range_min",
                                           "port_range_max", "remote_ip_prefix",
                                           "remote_group_id"))
        if r["direction"] not in ("ingress", "egress"):
            raise ValueError(f"{where}.direction: {r['direction']!r} refused")
        if r.get("ethertype", "IPv4") not in FAMILIES:
            raise ValueError(f"{where}.ethertype: {r.get('ethertype')!r} refused")
        if r.get("protocol") is not None and r["protocol"] not in ("tcp", "udp", "icmp",
                                                                   "icmpv6"):
            raise ValueError(f"{where}.protocol: {r['protocol']!r} refused")
        for key in ("port_range_min", "port_range_max"):
            _opt_int(r.get(key), f"{where}.{key}", 0, 65535)
        if r.get("remote_ip_prefix") is not None and not isinstance(r["remote_ip_prefix"],
                                                                    str):
            raise ValueError(f"{where}.remote_ip_prefix: not a CIDR")
        if r.get("remote_group_id") is not None:
            _text(r["remote_group_id"], f"{where}.remote_group_id")
        rules.append({k: v for k, v in r.items() if v is not None})
    members = [_opt_ip(m, f"{field}.members") for m in
               _list(doc.get("members", []), f"{field}.members")]
    return model.group_from_payload({"id": gid, "rules": rules, "members": members}, field)


def _port(i, doc, networks, groups):
    field = f"ports[{i}]"
    _fields(doc, field, ("id", "network", "mac"), ("fixed_ips", "security_groups"))
    pid = _text(doc["id"], f"{field}.id")
    net = networks.get(doc["network"]) if isinstance(doc["network"], str) else None
    if net is None:
        raise ValueError(f"{field}.network: {doc['network']!r} is not a listed network")
    if not isinstance(doc["mac"], str):
        raise ValueError(f"{field}.mac: not a MAC address")
    ips = [_opt_ip(x, f"{field}.fixed_ips") for x in
           _list(doc.get("fixed_ips", []), f"{field}.fixed_ips", 64)]
    sgs = [_text(g, f"{field}.security_groups") for g in
           _list(doc.get("security_groups", []), f"{field}.security_groups", 64)]
    unknown = set(sgs) - set(groups)
    if unknown:
        raise ValueError(f"{field}.security_groups: {sorted(unknown)} are not listed")
    port = model.port_from_payload({"id": pid, "mac": doc["mac"], "fixed_ips": ips,
                                    "security_groups": sgs}, net, field)
    return net, port


def _floating(i, doc, ports, limits):
    field = f"floating_ips[{i}]"
    _fields(doc, field, ("address", "fixed_ip", "port"))
    address = _opt_ip(doc["address"], f"{field}.address")
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        raise ValueError(f"{field}.address: {address!r} is not an IP address") from None
    ranges = [ipaddress.ip_network(r, strict=False) for r in limits.floating_ranges]
    if ip.version != 4 or not any(ip in r for r in ranges) or ip.is_loopback \
            or ip.is_multicast or ip.is_link_local or ip.is_unspecified or ip.is_reserved \
            or any(r.prefixlen < 31 and ip in (r.network_address, r.broadcast_address)
                   for r in ranges):
        raise ValueError(f"{field}.address: {address} is not an address of this host's "
                         "floating_ranges")
    found = ports.get(doc["port"]) if isinstance(doc["port"], str) else None
    if found is None or doc["fixed_ip"] not in found[1].ips(4):
        raise ValueError(f"{field}: {doc['fixed_ip']!r} is not a fixed IPv4 address of "
                         f"port {doc['port']!r}")
    return model.FloatingIP(str(ip), doc["fixed_ip"], found[1].id, found[0].cidr)


def from_wire(doc, limits):
    """The HostState doc describes, or ValueError (see the module's doc)."""
    _fields(doc, "state", ("networks", "ports", "groups"),
            ("floating_ips", "snat_networks", "metadata"))
    networks = {nid: network_from_wire(nid, d, limits, f"networks[{nid}]")
                for nid, d in _map(doc["networks"], "networks").items()}
    groups = {gid: _group(gid, d, f"groups[{gid}]")
              for gid, d in _map(doc["groups"], "groups").items()}
    ports = {}
    for i, d in enumerate(_list(doc["ports"], "ports")):
        net, port = _port(i, d, networks, groups)
        if port.id in ports:
            raise ValueError(f"ports[{i}].id: {port.id} is listed twice")
        ports[port.id] = (net, port)
    floating = {}
    for i, d in enumerate(_list(doc.get("floating_ips", []), "floating_ips")):
        f = _floating(i, d, ports, limits)
        if f.address in floating:
            raise ValueError(f"floating_ips[{i}].address: {f.address} is listed twice")
        floating[f.address] = f
    snat = []
    for nid in _list(doc.get("snat_networks", []), "snat_networks"):
        net = networks.get(nid) if isinstance(nid, str) else None
        if net is None or net.host_address is None or ":" in net.cidr:
            raise ValueError(f"snat_networks: {nid!r} is not a listed IPv4 network with "
                             "this host's address")
        snat.append(net)
    if not isinstance(doc.get("metadata", False), bool):
        raise ValueError("metadata: not a boolean")
    return HostState(tuple(sorted(ports.values(), key=lambda v: v[1].id)), groups,
                     tuple(sorted(floating.values(), key=lambda f: f.address)),
                     tuple(sorted(snat, key=lambda n: n.id)), doc.get("metadata", False))
