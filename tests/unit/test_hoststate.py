"""The firewall's input as it crosses to the privileged side
(network.hoststate): the agent's own state round-trips, and a hostile
caller's cannot decode into anything the agent would not render (pure)."""
import copy
import ipaddress

import pytest

from network import firewall, hoststate
from network.model import FloatingIP, Network, Port, Rule, SecurityGroup, Segmentation

NET = Network("net1", "brcanet1", Segmentation("flat"), "10.0.0.0/24", "10.0.0.1",
              host_address="10.0.0.1", dns_servers=("10.0.0.1",), metadata=True)
NET6 = Network("net6", "brcanet6", Segmentation("flat"), "fd00::/64",
               host_address="fd00::1")
PORT = Port("8a3b7c2d-1111-4222-8333-444455556666", "net1", "52:54:00:12:34:56",
            ("10.0.0.5",), ("web",))
PORT6 = Port("p6", "net6", "52:54:00:12:34:57", ("fd00::5",), ("web",))
GROUPS = {"web": SecurityGroup("web", (Rule("ingress", "IPv4", "tcp", 22, 22),
                                       Rule("egress", "IPv4"),
                                       Rule("ingress", "IPv6", "icmpv6",
                                            remote_group_id="web")), ("10.0.1.9",))}
FLOAT = FloatingIP("203.0.113.10", "10.0.0.5", PORT.id, "10.0.0.0/24")
LIMITS = hoststate.Limits(("203.0.113.0/24",), (ipaddress.ip_network("10.250.0.0/24"),
                                                ipaddress.ip_network("127.0.0.0/8"),
                                                ipaddress.ip_network("203.0.113.0/24")))


def wire():
    return hoststate.to_wire([(NET, PORT), (NET6, PORT6)], GROUPS, [FLOAT], [NET], True)


def test_the_agents_state_round_trips_into_the_same_rules():
    state = hoststate.from_wire(wire(), LIMITS)
    assert state.vifs == ((NET, PORT), (NET6, PORT6))      # by port id
    assert state.groups == GROUPS and state.floating_ips == (FLOAT,) and state.metadata
    for version in (4, 6):
        direct = firewall.tables(hoststate.HostState(((NET, PORT), (NET6, PORT6)), GROUPS,
                                                     (FLOAT,), (NET,), True),
                                 version, "pub0", 8775)
        assert firewall.tables(state, version, "pub0", 8775) == direct


def _set(path, value):
    def change(doc):
        target = doc
        for key in path[:-1]:
            target = target[key]
        if value is KeyError:
            del target[path[-1]]
        else:
            target[path[-1]] = value
        return doc
    return change


