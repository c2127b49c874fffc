"""The iptables rules of a port, from its security groups (pure)."""
from network import firewall
from network.model import Port, Rule, SecurityGroup

PORT = Port(id="8a3b7c2d-1111-4222-8333-444455556666", network_id="net1",
            mac="52:54:00:12:34:56", fixed_ips=("10.0.0.5", "fd00::5"),
            security_groups=("web",))
GROUPS = {"web": SecurityGroup("web", (
    Rule("ingress", "IPv4", "icmp", remote_ip_prefix="10.0.0.0/24"),
    Rule("ingress", "IPv4", "tcp", 22, 22),
    Rule("ingress", "IPv4", "tcp", 8000, 8080, remote_group_id="lb"),
    Rule("ingress", "IPv6", "tcp", 443),
    Rule("egress", "IPv4"),
))}


def joined(rules):
    return [" ".join(r) for r in rules]


def test_tap_name_fits_ifnamsiz():
    assert PORT.devname == "tap8a3b7c2d-11" and len(PORT.devname) <= 15


def test_ingress_is_default_deny_with_group_rules_allowed():
    chains = firewall.port_rules(PORT, GROUPS, 4, {"lb": ("10.0.0.9", "fd00::9")})
    ingress = joined(chains["ca-i8a3b7c2d-1"])
    assert ingress[0] == "-m state --state RELATED,ESTABLISHED -j RETURN"
    assert "-s 10.0.0.0/24 -p icmp -j RETURN" in ingress
    assert "-p tcp -m tcp --dport 22 -j RETURN" in ingress
    assert "-s 10.0.0.9/32 -p tcp -m tcp --dport 8000:8080 -j RETURN" in ingress
    assert not any("443" in r or "fd00" in r for r in ingress)      # IPv6 rules elsewhere
    assert ingress[-1] == "-j DROP"


def test_egress_allows_dhcp_then_checks_spoofing_and_blocks_dhcp_servers():
    chains = firewall.port_rules(PORT, GROUPS, 4)
    egress = joined(chains["ca-o8a3b7c2d-1"])
    dhcp = egress.index("-s 0.0.0.0/32 -d 255.255.255.255/32 -p udp -m udp --sport 68 "
                        "--dport 67 -j RETURN")
    spoof = egress.index("-j ca-s8a3b7c2d-1")
    server = egress.index("-p udp -m udp --sport 67 --dport 68 -j DROP")
    assert dhcp < spoof < server
    assert egress[-2:] == ["-j RETURN", "-j DROP"]                  # egress rule: any
    assert joined(chains["ca-s8a3b7c2d-1"]) == [
        "-s 10.0.0.5/32 -m mac --mac-source 52:54:00:12:34:56 -j RETURN", "-j DROP"]


def test_ipv6_blocks_router_advertisements_from_the_guest():
    chains = firewall.port_rules(PORT, GROUPS, 6)
    egress = joined(chains["ca-o8a3b7c2d-1"])
    assert "-p ipv6-icmp -m icmp6 --icmpv6-type router-advertisement -j DROP" in egress
    assert "-p tcp -m tcp --dport 443 -j RETURN" in joined(chains["ca-i8a3b7c2d-1"])
    assert joined(chains["ca-s8a3b7c2d-1"])[0] == (
        "-s fd00::5/128 -m mac --mac-source 52:54:00:12:34:56 -j RETURN")


def test_ruleset_declares_every_chain_it_fills():
    text = firewall.ruleset([PORT], GROUPS, 4)
    lines = text.splitlines()
    declared = {line[1:].split()[0] for line in lines if line.startswith(":")}
    filled = {line.split()[1] for line in lines if line.startswith("-A ")}
    assert lines[0] == "*filter" and lines[-1] == "COMMIT"
    assert filled <= declared and firewall.HOOK_CHAIN in declared
    assert "-A ca-sg-chain -m physdev --physdev-out tap8a3b7c2d-11 --physdev-is-bridged " \
           "-j ca-i8a3b7c2d-1" in lines
