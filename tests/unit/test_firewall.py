"""The iptables rules of a port, from its security groups (pure)."""
from network import firewall, names
from network.model import Network, Port, Rule, SecurityGroup, Segmentation

PORT = Port(id="8a3b7c2d-1111-4222-8333-444455556666", network_id="net1",
            mac="52:54:00:12:34:56", fixed_ips=("10.0.0.5", "fd00::5"),
            security_groups=("web",))
NET = Network("net1", "brcanet1", Segmentation("flat"), "10.0.0.0/24", "10.0.0.1",
              host_address="10.0.0.1")
GROUPS = {"web": SecurityGroup("web", (
    Rule("ingress", "IPv4", "icmp", remote_ip_prefix="10.0.0.0/24"),
    Rule("ingress", "IPv4", "tcp", 22, 22),
    Rule("ingress", "IPv4", "tcp", 8000, 8080, remote_group_id="lb"),
    Rule("ingress", "IPv6", "tcp", 443),
    Rule("egress", "IPv4"),
))}
IN, OUT, SPOOF = (firewall.chain(k, PORT) for k in "ios")


def joined(rules):
    return [" ".join(r) for r in rules]


def test_names_come_from_a_hash_of_the_whole_id():
    twin = Port(id="8a3b7c2d-1111-4222-8333-999999999999", network_id="net1",
                mac="52:54:00:12:34:57")
    assert PORT.devname.startswith("tap") and len(PORT.devname) == 15
    assert PORT.devname != twin.devname                 # same 11-char prefix, other port
    assert firewall.chain("i", PORT) != firewall.chain("i", twin)
    assert len(IN) <= 28                                # iptables' chain name limit
    assert names.bridge("net1") != names.bridge("net2")
    assert len(names.bridge("n" * 64)) == 15


def test_ingress_is_default_deny_with_group_rules_allowed():
    chains = firewall.port_rules(PORT, GROUPS, 4, {"lb": ("10.0.0.9", "fd00::9")})
    ingress = joined(chains[IN])
    assert ingress[0] == "-m state --state RELATED,ESTABLISHED -j RETURN"
    assert "-s 10.0.0.0/24 -p icmp -j RETURN" in ingress
    assert "-p tcp -m tcp --dport 22 -j RETURN" in ingress
    assert "-s 10.0.0.9/32 -p tcp -m tcp --dport 8000:8080 -j RETURN" in ingress
    assert not any("443" in r or "fd00" in r for r in ingress)      # IPv6 rules elsewhere
    assert ingress[-1] == "-j DROP"


def test_egress_allows_dhcp_then_checks_spoofing():
    chains = firewall.port_rules(PORT, GROUPS, 4)
    egress = joined(chains[OUT])
    dhcp = egress.index("-s 0.0.0.0/32 -d 255.255.255.255/32 -p udp -m udp --sport 68 "
                        "--dport 67 -j RETURN")
    assert dhcp < egress.index(f"-j {SPOOF}")
    assert egress[-2:] == ["-j RETURN", "-j DROP"]                  # egress rule: any
    assert joined(chains[SPOOF]) == [
        "-s 10.0.0.5/32 -m mac --mac-source 52:54:00:12:34:56 -j RETURN", "-j DROP"]


def test_ipv6_rules_and_spoofing():
    chains = firewall.port_rules(PORT, GROUPS, 6)
    assert "-p tcp -m tcp --dport 443 -j RETURN" in joined(chains[IN])
    assert joined(chains[SPOOF])[0] == (
        "-s fd00::5/128 -m mac --mac-source 52:54:00:12:34:56 -j RETURN")


