"""The metadata service without a host: the tree it answers, the WSGI app
(who asks decides whose data), the DNAT and guard rules, and the
network flag's checks."""
import json

import pytest

from compute.core import instance_data
from compute.parts import metadata_service as ms
from network import firewall
from network.model import group_from_payload, network_from_payload, vif_from_payload
from tests.unit.test_instance_data import ED25519, KEYS, USER_DATA, guest_data
from tests.unit.test_network import NET, VIF

DOCS = instance_data.documents("u-1", "web", {}, guest_data(user_data=USER_DATA,
                                                            key_pairs=KEYS), [VIF])


@pytest.mark.parametrize("path, status, body", [
    ("/openstack", 200, b"2018-08-27\nlatest"),
    ("/openstack/latest/", 200, b"meta_data.json\nnetwork_data.json\nuser_data\n"
                                b"vendor_data.json\nvendor_data2.json"),
    ("/openstack/2018-08-27/user_data", 200, b"#!/bin/sh\necho hello > /marker\n"),
    ("/openstack/latest/../../etc/passwd", 404, b"Not Found"),
    ("/openstack/latest/nothing", 404, b"Not Found"),
    ("/latest/meta-data/instance-id", 200, b"u-1"),
    ("/2009-04-04/meta-data/local-ipv4", 200, b"10.0.0.11"),
    ("/latest/meta-data/public-keys", 200, b"0=alice"),
    ("/latest/meta-data/public-keys/0/openssh-key", 200, ED25519.encode()),
    ("/latest/meta-data/placement/availability-zone", 200, b"zone-a"),
    ("/latest/user-data", 200, b"#!/bin/sh\necho hello > /marker\n"),
    ("/latest/meta-data/nothing", 404, b"Not Found"),
    ("/v1/anything", 404, b"Not Found"),
])
def test_the_tree(path, status, body):
    assert ms.answer(path, DOCS, "10.0.0.11") == (status, body)


def test_listings_of_the_ec2_tree():
    status, body = ms.answer("/latest/meta-data/", DOCS, "10.0.0.11")
    assert status == 200 and body.decode().split("\n") == [
        "ami-launch-index", "hostname", "instance-id", "local-hostname", "local-ipv4",
        "placement/", "public-keys/"]
    assert ms.answer("/latest/meta-data/public-keys/0", DOCS, "x") == (200, b"openssh-key")
    assert ms.answer("/latest", DOCS, "x") == (200, b"meta-data\nuser-data")
    meta = json.loads(ms.answer("/openstack/latest/meta_data.json", DOCS)[1])
    assert meta["uuid"] == "u-1" and "admin_pass" not in meta


def call(server, path, source, method="GET"):
    seen = {}

    def start_response(status, headers):
        seen["status"] = status
    body = b"".join(server.app({"REQUEST_METHOD": method, "PATH_INFO": path,
                                "REMOTE_ADDR": source}, start_response))
    return seen["status"], body


def test_the_source_address_alone_decides_whose_data_answers():
    other = instance_data.documents("u-2", "db", {}, guest_data(), [])
    known = {"10.0.0.11": DOCS, "10.0.0.12": other}
    server = ms.MetadataServer(8775, lambda ip: (known[ip], ip) if ip in known else None)
    assert call(server, "/latest/meta-data/instance-id", "10.0.0.11") == ("200 OK", b"u-1")
    assert call(server, "/latest/meta-data/instance-id", "10.0.0.12") == ("200 OK", b"u-2")
    assert call(server, "/latest/meta-data/instance-id", "10.0.0.99")[0] == "404 Not Found"
    assert call(server, "/openstack", "10.0.0.11", "POST")[0] == "405 Method Not Allowed"
    assert not server.running


def test_requests_are_dnated_only_from_the_ports_own_tap_and_address():
    net, port = vif_from_payload({**VIF, "network": {**NET, "metadata": True}})
    plain = vif_from_payload(VIF)
    rules = firewall.metadata_rules([(net, port), plain], 8775)
    assert rules == [["-s", "10.0.0.11/32", "-d", "169.254.169.254/32", "-i", "brcanet1",
                      "-p", "tcp", "-m", "physdev", "--physdev-in", port.devname,
                      "-m", "tcp", "--dport", "80", "-j", "DNAT", "--to-destination",
                      "10.0.0.2:8775"]]
    nat = firewall.nat_chains([], metadata=rules)
    assert nat[firewall.METADATA_PRE] == rules
    text = firewall.render({"nat": nat}, {})
    assert "-I PREROUTING 1 -j ca-meta-pre" in text


def test_the_guard_heads_ca_input_while_the_service_listens():
    vifs = [vif_from_payload(VIF)]
    groups = {"web": group_from_payload({"id": "web"})}
    on = firewall.filter_chains(vifs, groups, 4, metadata_port=8775)[firewall.INPUT_CHAIN]
    off = firewall.filter_chains(vifs, groups, 4)[firewall.INPUT_CHAIN]
    assert on[0] == ["-p", "tcp", "-m", "tcp", "--dport", "8775", "-m", "conntrack", "!",
                     "--ctstate", "DNAT", "-j", "DROP"]
    assert on[1:] == off
    assert firewall.metadata_guard(8775) not in \
        firewall.filter_chains(vifs, groups, 6, metadata_port=8775)[firewall.INPUT_CHAIN]


def test_metadata_needs_an_ipv4_network_with_a_host_address():
    with pytest.raises(ValueError, match="network.metadata"):
        network_from_payload({**NET, "metadata": True, "host_address": None})
    with pytest.raises(ValueError, match="network.metadata"):
        network_from_payload({**NET, "cidr": "fd00::/64", "gateway": None,
                              "host_address": "fd00::2", "metadata": True})
    assert network_from_payload(NET).metadata is False
