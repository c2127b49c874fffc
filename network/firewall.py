"""iptables rules for guest ports, as pure functions of the model.

Each port gets three chains of its own in the filter table, named from a
hash of its id: ca-i<id> (traffic to the guest), ca-o<id> (traffic from
it) and ca-s<id> (anti-spoofing: only the port's MAC with its fixed IPs may
leave).  They are reached from chains the agent owns, each jumped to once
from a built-in chain:

- FORWARD -> ca-forward: traffic bridged to or from a port's tap
  (physdev) goes to ca-sg-chain, where it passes the ingress chain of the
  port it goes to and the egress chain of the port it comes from; then
  ca-routed, for traffic the host routes: from a port (physdev-in, which
  routed packets keep) through its egress chain, to a port (out through
  its network's bridge, to its fixed IP: after a floating IP's DNAT, or
  with the host as the guest's gateway) through its ingress chain.
- INPUT -> ca-input: guest to host, through the egress chain, then
  (for anything that came in through one of the agent's bridges: a local
  tap, or another host's guest over the uplink) ca-to-host: what a guest
  may reach of its host whatever its egress rules say (DHCP, the metadata
  service, DNS and ping of its own network's host address, replies);
  everything else to any address the host holds is dropped (IPv4 and
  IPv6).
- OUTPUT -> ca-output: host to guest, through the ingress chain.
- INPUT -> ca-consoles: the guests' serial and VNC ports on a console
  address other than loopback answer only the console proxies.

Routed traffic from a port leaves only through the public interface
(SNAT, floating IPs) or into another of the agent's bridges (ca-leave):
never into the management, storage or any other network of the host's,
whatever the host's routes are.

So every packet that reaches or leaves a port meets that port's rules,
whichever way it travels.  Everything is rendered for
`iptables-restore --noflush`: declaring a chain there replaces that
chain's rules and touches no other chain, so a change is applied
atomically and chains the agent does not own are never modified.

render() turns the current state (parse_save of iptables-save) into the
desired one: network.iptables runs it.  The nat table's chains (nat_chains)
carry floating-IP DNAT/SNAT and the SNAT of networks whose gateway is this
host, rendered the same way.

Policy: ingress is default-deny with the groups' rules allowed; egress
allows the groups' egress rules; established/related traffic is allowed;
DHCP client traffic is allowed before the spoof check.  What a guest may
not send at layer 2 (foreign MACs and ethertypes, ARP and neighbour
spoofing, router advertisements, DHCP server replies) is dropped before
any of this, by network.l2filter.
"""
from network import names

PREFIX = "ca-"
FORWARD_CHAIN, INPUT_CHAIN, SG_CHAIN = "ca-forward", "ca-input", "ca-sg-chain"
OUTPUT_CHAIN, ROUTED_CHAIN, HOST_CHAIN = "ca-output", "ca-routed", "ca-to-host"
LEAVE_CHAIN, CONSOLE_CHAIN = "ca-leave", "ca-consoles"
FLOAT_PRE, FLOAT_OUT, SNAT_CHAIN = "ca-float-pre", "ca-float-out", "ca-snat"
METADATA_PRE = "ca-meta-pre"
METADATA_ADDRESS = "169.254.169.254"
PROTOCOLS = {"tcp", "udp", "icmp", "icmpv6"}
BRIDGES = names.BRIDGE_PREFIX + "+"        # every bridge of the agent's (iptables' wildcard)
# ICMPv6 types by number, as iptables-save prints them
RS, RA, NS, NA, ECHO6 = "133", "134", "135", "136", "128"


def chain(kind, port):
    return f"ca-{kind}{names.chain_id(port.id)}"


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
        for icmp in (RA, NS, NA):
            ingress.append(["-p", "ipv6-icmp", "-m", "icmp6", "--icmpv6-type", icmp,
                            "-j", "RETURN"])
        for icmp in (RS, NS, NA):
            egress.append(["-s", "fe80::/64", "-p", "ipv6-icmp", "-m", "icmp6",
                           "--icmpv6-type", icmp, "-j", "RETURN"])
    egress.append(["-j", s])
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


def _host(ip):
    return ip + ("/128" if ":" in ip else "/32")