def test_bridged_traffic_meets_both_ends_and_routed_traffic_does_too():
    hooks = {k: joined(v) for k, v in firewall.hook_rules([(NET, PORT)], 4).items()}
    tap = PORT.devname
    assert hooks[firewall.FORWARD_CHAIN] == [
        f"-m physdev --physdev-out {tap} --physdev-is-bridged -j ca-sg-chain",
        f"-m physdev --physdev-in {tap} --physdev-is-bridged -j ca-sg-chain",
        "-m physdev ! --physdev-is-bridged -j ca-routed"]
    # routed to the guest (a floating IP's DNAT, the host as its gateway):
    # out through its bridge to its address, through its ingress chain
    assert hooks[firewall.ROUTED_CHAIN] == [
        f"-m physdev --physdev-in {tap} -j {OUT}",
        f"-d 10.0.0.5/32 -o brcanet1 -j {IN}",
        f"-m physdev --physdev-in {tap} -j ca-leave",
        "-d 10.0.0.5/32 -o brcanet1 -j ACCEPT"]
    assert hooks[firewall.OUTPUT_CHAIN] == [f"-d 10.0.0.5/32 -o brcanet1 -j {IN}"]
    assert hooks[firewall.INPUT_CHAIN] == [f"-m physdev --physdev-in {tap} -j {OUT}",
                                           "-i brca+ -j ca-to-host"]
    # the routed rules come after the bridged ones, whose chain accepts
    assert joined(firewall.hook_rules([(NET, PORT)], 6)[firewall.OUTPUT_CHAIN]) == [
        f"-d fd00::5/128 -o brcanet1 -j {IN}"]


def test_ruleset_declares_every_chain_it_fills():
    text = firewall.ruleset([(NET, PORT)], GROUPS, 4)
    lines = text.splitlines()
    declared = {line[1:].split()[0] for line in lines if line.startswith(":")}
    filled = {line.split()[1] for line in lines if line.startswith("-A ")}
    assert lines[0] == "*filter" and lines[-1] == "COMMIT"
    assert filled <= declared and firewall.ROUTED_CHAIN in declared
    assert f"-A ca-sg-chain -m physdev --physdev-out {PORT.devname} --physdev-is-bridged " \
           f"-j {IN}" in lines
    assert "-I OUTPUT 1 -j ca-output" in lines


def test_routed_traffic_from_a_guest_leaves_only_into_guest_networks_or_the_public_side():
    hooks = {k: joined(v) for k, v in firewall.hook_rules([(NET, PORT)], 4, "pub0").items()}
    assert f"-m physdev --physdev-in {PORT.devname} -j ca-leave" in hooks[firewall.ROUTED_CHAIN]
    assert hooks[firewall.LEAVE_CHAIN] == ["-o brca+ -j ACCEPT", "-o pub0 -j ACCEPT",
                                           "-j DROP"]
    assert joined(firewall.hook_rules([(NET, PORT)], 4)[firewall.LEAVE_CHAIN]) == [
        "-o brca+ -j ACCEPT", "-j DROP"]                 # no public interface: bridges only
    assert firewall.hook_rules([], 4)[firewall.LEAVE_CHAIN] == []


def test_a_guest_reaches_of_its_host_only_dhcp_ping_dns_and_metadata():
    net = Network("net1", "brcanet1", Segmentation("flat"), "10.0.0.0/24", "10.0.0.1",
                  host_address="10.0.0.1", dns_servers=("10.0.0.1", "192.0.2.53"),
                  metadata=True)
    guard = joined(firewall.host_rules([(net, PORT)], 4, 8775))
    assert guard == [
        "-m state --state RELATED,ESTABLISHED -j ACCEPT",
        "-p udp -m udp --sport 68 --dport 67 -j ACCEPT",
        "-d 10.0.0.1/32 -i brcanet1 -p icmp -m icmp --icmp-type 8 -j ACCEPT",
        "-d 10.0.0.1/32 -i brcanet1 -p udp -m udp --dport 53 -j ACCEPT",
        "-d 10.0.0.1/32 -i brcanet1 -p tcp -m tcp --dport 53 -j ACCEPT",
        "-d 10.0.0.1/32 -i brcanet1 -p tcp -m tcp --dport 8775 -m conntrack --ctstate DNAT "
        "-j ACCEPT",
        "-j DROP"]
    # no DNS server on the host, no metadata: ping and DHCP only
    assert joined(firewall.host_rules([(NET, PORT)], 4)) == guard[:3] + ["-j DROP"]
    six = joined(firewall.host_rules([(NET, PORT)], 6))
    assert six[-1] == "-j DROP" and not any("--dport" in r for r in six)
    assert [r for r in six if "icmpv6-type" in r] == [
        f"-p ipv6-icmp -m icmp6 --icmpv6-type {t} -j ACCEPT" for t in ("133", "135", "136")]


