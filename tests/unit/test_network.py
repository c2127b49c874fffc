"""Networking logic that needs no host: payload parsing, the commands the
linux_bridge plugin runs (VLAN included: these kernels cannot make one),
the iptables diff renderer and the dnsmasq command line."""
import shlex
import types

import pytest

import privileged
from compute.core.exception import InvalidRequest
from compute.rpc import schemas
from network import dhcp, dnsmasq_args, firewall, linux_bridge, linux_net, names
from network.model import FloatingIP, network_from_payload, vif_from_payload
from privileged import firewall as priv_firewall
from privileged import network as priv
from tests.unit.test_firewall import GROUPS, PORT
from tests.unit.test_firewall import NET as FW_NET

NET = {"id": "net1", "bridge": "brcanet1", "cidr": "10.0.0.0/24", "dhcp": True,
       "host_address": "10.0.0.2", "gateway": "10.0.0.1", "mtu": 1450,
       "segmentation": {"type": "vlan", "vlan_id": 100, "physical_network": "physnet1"}}
VIF = {"network": NET, "port": {"id": "8a3b7c2d-1111-4222-8333-444455556666",
                                "mac": "FA:16:3E:00:00:0B", "fixed_ips": ["10.0.0.11"],
                                "security_groups": ["web"]}}
CONF = types.SimpleNamespace(network=types.SimpleNamespace(
    physical_interface_mappings={"physnet1": "data0"}, tunnel_local_ip="10.250.0.11"))


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
    assert port.mac == "fa:16:3e:00:00:0b" and port.devname == names.tap(port.id)


def test_a_network_without_bridge_gets_the_agents_own_name():
    net = network_from_payload({k: v for k, v in NET.items() if k != "bridge"})
    assert net.bridge == names.bridge("net1") and net.bridge.startswith("brca")


@pytest.mark.parametrize("change,field", [
    ({"bridge": "br; rm -rf /"}, "bridge"),
    ({"bridge": "eth0"}, "bridge"),                   # not one of the agent's bridges
    ({"bridge": "brcaok\n"}, "bridge"),               # a trailing newline is no name
    ({"segmentation": {"type": "vlan", "vlan_id": 5000, "physical_network": "p"}},
     "segmentation"),
    ({"segmentation": {"type": "flat", "physical_interface": "eth0"}}, "segmentation"),
    ({"segmentation": {"type": "vxlan", "vni": 5, "local_ip": "10.0.0.1"}}, "segmentation"),
    ({"segmentation": {"type": "gre"}}, "segmentation"),
    ({"cidr": "10.0.0.0"}, "cidr"),
    ({"cidr": "10.0.0.0/24\n"}, "cidr"),
    ({"mtu": 70000}, "mtu"),
])
def test_schema_refuses_bad_networks(change, field):
    bad = {"network": dict(NET, **change), "port": VIF["port"]}
    with pytest.raises(InvalidRequest, match=field):
        schemas.validate("build_and_run_instance", build(networks=[bad]))


def test_every_pattern_refuses_a_trailing_newline():
    def patterns(node):
        if isinstance(node, dict):
            if isinstance(node.get("pattern"), str):
                yield node["pattern"]
            for v in node.values():
                yield from patterns(v)
        elif isinstance(node, list):
            for v in node:
                yield from patterns(v)
    found = list(patterns(schemas.SCHEMAS)) + list(patterns(schemas.ANSWERS))
    assert found
    for p in found:       # anchored at the very end, or a prefix check only
        assert p.endswith("\\Z") or not p.endswith("$"), p
    with pytest.raises(InvalidRequest, match="instance_uuid"):
        schemas.validate("get_instance",
                         {"instance_uuid": "8a3b7c2d-1111-4222-8333-444455556666\n"})