HOSTILE = {      # what: (the change, what the refusal says)
    "a ruleset as text": (lambda d: "*filter\n-A INPUT -j ACCEPT\nCOMMIT\n", "not a mapping"),
    "an nft line as text": (lambda d: "ip filter INPUT accept", "not a mapping"),
    "a list instead of the state": (lambda d: [d], "not a mapping"),
    "an unknown key (a raw rule)": (_set(("rules",), ["-A INPUT -j ACCEPT"]), "unknown keys"),
    "an unknown key in a network": (_set(("networks", "net1", "chain"), "INPUT"),
                                    "unknown keys"),
    "a network on the management subnet": (_set(("networks", "net1", "cidr"),
                                                 "10.250.0.0/24"), "outside|overlaps"),
    "a network covering everything": (_set(("networks", "net1", "cidr"), "0.0.0.0/0"),
                                      "not a subnet"),
    "a bridge not the agent's": (_set(("networks", "net1", "bridge"), "mgmt0"),
                                 "not one of this agent's bridges"),
    "a bridge with an option": (_set(("networks", "net1", "bridge"), "brca -j ACCEPT"),
                                "not an accepted name"),
    "a bridge that is an iptables wildcard": (_set(("networks", "net1", "bridge"), "brca+"),
                                              "not one of this agent's bridges"),
    "a host address outside its network": (_set(("networks", "net1", "host_address"),
                                                "10.250.0.11"), "is outside"),
    "a port address outside its network": (_set(("ports", 0, "fixed_ips"), ["10.250.0.11"]),
                                           "is outside"),
    "a port taking the host address": (_set(("ports", 0, "fixed_ips"), ["10.0.0.1"]),
                                       "network's own address"),
    "a port of no listed network": (_set(("ports", 0, "network"), "mgmt"),
                                    "not a listed network"),
    "a port of a group not listed": (_set(("ports", 0, "security_groups"), ["ghost"]),
                                     "not listed"),
    "a MAC with a rule in it": (_set(("ports", 0, "mac"), "52:54:00:12:34:56 -j ACCEPT"),
                                "not a MAC"),
    "a multicast MAC": (_set(("ports", 0, "mac"), "01:00:5e:00:00:01"), "multicast"),
    "a port id with a newline": (_set(("ports", 0, "id"), "p\n-A INPUT -j ACCEPT"),
                                 "not an accepted name"),
    "a protocol outside the set": (_set(("groups", "web", "rules", 0, "protocol"),
                                        "all -j ACCEPT"), "protocol"),
    "a direction outside the set": (_set(("groups", "web", "rules", 0, "direction"),
                                         "INPUT"), "direction"),
    "a port number as text": (_set(("groups", "web", "rules", 0, "port_range_min"),
                                   "22 -j ACCEPT"), "not an integer"),
    "a port number out of range": (_set(("groups", "web", "rules", 0, "port_range_min"),
                                        70000), "not an integer"),
    "a boolean as a port": (_set(("groups", "web", "rules", 0, "port_range_min"), True),
                            "not an integer"),
    "a prefix with a target": (_set(("groups", "web", "rules", 0, "remote_ip_prefix"),
                                    "0.0.0.0/0 -j DNAT"), "not a CIDR"),
    "a target in a rule": (_set(("groups", "web", "rules", 0, "target"), "ACCEPT"),
                           "unknown keys"),
    "a member that is no address": (_set(("groups", "web", "members"), ["-j ACCEPT"]),
                                    "not an IP address"),
    "a floating IP outside the ranges": (_set(("floating_ips", 0, "address"), "10.250.0.1"),
                                         "floating_ranges"),
    "a floating IP that is a range's network": (_set(("floating_ips", 0, "address"),
                                                     "203.0.113.0"), "floating_ranges"),
    "a floating IP to another address (DNAT anywhere)": (
        _set(("floating_ips", 0, "fixed_ip"), "10.250.0.5"), "not a fixed IPv4 address"),
    "a floating IP of a port not listed": (_set(("floating_ips", 0, "port"), "ghost"),
                                           "not a fixed IPv4 address"),
    "SNAT of a network not listed": (_set(("snat_networks",), ["mgmt"]), "snat_networks"),
    "SNAT of an IPv6 network": (_set(("snat_networks",), ["net6"]), "snat_networks"),
    "metadata as text": (_set(("metadata",), "8775 -j ACCEPT"), "not a boolean"),
    "too many ports": (lambda d: {**d, "ports": d["ports"] * 3000}, "at most"),
    "a port listed twice": (lambda d: {**d, "ports": d["ports"] + d["ports"][:1]},
                            "listed twice"),
}


@pytest.mark.parametrize("what", sorted(HOSTILE))
def test_a_hostile_state_is_refused(what):
    change, reason = HOSTILE[what]
    doc = change(copy.deepcopy(wire()))
    with pytest.raises(ValueError, match=reason):
        hoststate.from_wire(doc, LIMITS)


@pytest.mark.parametrize("cidr,ip,reason", [
    ("10.250.0.128/25", "10.250.0.130", "overlaps 10.250.0.0/24"),    # management
    ("203.0.113.0/25", "203.0.113.5", "overlaps 203.0.113.0/24"),     # public
    ("127.0.0.0/8", "127.0.0.5", "not a subnet"),
    ("169.254.0.0/16", "169.254.0.5", "not a subnet"),
    ("224.0.0.0/4", "224.0.0.5", "not a subnet"),
])
def test_a_network_may_not_overlap_what_the_host_holds_elsewhere(cidr, ip, reason):
    doc = wire()
    doc["networks"]["net1"]["cidr"] = cidr
    doc["ports"][0]["fixed_ips"] = [ip]
    doc["networks"]["net1"].update(gateway=None, host_address=None, dns_servers=[],
                                   metadata=False)
    doc["floating_ips"], doc["snat_networks"] = [], []
    with pytest.raises(ValueError, match=reason):
        hoststate.from_wire(doc, LIMITS)
