"""Which host resources a network or a floating IP may use, decided from
the agent's configuration and what is on the host, never from a payload.
Pure functions over plain data; each refusal is a ValueError naming the
payload field (the RPC boundary answers it as InvalidRequest).

- Uplinks: a flat or VLAN network names a physical network, which the
  agent's physical_interface_mappings turns into an interface; a VXLAN's
  local address is the configured tunnel_local_ip.
- Devices: a bridge, VLAN or VXLAN device that exists must carry the
  agent's alias for this very network (network.names); two networks never
  share a bridge or an uplink.
- Addresses: a network's subnet overlaps none the host holds on a device
  that is not the agent's (that would move host routes onto a guest
  bridge, and let a guest's rules name the host's own networks); the
  host's address on it is not one the host already uses elsewhere.
- Floating IPs: only from floating_ranges, never loopback, link-local,
  multicast or reserved, nor an address the host already holds.
"""
import dataclasses
import ipaddress

from network import names


@dataclasses.dataclass(frozen=True)
class HostView:
    """What the checks need to know of the host."""

    devices: dict                     # name -> interface alias ("" if none)
    addresses: tuple = ()             # (device, "address/prefix") of every address
    mappings: dict = dataclasses.field(default_factory=dict)   # physnet -> interface
    tunnel_ip: str | None = None


def uplink(network, mappings):
    """The device the network's bridge gets as its uplink, or None (a flat
    network without physical network is host-only).  KeyError if the
    physical network is not mapped here."""
    seg = network.segmentation
    if seg.type == "vxlan":
        return names.vxlan(seg.vni)
    if not seg.physical_network:
        return None
    interface = mappings[seg.physical_network]
    return names.vlan(interface, seg.vlan_id) if seg.type == "vlan" else interface


def _wire(network):
    """What a network occupies on the host besides its bridge."""
    seg = network.segmentation
    if seg.type == "vxlan":
        return ("vxlan", seg.vni)
    if seg.physical_network is None:
        return None
    return (seg.type, seg.physical_network, seg.vlan_id if seg.type == "vlan" else None)


def _same(a, b):
    return (a.bridge, a.segmentation.type, a.segmentation.physical_network,
            a.segmentation.vlan_id, a.segmentation.vni, a.cidr, a.host_address,
            a.gateway) == (b.bridge, b.segmentation.type, b.segmentation.physical_network,
                           b.segmentation.vlan_id, b.segmentation.vni, b.cidr,
                           b.host_address, b.gateway)


def check_known(network, field, known):
    """Consistency with the networks the host already serves ({id:
    Network}): the same id is the same network; no other network uses
    its bridge or its wire."""
    if network.id in known:
        if not _same(network, known[network.id]):
            k = known[network.id]
            raise ValueError(f"{field}: network {network.id} is served here already with "
                             f"bridge {k.bridge}, {k.segmentation.type} segmentation and "
                             f"cidr {k.cidr}; a payload may not change it")
        return
    for other in known.values():
        if other.bridge == network.bridge:
            raise ValueError(f"{field}.bridge: {network.bridge} is the bridge of network "
                             f"{other.id}; two networks never share a bridge")
        if _wire(other) is not None and _wire(other) == _wire(network):
            raise ValueError(f"{field}.segmentation: its uplink carries network "
                             f"{other.id} already")


def _check_device(name, network, field, devices):
    if name in devices and names.owner_of(devices[name]) != network.id:
        owner = names.owner_of(devices[name])
        whose = f"network {owner}'s" if owner else "not created by this agent"
        raise ValueError(f"{field}: device {name} exists on this host and is {whose}")


def check_network(network, field, host, known):
    """Everything above for one network of a payload; known: {id:
    Network} of the networks the host serves (and earlier items of the
    same payload)."""
    check_known(network, field, known)
    seg = network.segmentation
    _check_device(network.bridge, network, f"{field}.bridge", host.devices)
    if seg.type == "vxlan":
        if not host.tunnel_ip:
            raise ValueError(f"{field}.segmentation: this host has no tunnel_local_ip "
                             "configured, so it cannot carry VXLAN networks")
        if host.tunnel_ip in seg.peers:
            raise ValueError(f"{field}.segmentation.peers: {host.tunnel_ip} is this host")
    elif seg.physical_network is not None:
        interface = host.mappings.get(seg.physical_network)
        if interface is None:
            raise ValueError(f"{field}.segmentation.physical_network: "
                             f"{seg.physical_network!r} is not mapped on this host "
                             "(physical_interface_mappings)")
        if interface not in host.devices:
            raise ValueError(f"{field}.segmentation.physical_network: its interface "
                             f"{interface} is not present on this host")
    if seg.type != "flat":
        _check_device(uplink(network, host.mappings), network, f"{field}.segmentation",
                      host.devices)
    if network.host_address:
        _check_host_address(network, field, host)
    check_subnet(network.cidr, f"{field}.cidr", foreign_subnets(host.addresses, host.devices))


