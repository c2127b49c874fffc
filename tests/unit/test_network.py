"""Networking logic that needs no host: payload parsing, the commands the
linux_bridge plugin runs (VLAN included: these kernels cannot make one),
the iptables diff renderer and the dnsmasq command line."""
import pytest

from compute import schemas
from compute.exception import InvalidRequest
from network import dhcp, firewall, linux_bridge, linux_net
from network.model import FloatingIP, network_from_payload, vif_from_payload
from tests.unit.test_firewall import GROUPS, PORT

NET = {"id": "net1", "bridge": "brnet1", "cidr": "10.0.0.0/24", "dhcp": True,
       "host_address": "10.0.0.2", "gateway": "10.0.0.1", "mtu": 1450,
       "segmentation": {"type": "vlan", "vlan_id": 100, "physical_interface": "data0"}}
VIF = {"network": NET, "port": {"id": "8a3b7c2d-1111-4222-8333-444455556666",
                                "mac": "FA:16:3E:00:00:0B", "fixed_ips": ["10.0.0.11"],
                                "security_groups": ["web"]}}


def build(**extra):
    return {"instance_uuid": "8a3b7c2d-1111-4222-8333-444455556666", "name": "n",
            "flavor": {"vcpus": 1, "memory_mb": 128, "root_gb": 1}, "image_id": "img",
            **extra}


# -- payloads ---------------------------------------------------------------------

def test_a_valid_network_payload_passes_schema_and_model():
    schemas.validate("build_and_run_instance",
                     build(networks=[VIF], security_groups=[{"id": "web", "rules": []}]))
    net, port = vif_from_payload(VIF)
    assert net.segmentation.vlan_id == 100 and net.prefixlen == 24
    assert port.mac == "fa:16:3e:00:00:0b" and port.devname == "tap8a3b7c2d-11"


@pytest.mark.parametrize("change,field", [
    ({"bridge": "br; rm -rf /"}, "bridge"),
    ({"segmentation": {"type": "vlan", "vlan_id": 5000, "physical_interface": "d0"}},
     "segmentation"),
    ({"segmentation": {"type": "gre"}}, "segmentation"),
    ({"cidr": "10.0.0.0"}, "cidr"),
    ({"mtu": 70000}, "mtu"),
])
def test_schema_refuses_bad_networks(change, field):
    bad = {"network": dict(NET, **change), "port": VIF["port"]}
    with pytest.raises(InvalidRequest, match=field):
        schemas.validate("build_and_run_instance", build(networks=[bad]))


@pytest.mark.parametrize("net,port,message", [
    ({}, {"fixed_ips": ["10.9.0.11"]}, "outside 10.0.0.0/24"),
    ({"gateway": "10.1.1.1"}, {}, "gateway: 10.1.1.1 is outside"),
    ({"cidr": "10.0.0.0/33"}, {}, "cidr"),
    ({}, {"fixed_ips": ["10.0.0.300"]}, "not an IP address"),
])
def test_model_refuses_what_the_schema_cannot_see(net, port, message):
    item = {"network": dict(NET, **net), "port": dict(VIF["port"], **port)}
    with pytest.raises(ValueError, match=message):
        vif_from_payload(item)


def test_vxlan_needs_a_local_address():
    with pytest.raises(ValueError, match="local_ip"):
        network_from_payload(dict(NET, segmentation={"type": "vxlan", "vni": 7}))


# -- linux_bridge commands ----------------------------------------------------------

@pytest.fixture
def commands(monkeypatch):
    ran, devices = [], set()

    def execute(*argv, process_input=None):
        ran.append(" ".join(argv))
        if argv[:3] == ("ip", "link", "add"):
            devices.add(argv[argv.index("name") + 1] if "name" in argv else argv[3])
        return ""
    monkeypatch.setattr(linux_net, "execute", execute)
    monkeypatch.setattr(linux_net, "exists", lambda dev: dev in devices)
    monkeypatch.setattr(linux_net, "master_of", lambda dev: None)
    monkeypatch.setattr(linux_net, "addresses", lambda dev: set())
    return ran, devices