def hook_rules(vifs, version, public_interface=None):
    """The chains that lead to the ports' chains (see the module's
    docstring); vifs: [(Network, Port)]."""
    forward, sg, inp, routed, out = [], [], [], [], []
    for _, p in vifs:
        to_port = ["-m", "physdev", "--physdev-out", p.devname, "--physdev-is-bridged"]
        from_port = ["-m", "physdev", "--physdev-in", p.devname, "--physdev-is-bridged"]
        forward += [to_port + ["-j", SG_CHAIN], from_port + ["-j", SG_CHAIN]]
        sg += [to_port + ["-j", chain("i", p)], from_port + ["-j", chain("o", p)]]
        # delivered locally or routed, a packet is not "bridged" to physdev
        inp.append(["-m", "physdev", "--physdev-in", p.devname, "-j", chain("o", p)])
    if sg:
        sg.append(["-j", "ACCEPT"])
        forward.append(["-m", "physdev", "!", "--physdev-is-bridged", "-j", ROUTED_CHAIN])
    to_ports = [(["-d", _host(ip), "-o", n.bridge], p) for n, p in vifs
                for ip in p.ips(version)]
    routed += [["-m", "physdev", "--physdev-in", p.devname, "-j", chain("o", p)]
               for _, p in vifs]
    routed += [match + ["-j", chain("i", p)] for match, p in to_ports]
    # passed both ends' rules: accepted whatever FORWARD's own policy is, if
    # it leaves into a guest network or out of the public interface (ca-leave)
    routed += [["-m", "physdev", "--physdev-in", p.devname, "-j", LEAVE_CHAIN] for _, p in vifs]
    routed += [match + ["-j", "ACCEPT"] for match, _ in to_ports]
    out += [match + ["-j", chain("i", p)] for match, p in to_ports]
    if vifs:
        # whatever came in through a guest network's bridge (from a tap of
        # this host, or over the uplink from another host's guest) meets the
        # host guard once its port's egress chain let it through
        inp.append(["-i", BRIDGES, "-j", HOST_CHAIN])
    leave = [["-o", dev, "-j", "ACCEPT"]
             for dev in [BRIDGES] + ([public_interface] if public_interface else [])]
    return {FORWARD_CHAIN: forward, SG_CHAIN: sg, INPUT_CHAIN: inp, ROUTED_CHAIN: routed,
            OUTPUT_CHAIN: out, LEAVE_CHAIN: leave + [["-j", "DROP"]] if vifs else []}


def host_rules(vifs, version, metadata_port=None):
    """ca-to-host: what a guest may open to its host (reached from
    ca-input once the port's egress chain let the packet through): DHCP,
    ping, DNS (when the network names the host as its DNS server) and the
    metadata service (DNATed requests only) of its own network's host
    address, neighbour discovery on IPv6, replies to what the host opened;
    then DROP.  Accepted here, so a host whose INPUT policy drops still
    serves its guests."""
    accept = ["-j", "ACCEPT"]
    rules = [["-m", "state", "--state", "RELATED,ESTABLISHED", *accept]]
    if version == 4:
        rules.append(["-p", "udp", "-m", "udp", "--sport", "68", "--dport", "67", *accept])
    else:
        rules += [["-p", "ipv6-icmp", "-m", "icmp6", "--icmpv6-type", icmp, *accept]
                  for icmp in (RS, NS, NA)]
    networks = {n.id: n for n, _ in vifs}
    for n in (networks[k] for k in sorted(networks)):
        if not n.host_address or (":" in n.host_address) != (version == 6):
            continue
        to_host = ["-d", _host(n.host_address), "-i", n.bridge]
        if version == 4:
            rules.append(to_host + ["-p", "icmp", "-m", "icmp", "--icmp-type", "8", *accept])
        else:
            rules.append(to_host + ["-p", "ipv6-icmp", "-m", "icmp6", "--icmpv6-type", ECHO6,
                                    *accept])
        if n.host_address in n.dns_servers:
            rules += [to_host + ["-p", proto, "-m", proto, "--dport", "53", *accept]
                      for proto in ("udp", "tcp")]
        if metadata_port and n.metadata and version == 4:
            rules.append(to_host + ["-p", "tcp", "-m", "tcp", "--dport", str(metadata_port),
                                    "-m", "conntrack", "--ctstate", "DNAT", *accept])
    rules.append(["-j", "DROP"])
    return rules


