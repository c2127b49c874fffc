"""Layer-2 anti-spoofing for guest ports, as pure functions of the model,
rendered for nftables' `bridge` family.

What a port may send, checked on the frame as it enters the bridge from
the guest's tap (hook prerouting, before the bridge learns its source MAC
or forwards it, so it covers bridged traffic and traffic to the host
alike):

- only IPv4, IPv6 and ARP, and only from the port's own MAC (a VLAN tag
  or any other ethertype is dropped);
- ARP only with the port's MAC and one of its IPv4 addresses as sender
  (or 0.0.0.0, an address probe, which no host learns from);
- IPv6 neighbour advertisements only for the port's own addresses and its
  EUI-64 link-local address;
- no router advertisements or redirects, no DHCP or DHCPv6 server replies.

Layer 3 (source IP anti-spoofing, security groups, connection state) is
network.firewall's, in iptables, where physdev and conntrack are at hand.

Why nftables' bridge family rather than ebtables and arptables: one tool,
one table the agent owns (`bridge compute_agent`), replaced whole in one
`nft -f` transaction, so a change is atomic and never touches a rule or
table of anyone else; ebtables would need a second tool for ARP
(arptables) and two separate, non-atomic commits.  Both work on these
kernels (both are nf_tables underneath).
"""
import ipaddress

from network import names

TABLE = "compute_agent"
FAMILY = "bridge"
ETHERTYPES = "{ ip, ip6, arp }"


def link_local(mac):
    """The EUI-64 IPv6 link-local address a port's MAC gives."""
    octets = [int(x, 16) for x in mac.split(":")]
    octets[0] ^= 0x02
    eui = octets[:3] + [0xff, 0xfe] + octets[3:]
    return str(ipaddress.IPv6Address(b"\xfe\x80" + bytes(6) + bytes(eui)))


def chain(port):
    return "p_" + names.chain_id(port.id)


def port_rules(port):
    """The nft rules (strings) of one port's chain, in order."""
    mac = port.mac
    v4 = ", ".join(sorted(set(port.ips(4)) | {"0.0.0.0"}))
    rules = [f"ether saddr != {mac} drop",
             f"ether type != {ETHERTYPES} drop",
             f"arp saddr ether != {mac} drop",
             f"arp saddr ip != {{ {v4} }} drop",
             "udp sport { 67, 547 } drop",
             "icmpv6 type { nd-router-advert, nd-redirect } drop"]
    own6 = sorted({link_local(mac)} | set(port.ips(6)),
                  key=lambda a: ipaddress.IPv6Address(a))
    for address in own6:
        value = int(ipaddress.IPv6Address(address))
        rules.append(f"icmpv6 type nd-neighbor-advert @th,64,128 0x{value:032x} return")
    rules.append("icmpv6 type nd-neighbor-advert drop")
    return rules


def ruleset(ports):
    """The whole `nft -f` input that makes the agent's table exactly the
    rules of ports (removing it when there are none), in one transaction."""
    lines = [f"table {FAMILY} {TABLE}", f"delete table {FAMILY} {TABLE}"]
    ports = sorted(ports, key=lambda p: p.devname)
    if not ports:
        return "\n".join(lines) + "\n"
    lines += [f"table {FAMILY} {TABLE} {{",
              "  chain ports {",
              "    type filter hook prerouting priority -200; policy accept;",
              "    iifname vmap { " + ", ".join(f'"{p.devname}" : jump {chain(p)}'
                                              for p in ports) + " }",
              "  }"]
    for p in ports:
        lines.append(f"  chain {chain(p)} {{")
        lines += [f"    {r}" for r in port_rules(p)]
        lines.append("  }")
    lines.append("}")
    return "\n".join(lines) + "\n"
