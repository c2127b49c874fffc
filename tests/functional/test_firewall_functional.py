"""The generated rulesets are accepted by the real iptables/ip6tables and,
applied with --noflush, replace only the agent's own chains.  Runs in a
network namespace of its own (needs root)."""
import os
import subprocess
import sys
import uuid

import pytest

from network import firewall
from tests.unit.test_firewall import GROUPS, NET, PORT

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for a netns")


@pytest.fixture
def netns():
    name = "ca-fw-" + uuid.uuid4().hex[:8]
    subprocess.run(["ip", "netns", "add", name], check=True)
    yield name
    subprocess.run(["ip", "netns", "del", name], check=True)


def in_ns(ns, *argv, stdin=None):
    return subprocess.run(["ip", "netns", "exec", ns, *argv], input=stdin, text=True,
                          capture_output=True, check=True).stdout


@pytest.mark.parametrize("version,tool", [(4, "iptables"), (6, "ip6tables")])
def test_ruleset_applies_and_reapplying_replaces_only_our_chains(netns, version, tool):
    in_ns(netns, tool, "-N", "not-ours")
    in_ns(netns, tool, "-A", "not-ours", "-j", "ACCEPT")
    in_ns(netns, tool, "-A", "FORWARD", "-j", "not-ours")
    text = firewall.ruleset([(NET, PORT)], GROUPS, version, {"lb": ("10.0.0.9", "fd00::9")})
    in_ns(netns, f"{tool}-restore", "--noflush", "--test", stdin=text)
    in_ns(netns, f"{tool}-restore", "--noflush", stdin=text)
    before = in_ns(netns, tool, "-S")
    i, s = firewall.chain("i", PORT), firewall.chain("s", PORT)
    assert f"-N {i}" in before and f"-A {s} -j DROP" in before

    fewer = {"web": GROUPS["web"].__class__("web", ())}               # every rule removed
    in_ns(netns, f"{tool}-restore", "--noflush",
          stdin=firewall.ruleset([(NET, PORT)], fewer, version))
    after = in_ns(netns, tool, "-S")
    assert "--dport 22" not in after and "--dport 443" not in after
    assert "-A not-ours -j ACCEPT" in after and "-A FORWARD -j not-ours" in after
    assert after.count(f"-A {i} -j DROP") == 1                        # replaced, not added


APPLY = """
import dataclasses, json, sys
import privileged
from network.iptables import IptablesFirewall
from network.model import FloatingIP
from tests.unit.test_firewall import GROUPS, NET, PORT
privileged.configure("/nonexistent", "/nonexistent", public_interface="pub0",
                     floating_ranges=["203.0.113.0/24"])
fw = IptablesFirewall()
PORT = dataclasses.replace(PORT, fixed_ips=("10.0.0.5",))     # NET is IPv4 only
if sys.argv[1] == "full":
    fw.apply([(NET, PORT)], GROUPS,
             [FloatingIP("203.0.113.10", "10.0.0.5", PORT.id, "10.0.0.0/24")], [NET])
else:
    fw.apply([], {})
"""


def _tables(groups, floating, version):
    from network.hoststate import HostState
    return firewall.tables(HostState(((NET, PORT),), groups, tuple(floating), (NET,)),
                           version, "pub0", consoles=[("10.250.0.11", (5900, 6099))],
                           proxies=["10.250.0.1"])


def test_installed_rules_compare_equal_so_a_second_apply_writes_nothing(netns):
    """Rules are written as iptables-save prints them: applying what is
    installed already changes no chain (the diff is what makes an apply
    cheap when only a port or a group changed)."""
    from network.model import FloatingIP
    floating = [FloatingIP("203.0.113.10", "10.0.0.5", PORT.id, "10.0.0.0/24")]
    for version, tool in ((4, "iptables"), (6, "ip6tables")):
        tables = _tables(GROUPS, floating, version)
        in_ns(netns, f"{tool}-restore", "--noflush", stdin=firewall.render(tables, {}))
        current = firewall.parse_save(in_ns(netns, f"{tool}-save"))
        assert firewall.render(tables, current) == ""
        fewer = {"web": GROUPS["web"].__class__("web", ())}
        tables = _tables(fewer, floating, version)
        changed = firewall.render(tables, current)
        declared = {line[1:].split()[0] for line in changed.splitlines()
                    if line.startswith(":")}
        assert declared == {firewall.chain("i", PORT)} | (
            {firewall.chain("o", PORT)} if version == 4 else set())   # the group's chains only


def test_applier_is_idempotent_and_leaves_nothing_behind(netns):
    for tool in ("iptables", "ip6tables"):
        in_ns(netns, tool, "-A", "FORWARD", "-j", "ACCEPT")       # the operator's rule
    in_ns(netns, "iptables", "-t", "nat", "-A", "POSTROUTING", "-j", "RETURN")

    def state():
        return [line for tool in ("iptables-save", "ip6tables-save")
                for line in in_ns(netns, tool).splitlines() if not line.startswith("#")
                ] + [line for line in in_ns(netns, "nft", "list", "tables").splitlines()
                     if line.startswith("table bridge")]
    before = state()
    in_ns(netns, sys.executable, "-c", APPLY, "full")
    full = state()
    assert "-A FORWARD -j ca-forward" in full and "-A PREROUTING -j ca-float-pre" in full
    assert "-A ca-snat -s 10.0.0.0/24 ! -d 10.0.0.0/24 -o pub0 -j MASQUERADE" in full
    assert "table bridge compute_agent" in full                    # layer 2
    in_ns(netns, sys.executable, "-c", APPLY, "full")
    assert state() == full                                         # nothing added twice
    in_ns(netns, sys.executable, "-c", APPLY, "empty")
    assert state() == before