@pytest.mark.parametrize("net,port,message", [
    ({}, {"fixed_ips": ["10.9.0.11"]}, "outside 10.0.0.0/24"),
    ({"gateway": "10.1.1.1"}, {}, "gateway: 10.1.1.1 is outside"),
    ({"cidr": "10.0.0.0/33"}, {}, "cidr"),
    ({}, {"fixed_ips": ["10.0.0.300"]}, "not an IP address"),
    ({}, {"fixed_ips": ["10.0.0.1"]}, "network's own address"),       # the gateway
    ({}, {"fixed_ips": ["10.0.0.2"]}, "network's own address"),       # the host
    ({}, {"fixed_ips": ["10.0.0.255"]}, "network's own address"),     # broadcast
    ({}, {"mac": "01:00:5e:00:00:01"}, "multicast"),
    ({}, {"mac": "00:00:00:00:00:00"}, "zero MAC"),
    ({"segmentation": {"type": "vxlan", "vni": 7, "peers": ["127.0.0.1"]}}, {},
     "peers: 127.0.0.1 is not a unicast host address"),
    ({"segmentation": {"type": "vxlan", "vni": 7, "peers": ["224.0.0.5"]}}, {}, "unicast"),
])
def test_model_refuses_what_the_schema_cannot_see(net, port, message):
    item = {"network": dict(NET, **net), "port": dict(VIF["port"], **port)}
    with pytest.raises(ValueError, match=message):
        vif_from_payload(item)


def test_instance_records_from_peers_are_bounded():
    record = {"uuid": VIF["port"]["id"], "display_name": "x", "vm_state": "active",
              "flavor": {"vcpus": 1, "memory_mb": 128, "root_gb": 1}, "image_ref": "img",
              "image_meta": {"properties": {"k": "v"}}, "disk_formats": {"disk": "qcow2"},
              "networks": [], "metadata": {}, "security_groups": []}
    payload = {"instance": record, "block_migration": True, "probe": ".shared-probe-" + "0" * 32,
               "source_host": "a"}
    schemas.validate("check_can_live_migrate_destination", payload)
    for change in ({"image_meta": {f"k{i}": "v" for i in range(100)}},
                   {"image_meta": {"properties": {"deep": {"deeper": {"x": 1}}}}},
                   {"disk_formats": {"../../etc/passwd": "raw"}},
                   {"image_meta": {"k": "x" * 5000}}):
        with pytest.raises(InvalidRequest):
            schemas.validate("check_can_live_migrate_destination",
                             dict(payload, instance=dict(record, **change)))


def test_a_peers_answer_is_checked_like_a_request():
    schemas.validate_answer("prep_resize", {"shared_storage": False, "transfer": {
        "address": "10.250.0.12", "port": 4000, "token": "ab" * 32}})
    for bad in ({"shared_storage": "yes"},
                {"shared_storage": False, "transfer": {"address": "10.250.0.12; rm",
                                                       "port": 1, "token": "ab" * 32}},
                {"shared_storage": False, "extra": 1}):
        with pytest.raises(schemas.InvalidAnswer, match="prep_resize"):
            schemas.validate_answer("prep_resize", bad)
    with pytest.raises(schemas.InvalidAnswer, match="paths"):
        schemas.validate_answer("pre_live_migration",
                                {"paths": {"instance_dir": "/srv/../etc"}})
    schemas.validate_answer("ping", {"anything": "goes"})    # not agent-to-agent


# -- linux_bridge commands ----------------------------------------------------------