def test_the_guard_is_reached_whatever_the_egress_rules_allow():
    allow_all = {"web": SecurityGroup("web", (Rule("egress", "IPv4"), Rule("egress", "IPv6")))}
    for version in (4, 6):
        chains = firewall.filter_chains([(NET, PORT)], allow_all, version)
        inp = joined(chains[firewall.INPUT_CHAIN])
        assert inp[-1] == "-i brca+ -j ca-to-host"          # after every port's egress
        assert inp.index(f"-m physdev --physdev-in {PORT.devname} -j {OUT}") < len(inp) - 1
        assert joined(chains[firewall.HOST_CHAIN])[-1] == "-j DROP"
    assert firewall.HOST_CHAIN not in firewall.filter_chains([], {}, 4)


def test_console_ports_answer_only_the_proxies_unless_on_loopback():
    consoles = [("10.250.0.11", (5900, 6099)), ("10.250.0.11", (10000, 10099)),
                ("127.0.0.1", (10100, 10199))]
    rules = joined(firewall.console_rules(consoles, ["10.250.0.1"], 4))
    assert rules == [
        "-s 10.250.0.1/32 -d 10.250.0.11/32 -p tcp -m tcp --dport 5900:6099 -j RETURN",
        "-d 10.250.0.11/32 -p tcp -m tcp --dport 5900:6099 -j DROP",
        "-s 10.250.0.1/32 -d 10.250.0.11/32 -p tcp -m tcp --dport 10000:10099 -j RETURN",
        "-d 10.250.0.11/32 -p tcp -m tcp --dport 10000:10099 -j DROP"]
    assert firewall.console_rules(consoles, [], 4) == []          # no proxy configured
    assert firewall.console_rules(consoles, ["10.250.0.1"], 6) == []
    from network.hoststate import HostState
    tables = firewall.tables(HostState(), 4, consoles=consoles, proxies=["10.250.0.1"])
    assert tables["filter"][firewall.CONSOLE_CHAIN] and ("filter", "INPUT",
                                                         firewall.CONSOLE_CHAIN) in firewall.JUMPS


def test_jumps_from_a_builtin_chain_keep_one_order_whatever_the_history():
    desired = {"filter": {firewall.INPUT_CHAIN: [["-j", "RETURN"]],
                          firewall.CONSOLE_CHAIN: [["-j", "RETURN"]]}}
    installed_later_above = {"filter": ({firewall.INPUT_CHAIN: ["-j RETURN"],
                                         firewall.CONSOLE_CHAIN: ["-j RETURN"]},
                                        [("INPUT", "ca-consoles"), ("INPUT", "ca-input")])}
    text = firewall.render(desired, installed_later_above).splitlines()
    assert text == ["*filter", "-D INPUT -j ca-consoles", "-D INPUT -j ca-input",
                    "-I INPUT 1 -j ca-consoles", "-I INPUT 1 -j ca-input", "COMMIT"]
    in_order = {"filter": (installed_later_above["filter"][0],
                           [("INPUT", "ca-input"), ("INPUT", "ca-consoles")])}
    assert firewall.render(desired, in_order) == ""
    # a chain no longer wanted: its jump goes before the chain does
    gone = firewall.render({"filter": {firewall.INPUT_CHAIN: [["-j", "RETURN"]]}},
                           in_order).splitlines()
    assert gone.index("-D INPUT -j ca-consoles") < gone.index("-X ca-consoles")
