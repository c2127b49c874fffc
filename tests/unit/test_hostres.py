"""Which host resources a payload may make the agent use (pure)."""
import pytest

from network import hostres, names
from network.model import network_from_payload

HOST = hostres.HostView(
    devices={"lo": "", "eth0": "", "data0": "", "mgmt0": "", "pub0": "",
             "brcaflat": names.owner_alias("flat1"), "br0": ""},
    addresses=(("lo", "127.0.0.1/8"), ("mgmt0", "10.250.0.11/24"),
               ("pub0", "203.0.113.1/24"), ("pub0", "203.0.113.10/32"),
               ("brcaflat", "10.0.0.2/24")),
    mappings={"physnet1": "data0", "physnet2": "eth0"}, tunnel_ip="10.250.0.11")


def net(**kw):
    d = {"id": "n1", "cidr": "10.5.0.0/24",
         "segmentation": {"type": "flat", "physical_network": "physnet1"}}
    d.update(kw)
    return network_from_payload(d)


FLAT1 = net(id="flat1", bridge="brcaflat", cidr="10.0.0.0/24", host_address="10.0.0.2")


def check(network, known=None):
    hostres.check_network(network, "network", HOST, known or {})


def test_a_network_the_host_serves_already_passes_again():
    check(FLAT1, {"flat1": FLAT1})


@pytest.mark.parametrize("network,message", [
    (net(segmentation={"type": "flat", "physical_network": "physnet9"}),
     "physical_network: 'physnet9' is not mapped on this host"),
    (net(bridge="brcaflat"), "device brcaflat exists on this host and is network flat1's"),
    (net(segmentation={"type": "vxlan", "vni": 5, "peers": ["10.250.0.11"]}),
     "peers: 10.250.0.11 is this host"),
    (net(host_address="10.250.5.2", cidr="10.250.0.0/16"), "overlaps 10.250.0.0/24"),
])
def test_refusals_name_the_field(network, message):
    with pytest.raises(ValueError, match=message):
        check(network)


def test_a_device_not_created_by_the_agent_is_never_used():
    host = hostres.HostView(dict(HOST.devices, brcaother=""), HOST.addresses, HOST.mappings,
                            HOST.tunnel_ip)
    with pytest.raises(ValueError, match="brcaother exists .* not created by this agent"):
        hostres.check_network(net(bridge="brcaother"), "network", host, {})


def test_two_networks_never_share_a_bridge_or_an_uplink():
    with pytest.raises(ValueError, match="bridge: brcaflat is the bridge of network flat1"):
        check(net(bridge="brcaflat"), {"flat1": FLAT1})
    with pytest.raises(ValueError, match="uplink carries network flat1"):
        check(net(), {"flat1": FLAT1})        # flat on physnet1 too
    vx = net(id="vx1", segmentation={"type": "vxlan", "vni": 7})
    with pytest.raises(ValueError, match="uplink carries network vx1"):
        check(net(segmentation={"type": "vxlan", "vni": 7}), {"vx1": vx})


def test_a_known_network_cannot_be_changed_by_a_payload():
    with pytest.raises(ValueError, match="served here already"):
        check(net(id="flat1", bridge="brcaflat", cidr="10.9.0.0/24"), {"flat1": FLAT1})


def test_vxlan_needs_the_configured_tunnel_address():
    host = hostres.HostView(HOST.devices, HOST.addresses, HOST.mappings, None)
    with pytest.raises(ValueError, match="no tunnel_local_ip"):
        hostres.check_network(net(segmentation={"type": "vxlan", "vni": 5}), "network",
                              host, {})
    assert hostres.uplink(net(segmentation={"type": "vxlan", "vni": 5}), {}) == "vxlan-5"


def test_the_host_address_may_not_be_one_the_host_uses():
    with pytest.raises(ValueError, match="in use on pub0"):
        check(net(cidr="203.0.113.0/24", host_address="203.0.113.1"))


@pytest.mark.parametrize("address,message", [
    ("127.0.0.1", "not a unicast address"),
    ("169.254.1.1", "not a unicast address"),
    ("224.0.0.1", "not a unicast address"),
    ("0.0.0.0", "not a unicast address"),
    ("198.51.100.7", "outside this host's floating_ranges"),
    ("203.0.113.1", "an address of this host"),
    ("203.0.113.255", "broadcast"),
    ("fd00::1", "only IPv4"),
    ("nonsense", "not an IP address"),
])
def test_floating_ips_only_from_the_configured_ranges(address, message):
    with pytest.raises(ValueError, match=message):
        hostres.check_floating_ip(address, "address", ["203.0.113.0/24"],
                                  [a for _, a in HOST.addresses], ["203.0.113.10"])


def test_a_floating_ip_the_agent_holds_may_be_given_again():
    hostres.check_floating_ip("203.0.113.10", "address", ["203.0.113.0/24"],
                              [a for _, a in HOST.addresses], ["203.0.113.10"])
    hostres.check_floating_ip("203.0.113.11", "address", ["203.0.113.0/24"], [], [])