@pytest.fixture
def commands(monkeypatch):
    ran, devices = [], {"data0": ""}

    def execute(*argv, process_input=None):
        if argv[:2] == ("ip", "-batch"):        # one process, one command a line
            for line in process_input.splitlines():
                execute("ip", *shlex.split(line))
            return ""
        ran.append(" ".join(argv))
        if argv[:3] == ("ip", "link", "add"):
            devices[argv[argv.index("name") + 1]] = ""
        elif argv[:3] == ("ip", "link", "set") and argv[4] == "alias":
            devices[argv[3]] = argv[5]
        elif argv[:3] == ("ip", "link", "set") and argv[4] == "name":
            devices[argv[5]] = devices.pop(argv[3])
        return ""
    privileged.run_in_process()
    monkeypatch.setitem(privileged.ROOTS, "uplinks", frozenset({"data0"}))
    monkeypatch.setitem(privileged.ROOTS, "tunnel_ip", "10.250.0.11")
    for module in (linux_net, priv, priv_firewall):
        monkeypatch.setattr(module, "execute", execute)
    monkeypatch.setattr(linux_net, "exists", lambda dev: dev in devices)
    monkeypatch.setattr(priv, "_exists", lambda dev: dev in devices)
    monkeypatch.setattr(linux_net, "alias", lambda dev: devices.get(dev, ""))
    monkeypatch.setattr(priv, "_alias", lambda dev: devices.get(dev, ""))
    monkeypatch.setattr(linux_net, "master_of", lambda dev: None)
    monkeypatch.setattr(linux_net, "addresses", lambda dev: set())
    monkeypatch.setattr(priv.secrets, "token_hex", lambda n: "0" * 2 * n)
    return ran, devices


def test_vlan_network_gets_a_subinterface_of_its_mapped_interface(commands):
    ran, devices = commands
    net, port = vif_from_payload(VIF)
    plugin = linux_bridge.LinuxBridgePlugin(CONF)
    plugin.plug(net, plugin.describe(net, port))
    owner = "compute-agent network net1"
    assert ran == [
        "ip link add name canew0000000000 type bridge forward_delay 0 stp_state 0",
        f"ip link set canew0000000000 alias {owner}",
        "ip link set canew0000000000 name brcanet1",
        "ip link set brcanet1 mtu 1450", "ip link set brcanet1 up",
        "ip link add link data0 name canew0000000000 type vlan id 100",
        f"ip link set canew0000000000 alias {owner}",
        "ip link set canew0000000000 name data0.100",
        "ip link set data0.100 mtu 1450", "ip link set data0.100 up",
        "ip link set data0.100 master brcanet1", "ip link set data0.100 up",
        "ip -o addr show",           # the privileged side: what else the host holds
        "ip addr add 10.0.0.2/24 dev brcanet1"]
    ran.clear()
    plugin.plug(net, plugin.describe(net, port))      # idempotent: nothing re-created
    assert not any(c.startswith("ip link add") for c in ran)
    ran.clear()
    plugin.release(net)
    assert ran == ["ip link del data0.100", "ip link del brcanet1"]


def test_plug_refuses_a_device_that_is_not_the_agents(commands):
    _, devices = commands
    devices["brcanet1"] = ""                                  # someone else's
    net, port = vif_from_payload(VIF)
    plugin = linux_bridge.LinuxBridgePlugin(CONF)
    with pytest.raises(linux_net.DeviceConflict, match="brcanet1"):
        plugin.plug(net, plugin.describe(net, port))
    devices["brcanet1"] = "compute-agent network other"      # another network's
    with pytest.raises(linux_net.DeviceConflict):
        plugin.plug(net, plugin.describe(net, port))


def test_release_leaves_devices_that_are_not_the_agents(commands):
    ran, devices = commands
    devices.update({"brcanet1": "", "data0.100": ""})
    linux_bridge.LinuxBridgePlugin(CONF).release(vif_from_payload(VIF)[0])
    assert ran == []


def test_vlan_device_name_fits_ifnamsiz():
    assert names.vlan("enp129s0f1np1", 4094) == "enp129s0f1.4094"


def test_vxlan_uplink_comes_from_the_configured_tunnel_address(commands, monkeypatch):
    ran, _ = commands
    monkeypatch.setattr(linux_net, "fdb_flood_peers", lambda dev: {"10.250.0.13"})
    net = network_from_payload(dict(NET, segmentation={
        "type": "vxlan", "vni": 200, "peers": ["10.250.0.12"]}))
    linux_bridge.LinuxBridgePlugin(CONF).plug(net, {})
    assert ("ip link add name canew0000000000 type vxlan id 200 dstport 4789 "
            "local 10.250.0.11 nolearning") in ran
    assert "bridge fdb append 00:00:00:00:00:00 dev vxlan-200 dst 10.250.0.12" in ran
    assert "bridge fdb del 00:00:00:00:00:00 dev vxlan-200 dst 10.250.0.13" in ran


