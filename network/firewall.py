"""iptables rules for guest ports, as pure functions of the model.

Each port gets three chains of its own in the filter table, named from its
id: ca-i<id> (traffic to the guest), ca-o<id> (traffic from it) and ca-s<id>
(anti-spoofing: only the port's MAC with its fixed IPs may leave).  The
bridge hooks (via physdev on the port's tap) live in chains the agent owns:
ca-forward and ca-input, jumped to once from FORWARD and INPUT, and
ca-sg-chain.  Everything is rendered for `iptables-restore --noflush`:
declaring a chain there replaces that chain's rules and touches no other
chain, so a change is applied atomically and chains the agent does not own
are never modified.

render() turns the current state (parse_save of iptables-save) into the
desired one: network.iptables runs it.  Floating-IP NAT chains (nat_chains)
are rendered the same way.

Policy: ingress is default-deny with the groups' rules allowed; egress
allows the groups' egress rules; established/related traffic is allowed;
DHCP client traffic is allowed before the spoof check, and a guest may not
act as a DHCP server (nor send IPv6 router advertisements).
"""


PREFIX = "ca-"
FORWARD_CHAIN, INPUT_CHAIN, SG_CHAIN = "ca-forward", "ca-input", "ca-sg-chain"
HOOK_CHAIN = SG_CHAIN
FLOAT_PRE, FLOAT_OUT, FLOAT_POST = "ca-float-pre", "ca-float-out", "ca-float-snat"
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
    """The bridge hooks.  FORWARD jumps to ca-forward, which sends the
    bridged traffic of each port's tap to ca-sg-chain; there the packet
    passes the ingress chain of the port it goes to and the egress chain of
    the port it comes from, and is accepted if neither dropped it.  INPUT
    (guest to host: DHCP, the gateway) passes the egress chain only."""
    forward, sg, inp = [], [], []
    for p in ports:
        out = ["-m", "physdev", "--physdev-out", p.devname, "--physdev-is-bridged"]
        into = ["-m", "physdev", "--physdev-in", p.devname, "--physdev-is-bridged"]
        forward += [out + ["-j", SG_CHAIN], into + ["-j", SG_CHAIN]]
        sg += [out + ["-j", chain("i", p)], into + ["-j", chain("o", p)]]
        # delivered locally, a packet is not "bridged" to physdev
        inp.append(["-m", "physdev", "--physdev-in", p.devname, "-j", chain("o", p)])
    if sg:
        sg.append(["-j", "ACCEPT"])
    return {FORWARD_CHAIN: forward, SG_CHAIN: sg, INPUT_CHAIN: inp}


def filter_chains(ports, groups, version, members=None):
    """{chain: rules} of the filter table: hooks and every port's chains."""
    chains = hook_rules(ports)
    for p in ports:
        chains.update(port_rules(p, groups, version, members))
    return chains


def nat_chains(floating_ips):
    """{chain: rules} of the nat table for floating IPs (IPv4): DNAT of the
    floating address to the fixed one (from outside and from the host) and
    SNAT of the guest's traffic leaving its network."""
    pre, out, post = [], [], []
    for f in floating_ips:
        dnat = ["-d", f.address + "/32", "-j", "DNAT", "--to-destination", f.fixed_ip]
        pre.append(dnat)
        out.append(dnat)
        post.append(["-s", f.fixed_ip + "/32", "!", "-d", f.cidr, "-j", "SNAT",
                     "--to-source", f.address])
    return {FLOAT_PRE: pre, FLOAT_OUT: out, FLOAT_POST: post}


# The built-in chains that jump to ours: (table, built-in, our chain).
JUMPS = [("filter", "FORWARD", FORWARD_CHAIN), ("filter", "INPUT", INPUT_CHAIN),
         ("nat", "PREROUTING", FLOAT_PRE), ("nat", "OUTPUT", FLOAT_OUT),
         ("nat", "POSTROUTING", FLOAT_POST)]


def owned(name):
    return name.startswith(PREFIX)


def parse_save(text):
    """{table: (our chain names, [(built-in, target)] of jumps to ours)} of
    an `iptables-save` output."""
    tables, table = {}, None
    for line in text.splitlines():
        if line.startswith("*"):
            table = line[1:].strip()
            tables[table] = (set(), [])
        elif line.startswith(":") and owned(line[1:].split()[0]):
            tables[table][0].add(line[1:].split()[0])
        elif line.startswith("-A "):
            words = line.split()
            if len(words) == 4 and words[2] == "-j" and owned(words[3]) \
                    and not owned(words[1]):
                tables[table][1].append((words[1], words[3]))
    return tables


def render(desired, current):
    """The iptables-restore --noflush input that turns current (parse_save)
    into desired ({table: {chain: rules}}; empty chains are removed, and so
    are their jumps): our chains are declared (so replaced whole), jumps
    from built-in chains are added once or deleted, stale chains removed.
    Chains and rules the agent does not own are never named."""
    out = []
    for table in sorted(set(desired) | set(current)):
        wanted = {c: r for c, r in desired.get(table, {}).items() if r}
        have, jumps = current.get(table, (set(), []))
        removals = []
        for builtin, target in sorted(set(jumps)):
            extra = jumps.count((builtin, target)) - (1 if target in wanted else 0)
            removals += [f"-D {builtin} -j {target}"] * extra
        removals += [f"-X {name}" for name in sorted(have - set(wanted))]
        declared = sorted(set(wanted) | (have - set(wanted)))
        if not declared and not removals:
            continue
        lines = [f":{name} - [0:0]" for name in declared]
        for name, rules in wanted.items():
            lines += [" ".join(["-A", name, *r]) for r in rules]
        lines += [f"-I {builtin} 1 -j {target}" for t, builtin, target in JUMPS
                  if t == table and target in wanted and (builtin, target) not in jumps]
        lines += removals
        out += [f"*{table}", *lines, "COMMIT"]
    return "\n".join(out) + "\n" if out else ""


def ruleset(ports, groups, version, members=None, current=None):
    """The filter table of ports as iptables-restore input, from the state
    current (parse_save; None: nothing of ours yet)."""
    return render({"filter": filter_chains(ports, groups, version, members)}, current or {})