def filter_chains(vifs, groups, version, members=None, metadata_port=None,
                  public_interface=None):
    """{chain: rules} of the filter table: hooks and every port's chains;
    vifs: [(Network, Port)]; metadata_port: the metadata service's, when it
    listens (its guard heads ca-input)."""
    chains = hook_rules(vifs, version, public_interface)
    if metadata_port and version == 4:
        chains[INPUT_CHAIN] = [metadata_guard(metadata_port)] + chains[INPUT_CHAIN]
    if vifs:
        chains[HOST_CHAIN] = host_rules(vifs, version, metadata_port)
    for _, p in vifs:
        chains.update(port_rules(p, groups, version, members))
    return chains


def console_rules(consoles, proxies, version):
    """ca-consoles (from INPUT): only the console proxies reach the serial
    and VNC port ranges of a console address other than loopback (which no
    one else reaches anyway); consoles: (address, (low, high)); proxies:
    addresses.  Nothing when no proxy is configured."""
    rules = []
    for address, (low, high) in consoles:
        if (":" in address) != (version == 6) or address in ("127.0.0.1", "::1") \
                or address.startswith("127.") or not proxies:
            continue
        ports = ["-p", "tcp", "-m", "tcp", "--dport",
                 str(low) if low == high else f"{low}:{high}"]
        rules += [["-s", _host(p), "-d", _host(address), *ports, "-j", "RETURN"]
                  for p in proxies if (":" in p) == (version == 6)]
        rules.append(["-d", _host(address), *ports, "-j", "DROP"])
    return rules


def group_members(ports, groups):
    """{group id: IPs} for remote-group rules: ports of the group on this
    host, plus the members the controller listed (ports on other hosts)."""
    members = {gid: set(g.members) for gid, g in groups.items()}
    for p in ports:
        for gid in p.security_groups:
            members.setdefault(gid, set()).update(p.fixed_ips)
    return {gid: tuple(sorted(ips)) for gid, ips in members.items()}


def tables(state, version, public_interface=None, metadata_port=None, consoles=(),
           proxies=()):
    """{table: {chain: rules}} of one IP version for a network.hoststate
    HostState; metadata_port: where the metadata service listens (used
    when state.metadata says it does); consoles and proxies: see
    console_rules (the host's configuration, never the caller's)."""
    vifs = sorted(state.vifs, key=lambda v: v[1].id)
    port = metadata_port if state.metadata else None
    out = {"filter": filter_chains(vifs, state.groups, version,
                                   group_members([p for _, p in vifs], state.groups), port,
                                   public_interface)}
    out["filter"][CONSOLE_CHAIN] = console_rules(consoles, proxies, version)
    if version == 4:
        out["nat"] = nat_chains(sorted(state.floating_ips, key=lambda f: f.address),
                                sorted(state.snat_networks, key=lambda n: n.id),
                                public_interface,
                                metadata_rules(vifs, port) if port else ())
    return out


def metadata_guard(port):
    """ca-input's first rule while the metadata service listens on port:
    only connections DNATed by ca-meta-pre (from a guest's own tap, with its
    own address) reach it, never one sent to the host's address directly."""
    return ["-p", "tcp", "-m", "tcp", "--dport", str(port), "-m", "conntrack", "!",
            "--ctstate", "DNAT", "-j", "DROP"]


def metadata_rules(vifs, port):
    """nat PREROUTING rules sending each port's requests to
    169.254.169.254:80 on to the metadata service at its network's host
    address; only for networks with metadata on, only from the port's own
    tap and fixed IPv4 addresses (the server knows the guest by them)."""
    return [["-s", _host(ip), "-d", METADATA_ADDRESS + "/32", "-i", n.bridge, "-p", "tcp",
             "-m", "physdev", "--physdev-in", p.devname, "-m", "tcp", "--dport", "80",
             "-j", "DNAT", "--to-destination", f"{n.host_address}:{port}"]
            for n, p in vifs if n.metadata and n.host_address for ip in p.ips(4)]