def foreign_subnets(addresses, devices):
    """The subnets of every address (device, "address/prefix") on a device
    that is not one of the agent's (its alias), link-local ones aside:
    the management, storage, public and loopback networks."""
    found = set()
    for dev, cidr in addresses:
        if names.owner_of(devices.get(dev, "")) is not None:
            continue
        net = ipaddress.ip_interface(cidr).network
        if not net.is_link_local:
            found.add(net)
    return tuple(sorted(found, key=lambda n: (n.version, n)))


def check_subnet(cidr, field, foreign):
    """A guest network's subnet: never loopback, link-local, multicast or
    everything, and overlapping none of foreign (foreign_subnets): a rule
    for a guest of that network would otherwise name the host's own."""
    net = ipaddress.ip_network(cidr)
    if net.is_loopback or net.is_link_local or net.is_multicast or net.is_unspecified \
            or net.prefixlen == 0:
        raise ValueError(f"{field}: {net} is not a subnet a guest network may have")
    for other in foreign:
        if other.version == net.version and other.overlaps(net):
            raise ValueError(f"{field}: {net} overlaps {other}, a network of this host "
                             "that is not a guest network")


def _check_host_address(network, field, host):
    mine = ipaddress.ip_address(network.host_address)
    subnet = ipaddress.ip_network(network.cidr)
    for dev, cidr in host.addresses:
        if dev == network.bridge:
            continue
        iface = ipaddress.ip_interface(cidr)
        if iface.ip == mine:
            raise ValueError(f"{field}.host_address: {mine} is in use on {dev}")
        if iface.version == subnet.version and iface.network.overlaps(subnet) \
                and not iface.ip.is_loopback:
            raise ValueError(f"{field}.cidr: {subnet} overlaps {iface.network} of {dev}")


def check_floating_ip(address, field, ranges, host_addresses, ours=()):
    """ranges: CIDRs the agent may use; host_addresses: every address on
    the host; ours: the floating addresses the agent put there."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        raise ValueError(f"{field}: {address!r} is not an IP address") from None
    if ip.version != 4:
        raise ValueError(f"{field}: {address}: only IPv4 floating IPs are supported")
    if ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_unspecified \
            or ip.is_reserved or ip == ipaddress.ip_address("255.255.255.255"):
        raise ValueError(f"{field}: {address} is not a unicast address a guest may take")
    nets = [ipaddress.ip_network(r, strict=False) for r in ranges]
    if not any(ip in n for n in nets):
        raise ValueError(f"{field}: {address} is outside this host's floating_ranges "
                         f"({', '.join(map(str, nets)) or 'none configured'})")
    for n in nets:
        if n.prefixlen < 31 and ip in (n.network_address, n.broadcast_address):
            raise ValueError(f"{field}: {address} is the network or broadcast address "
                             f"of {n}")
    held = {str(ipaddress.ip_interface(a).ip) for a in host_addresses}
    if str(ip) in held and str(ip) not in set(ours):
        raise ValueError(f"{field}: {address} is an address of this host")


def check_fixed_ips_unique(new, held):
    """new: [(field, network id, Port)] a request brings; held: [(network
    id, Port)] this host's records wire already.  ValueError naming the
    field when a fixed IP of a new port is another port's on the same
    network, here or in the same request (pure): the metadata service and
    the anti-spoofing rules name a guest by its address."""
    owners = {}
    for net_id, port in held:
        for ip in port.fixed_ips:
            owners.setdefault((net_id, ip), port.id)
    for field, net_id, port in new:
        for ip in port.fixed_ips:
            other = owners.setdefault((net_id, ip), port.id)
            if other != port.id:
                raise ValueError(f"{field}: fixed IP {ip} is port {other}'s on network "
                                 f"{net_id} already")


def address_owner(claims, address):
    """(instance uuid, None) of the one port claiming address, or (None,
    why) when none or more than one do (pure); claims: [(uuid, port id,
    fixed IPs)]."""
    found = {(uuid, port_id) for uuid, port_id, ips in claims if address in ips}
    if not found:
        return None, "no port has that address here"
    if len(found) > 1:
        return None, (f"{len(found)} ports claim it ({', '.join(sorted(p for _, p in found))})"
                      ": answering for none")
    return next(iter(found))[0], None
