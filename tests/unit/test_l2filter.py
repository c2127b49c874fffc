"""Layer-2 anti-spoofing rules of a port (pure), and what nft makes of them
(when nft can run in a namespace of the test's own)."""
import shutil
import subprocess
import uuid

import pytest

from network import l2filter
from network.model import Port

PORT = Port(id="8a3b7c2d-1111-4222-8333-444455556666", network_id="net1",
            mac="fa:16:3e:00:00:0b", fixed_ips=("10.0.0.11", "fd00::b"))


def test_link_local_is_the_eui64_of_the_mac():
    assert l2filter.link_local("fa:16:3e:00:00:0b") == "fe80::f816:3eff:fe00:b"


def test_a_port_sends_only_ip_and_arp_from_its_own_addresses():
    rules = l2filter.port_rules(PORT)
    assert rules[:4] == [
        "ether saddr != fa:16:3e:00:00:0b drop",
        "ether type != { ip, ip6, arp } drop",
        "arp saddr ether != fa:16:3e:00:00:0b drop",
        "arp saddr ip != { 0.0.0.0, 10.0.0.11 } drop"]
    assert "udp sport { 67, 547 } drop" in rules                       # no DHCP server
    assert "icmpv6 type { nd-router-advert, nd-redirect } drop" in rules


def test_neighbour_advertisements_only_for_the_ports_own_addresses():
    rules = l2filter.port_rules(PORT)
    na = [r for r in rules if "nd-neighbor-advert" in r]
    assert na == [
        "icmpv6 type nd-neighbor-advert @th,64,128 0xfd00000000000000000000000000000b return",
        "icmpv6 type nd-neighbor-advert @th,64,128 0xfe80000000000000f8163efffe00000b return",
        "icmpv6 type nd-neighbor-advert drop"]


def test_ruleset_replaces_the_agents_table_in_one_transaction():
    text = l2filter.ruleset([PORT])
    lines = text.splitlines()
    assert lines[:2] == ["table bridge compute_agent", "delete table bridge compute_agent"]
    assert f'iifname vmap {{ "{PORT.devname}" : jump {l2filter.chain(PORT)} }}' in text
    assert "hook prerouting priority -200" in text
    assert l2filter.ruleset([]) == ("table bridge compute_agent\n"
                                    "delete table bridge compute_agent\n")


@pytest.mark.skipif(shutil.which("nft") is None or shutil.which("ip") is None,
                    reason="needs nft and ip")
def test_nft_accepts_the_ruleset_and_removes_it_again():
    ns = "ca-l2-" + uuid.uuid4().hex[:6]
    if subprocess.run(["ip", "netns", "add", ns], capture_output=True).returncode:
        pytest.skip("cannot make a network namespace here")
    try:
        def nft(*args, text=None):
            return subprocess.run(["ip", "netns", "exec", ns, "nft", *args], input=text,
                                  capture_output=True, text=True, check=True).stdout
        nft("add", "table", "bridge", "someone_else")
        nft("-f", "-", text=l2filter.ruleset([PORT]))
        nft("-f", "-", text=l2filter.ruleset([PORT]))          # again: same result
        listed = nft("list", "table", "bridge", "compute_agent")
        assert "arp saddr ip != { 0.0.0.0, 10.0.0.11 } drop" in listed
        nft("-f", "-", text=l2filter.ruleset([]))
        tables = nft("list", "tables")
        assert "compute_agent" not in tables and "someone_else" in tables
    finally:
        subprocess.run(["ip", "netns", "del", ns])