def nat_chains(floating_ips, snat_networks=(), public_interface=None, metadata=()):
    """{chain: rules} of the nat table (IPv4): DNAT of each floating
    address to its fixed one (from outside and from the host) and SNAT of
    that guest's traffic leaving its network; then the SNAT of every other
    guest of snat_networks (networks whose gateway is this host) to the
    public interface's address as it leaves there; metadata: the rules of
    metadata_rules."""
    pre, out, post = [], [], []
    for f in floating_ips:
        dnat = ["-d", f.address + "/32", "-j", "DNAT", "--to-destination", f.fixed_ip]
        pre.append(dnat)
        out.append(dnat)
        post.append(["-s", f.fixed_ip + "/32", "!", "-d", f.cidr, "-j", "SNAT",
                     "--to-source", f.address])
    if public_interface:
        post += [["-s", n.cidr, "!", "-d", n.cidr, "-o", public_interface, "-j",
                  "MASQUERADE"] for n in snat_networks]
    return {FLOAT_PRE: pre, FLOAT_OUT: out, SNAT_CHAIN: post, METADATA_PRE: list(metadata)}


# The built-in chains that jump to ours: (table, built-in, our chain).
JUMPS = [("filter", "FORWARD", FORWARD_CHAIN), ("filter", "INPUT", INPUT_CHAIN),
         ("filter", "INPUT", CONSOLE_CHAIN),
         ("filter", "OUTPUT", OUTPUT_CHAIN),
         ("nat", "PREROUTING", FLOAT_PRE), ("nat", "PREROUTING", METADATA_PRE),
         ("nat", "OUTPUT", FLOAT_OUT),
         ("nat", "POSTROUTING", SNAT_CHAIN)]


def owned(name):
    return name.startswith(PREFIX)


def parse_save(text):
    """{table: ({our chain: [its rules as text]}, [(built-in, target)] of
    jumps to ours)} of an `iptables-save` output."""
    tables, table = {}, None
    for line in text.splitlines():
        if line.startswith("*"):
            table = line[1:].strip()
            tables[table] = ({}, [])
        elif line.startswith(":") and owned(line[1:].split()[0]):
            tables[table][0].setdefault(line[1:].split()[0], [])
        elif line.startswith("-A "):
            words = line.split()
            if owned(words[1]):
                tables[table][0].setdefault(words[1], []).append(" ".join(words[2:]))
            elif len(words) == 4 and words[2] == "-j" and owned(words[3]):
                tables[table][1].append((words[1], words[3]))
    return tables


def render(desired, current):
    """The iptables-restore --noflush input that turns current (parse_save)
    into desired ({table: {chain: rules}}; empty chains are removed, and so
    are their jumps): a chain of ours whose rules differ is declared (so
    replaced whole), one that matches is left alone, jumps from built-in
    chains are added once or deleted, stale chains removed.  Rules are
    written as iptables-save prints them, so what is installed compares
    equal.  Chains and rules the agent does not own are never named."""
    out = []
    for table in sorted(set(desired) | set(current)):
        wanted = {c: r for c, r in desired.get(table, {}).items() if r}
        have, jumps = current.get(table, ({}, []))
        stale = sorted(set(have) - set(wanted))
        deletes, inserts = jump_changes(table, wanted, jumps)
        changed = sorted(name for name, rules in wanted.items()
                         if have.get(name) != [" ".join(r) for r in rules])
        if not changed and not stale and not deletes and not inserts:
            continue
        lines = [f":{name} - [0:0]" for name in sorted(changed + stale)]
        for name in changed:
            lines += [" ".join(["-A", name, *r]) for r in wanted[name]]
        out += [f"*{table}", *lines, *deletes, *inserts, *[f"-X {n}" for n in stale],
                "COMMIT"]
    return "\n".join(out) + "\n" if out else ""


def jump_changes(table, wanted, jumps):
    """(-D lines, -I lines) that make the jumps from each built-in chain to
    ours exactly those of JUMPS whose chain is wanted, once each, at the top
    and in JUMPS' order, whatever order the history left them in (so a
    restart rebuilds the same rules); jumps: [(built-in, target)] as
    installed, in order."""
    deletes, inserts = [], []
    for builtin in sorted({b for t, b, _ in JUMPS if t == table} | {b for b, _ in jumps}):
        should = [target for t, b, target in JUMPS
                  if t == table and b == builtin and target in wanted]
        now = [target for b, target in jumps if b == builtin]
        if now == should:
            continue
        deletes += [f"-D {builtin} -j {target}" for target in now]
        inserts += [f"-I {builtin} 1 -j {target}" for target in reversed(should)]
    return deletes, inserts


def ruleset(vifs, groups, version, members=None, current=None):
    """The filter table of vifs as iptables-restore input, from the state
    current (parse_save; None: nothing of ours yet)."""
    return render({"filter": filter_chains(vifs, groups, version, members)}, current or {})