# -- iptables diff -------------------------------------------------------------------

def test_render_adds_each_jump_once_and_removes_everything_when_empty():
    desired = {"filter": firewall.filter_chains([(FW_NET, PORT)], GROUPS, 4)}
    first = firewall.render(desired, {})
    assert "-I FORWARD 1 -j ca-forward" in first and "-I INPUT 1 -j ca-input" in first
    current = firewall.parse_save(first.replace("-I FORWARD 1", "-A FORWARD")
                                  .replace("-I INPUT 1", "-A INPUT")
                                  .replace("-I OUTPUT 1", "-A OUTPUT"))
    again = firewall.render(desired, current)
    assert "-I FORWARD" not in again and "-D " not in again
    empty = firewall.render({"filter": firewall.filter_chains([], {}, 4)}, current)
    lines = empty.splitlines()
    assert "-D FORWARD -j ca-forward" in lines and f"-X {firewall.chain('i', PORT)}" in lines
    assert lines.index("-D FORWARD -j ca-forward") < lines.index("-X ca-forward")
    assert not [line for line in lines if line.startswith("-A ")]


def test_render_leaves_other_chains_alone():
    current = firewall.parse_save("*filter\n:FORWARD ACCEPT [0:0]\n:mine - [0:0]\n"
                                  "-A FORWARD -j mine\nCOMMIT\n")
    assert firewall.render({"filter": {}}, current) == ""


def test_floating_ip_nat_skips_traffic_within_the_network():
    chains = firewall.nat_chains([FloatingIP("203.0.113.10", "10.0.0.11", PORT.id,
                                             "10.0.0.0/24")])
    assert chains[firewall.FLOAT_PRE] == [["-d", "203.0.113.10/32", "-j", "DNAT",
                                           "--to-destination", "10.0.0.11"]]
    assert chains[firewall.SNAT_CHAIN] == [["-s", "10.0.0.11/32", "!", "-d", "10.0.0.0/24",
                                            "-j", "SNAT", "--to-source", "203.0.113.10"]]


def test_guests_of_a_network_routed_by_the_host_leave_by_snat_after_floating_ips():
    floating = FloatingIP("203.0.113.10", "10.0.0.11", PORT.id, "10.0.0.0/24")
    chains = firewall.nat_chains([floating], [FW_NET], "pub0")
    assert [" ".join(r) for r in chains[firewall.SNAT_CHAIN]] == [
        "-s 10.0.0.11/32 ! -d 10.0.0.0/24 -j SNAT --to-source 203.0.113.10",
        "-s 10.0.0.0/24 ! -d 10.0.0.0/24 -o pub0 -j MASQUERADE"]
    assert firewall.nat_chains([], [FW_NET], None)[firewall.SNAT_CHAIN] == []


# -- dnsmasq ------------------------------------------------------------------------------

def test_dnsmasq_serves_only_static_entries_on_the_bridge():
    net, port = vif_from_payload(VIF)
    argv = dnsmasq_args.dnsmasq_argv(net, "/d", 600)
    assert "--dhcp-range=10.0.0.0,static,255.255.255.0,600s" in argv
    assert "--interface=brcanet1" in argv and "--port=0" in argv
    assert "--dhcp-option=3,10.0.0.1" in argv and "--dhcp-option=26,1450" in argv
    assert dhcp.hosts_file_text([port]) == "fa:16:3e:00:00:0b,10.0.0.11\n"
    assert dhcp.serves(net)
    assert not dhcp.serves(network_from_payload(dict(NET, host_address=None)))