def test_vlan_network_gets_a_subinterface_as_uplink(commands):
    ran, devices = commands
    net, port = vif_from_payload(VIF)
    plugin = linux_bridge.LinuxBridgePlugin()
    plugin.plug(net, plugin.describe(net, port))
    assert ran == [
        "ip link add brnet1 type bridge forward_delay 0 stp_state 0",
        "ip link set brnet1 mtu 1450", "ip link set brnet1 up",
        "ip link add link data0 name data0.100 type vlan id 100",
        "ip link set data0.100 mtu 1450", "ip link set data0.100 up",
        "ip link set data0.100 master brnet1", "ip link set data0.100 up",
        "ip addr add 10.0.0.2/24 dev brnet1"]
    ran.clear()
    plugin.plug(net, plugin.describe(net, port))      # idempotent: nothing re-created
    assert not any(" add " in c and "link" in c for c in ran)
    ran.clear()
    plugin.release(net)
    assert ran == ["ip link del data0.100", "ip link del brnet1"]


def test_vlan_device_name_fits_ifnamsiz():
    assert linux_net.vlan_device_name("enp129s0f1np1", 4094) == "enp129s0f1.4094"


def test_vxlan_uplink_floods_to_its_peers(commands, monkeypatch):
    ran, _ = commands
    monkeypatch.setattr(linux_net, "fdb_flood_peers", lambda dev: {"10.250.0.13"})
    net = network_from_payload(dict(NET, segmentation={
        "type": "vxlan", "vni": 200, "local_ip": "10.250.0.11", "peers": ["10.250.0.12"],
        "physical_interface": "mgmt0"}))
    linux_bridge.LinuxBridgePlugin().plug(net, {})
    assert ("ip link add vxlan-200 type vxlan id 200 dstport 4789 local 10.250.0.11 "
            "nolearning dev mgmt0") in ran
    assert "bridge fdb append 00:00:00:00:00:00 dev vxlan-200 dst 10.250.0.12" in ran
    assert "bridge fdb del 00:00:00:00:00:00 dev vxlan-200 dst 10.250.0.13" in ran


# -- iptables diff -------------------------------------------------------------------

def test_render_adds_each_jump_once_and_removes_everything_when_empty():
    desired = {"filter": firewall.filter_chains([PORT], GROUPS, 4)}
    first = firewall.render(desired, {})
    assert "-I FORWARD 1 -j ca-forward" in first and "-I INPUT 1 -j ca-input" in first
    current = firewall.parse_save(first.replace("-I FORWARD 1", "-A FORWARD")
                                  .replace("-I INPUT 1", "-A INPUT"))
    again = firewall.render(desired, current)
    assert "-I FORWARD" not in again and "-D " not in again
    empty = firewall.render({"filter": firewall.filter_chains([], {}, 4)}, current)
    lines = empty.splitlines()
    assert "-D FORWARD -j ca-forward" in lines and "-X ca-i8a3b7c2d-1" in lines
    assert lines.index("-D FORWARD -j ca-forward") < lines.index("-X ca-forward")
    assert not [line for line in lines if line.startswith("-A ")]


def test_render_leaves_other_chains_alone():
    current = firewall.parse_save("*filter\n:FORWARD ACCEPT [0:0]\n:mine - [0:0]\n"
                                  "-A FORWARD -j mine\nCOMMIT\n")
    assert firewall.render({"filter": {}}, current) == ""


def test_guest_to_host_traffic_passes_the_egress_chain():
    hooks = firewall.hook_rules([PORT])
    assert hooks[firewall.INPUT_CHAIN] == [
        ["-m", "physdev", "--physdev-in", PORT.devname, "-j", "ca-o8a3b7c2d-1"]]


def test_floating_ip_nat_skips_traffic_within_the_network():
    chains = firewall.nat_chains([FloatingIP("203.0.113.10", "10.0.0.11", PORT.id,
                                             "10.0.0.0/24")])
    assert chains[firewall.FLOAT_PRE] == [["-d", "203.0.113.10/32", "-j", "DNAT",
                                           "--to-destination", "10.0.0.11"]]
    assert chains[firewall.FLOAT_POST] == [["-s", "10.0.0.11/32", "!", "-d", "10.0.0.0/24",
                                            "-j", "SNAT", "--to-source", "203.0.113.10"]]


# -- dnsmasq ------------------------------------------------------------------------------

def test_dnsmasq_serves_only_static_entries_on_the_bridge():
    net, port = vif_from_payload(VIF)
    argv = dhcp.dnsmasq_argv(net, "/d", 600)
    assert "--dhcp-range=10.0.0.0,static,255.255.255.0,600s" in argv
    assert "--interface=brnet1" in argv and "--port=0" in argv
    assert "--dhcp-option=3,10.0.0.1" in argv and "--dhcp-option=26,1450" in argv
    assert dhcp.hosts_file_text([port]) == "fa:16:3e:00:00:0b,10.0.0.11\n"
    assert dhcp.serves(net)
    assert not dhcp.serves(network_from_payload(dict(NET, host_address=None)))
