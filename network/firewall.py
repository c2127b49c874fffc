"""iptables rules for guest ports, as pure functions of the model.

Each port gets three chains of its own in the filter table, named from its
id: ca-i<id> (traffic to the guest), ca-o<id> (traffic from it) and ca-s<id>
(anti-spoofing: only the port's MAC with its fixed IPs may leave).  The
bridge hooks (FORWARD and INPUT, via physdev on the port's tap) live in one
chain the agent owns, ca-sg-chain.  ruleset() renders everything for
`iptables-restore --noflush`: declaring a chain there replaces that chain's
rules and touches no other chain, so a change is applied atomically and
chains the agent does not own are never modified.

Not wired yet (networking issue): the applier that installs the one jump
from FORWARD to ca-sg-chain and runs iptables-restore through processutils,
and the INPUT hook for guest-to-host traffic (DHCP to the bridge's dnsmasq).

Policy: ingress is default-deny with the groups' rules allowed; egress
allows the groups' egress rules; established/related traffic is allowed;
DHCP client traffic is allowed before the spoof check, and a guest may not
act as a DHCP server (nor send IPv6 router advertisements).
"""


HOOK_CHAIN = "ca-sg-chain"
PROTOCOLS = {"tcp", "udp", "icmp", "icmpv6"}


def chain(kind, port):
    return f"ca-{kind}{port.id[:10]}"


def _rule_match(rule, version):
    if (rule.ethertype == "IPv6") != (version == 6):
        return None
    parts = []
    direction_flag = "-s" if rule.direction == "ingress" else "-d"
    if rule.remote_ip_prefix:
        if (":" in rule.remote_ip_prefix) != (version == 6):
            return None
        parts += [direction_flag, rule.remote_ip_prefix]
    if rule.protocol:
        proto = {"icmp": "ipv6-icmp" if version == 6 else "icmp",
                 "icmpv6": "ipv6-icmp"}.get(rule.protocol, rule.protocol)
        parts += ["-p", proto]
        if rule.protocol in ("tcp", "udp") and rule.port_min is not None:
            hi = rule.port_max if rule.port_max is not None else rule.port_min
            ports = str(rule.port_min) if hi == rule.port_min else f"{rule.port_min}:{hi}"
            parts += ["-m", rule.protocol, "--dport", ports]
    return parts


def _group_rules(port, groups, direction, version, members):
    """Match lists of the port's groups' rules for one direction/version;
    remote_group_id rules expand to the member IPs of that group."""
    out = []
    for gid in port.security_groups:
        for rule in groups[gid].rules:
            if rule.direction != direction:
                continue
            if rule.remote_group_id:
                flag = "-s" if direction == "ingress" else "-d"
                for ip in members.get(rule.remote_group_id, ()):
                    if (":" in ip) != (version == 6):
                        continue
                    base = _rule_match(rule, version)
                    if base is not None:
                        out.append([flag, ip + ("/128" if version == 6 else "/32")] + base)
                continue
            match = _rule_match(rule, version)
            if match is not None:
                out.append(match)
    return out


def port_rules(port, groups, version, members=None):
    """{chain: [rule argument lists]} for one port and IP version."""
    members = members or {}
    i, o, s = chain("i", port), chain("o", port), chain("s", port)
    host = "/128" if version == 6 else "/32"
    state = [["-m", "state", "--state", "RELATED,ESTABLISHED", "-j", "RETURN"],
             ["-m", "state", "--state", "INVALID", "-j", "DROP"]]
    ingress = list(state)
    egress = []
    if version == 4:
        ingress.append(["-p", "udp", "-m", "udp", "--sport", "67", "--dport", "68",
                        "-j", "RETURN"])
        egress.append(["-s", "0.0.0.0/32", "-d", "255.255.255.255/32", "-p", "udp", "-m",
                       "udp", "--sport", "68", "--dport", "67", "-j", "RETURN"])
    else:
        for icmp in ("router-advertisement", "neighbour-solicitation",
                     "neighbour-advertisement"):
            ingress.append(["-p", "ipv6-icmp", "-m", "icmp6", "--icmpv6-type", icmp,
                            "-j", "RETURN"])
        egress.append(["-p", "ipv6-icmp", "-m", "icmp6", "--icmpv6-type",
                       "router-advertisement", "-j", "DROP"])
        for icmp in ("router-solicitation", "neighbour-solicitation",
                     "neighbour-advertisement"):
            egress.append(["-s", "fe80::/64", "-p", "ipv6-icmp", "-m", "icmp6",
                           "--icmpv6-type", icmp, "-j", "RETURN"])
    egress.append(["-j", s])
    if version == 4:
        egress.append(["-p", "udp", "-m", "udp", "--sport", "67", "--dport", "68", "-j", "DROP"])
    egress += state
    ingress += [m + ["-j", "RETURN"] for m in _group_rules(port, groups, "ingress", version,
                                                            members)]
    egress += [m + ["-j", "RETURN"] for m in _group_rules(port, groups, "egress", version,
                                                           members)]
    ingress.append(["-j", "DROP"])
    egress.append(["-j", "DROP"])
    spoof = [["-s", ip + host, "-m", "mac", "--mac-source", port.mac, "-j", "RETURN"]
             for ip in port.ips(version)]
    spoof.append(["-j", "DROP"])
    return {i: ingress, o: egress, s: spoof}


def hook_rules(ports):
    """The bridge hooks: the FORWARD/INPUT traffic of each port's tap."""
    rules = []
    for p in ports:
        rules.append(["-m", "physdev", "--physdev-out", p.devname, "--physdev-is-bridged",
                      "-j", chain("i", p)])
        rules.append(["-m", "physdev", "--physdev-in", p.devname, "--physdev-is-bridged",
                      "-j", chain("o", p)])
    return rules


def ruleset(ports, groups, version, members=None):
    """The iptables-restore --noflush input for every port on the host:
    our hook chain and each port's chains, declared (so replaced) whole."""
    chains = {HOOK_CHAIN: hook_rules(ports)}
    for p in ports:
        chains.update(port_rules(p, groups, version, members))
    lines = ["*filter"] + [f":{name} - [0:0]" for name in chains]
    for name, rules in chains.items():
        lines += [" ".join(["-A", name, *r]) for r in rules]
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"
