"""The polkit rules shipped for libvirt's access control
(etc/polkit-1/rules.d/50-compute-agent-libvirt.rules), evaluated by a
JavaScript engine (Node.js) with polkit's addRule/lookup API stood in for:
the agent gets what its operations need on instance-* domains and its own
secrets, and nothing else of libvirt; other users are left to other rules.
No polkitd runs on these machines (no D-Bus, no systemd), so this checks
the rules' decisions, not polkitd loading them."""
import json
import os
import shutil
import subprocess

import pytest

RULES = os.path.join(os.path.dirname(__file__), "..", "..", "etc", "polkit-1", "rules.d",
                     "50-compute-agent-libvirt.rules")
HARNESS = r"""
const fs = require("fs");
const rules = [];
const polkit = {Result: {YES: "yes", NO: "no", NOT_HANDLED: "not-handled"},
                addRule: (f) => rules.push(f)};
eval(fs.readFileSync(process.argv[process.argv.length - 1], "utf8"));
const cases = JSON.parse(fs.readFileSync(0, "utf8"));
console.log(JSON.stringify(cases.map(([user, id, attrs]) => rules[0](
    {id: id, lookup: (k) => attrs[k]}, {user: user}))));
"""
DOMAIN_CALLS = ["getattr", "read", "read-secure", "write", "save", "delete", "start",
                "stop", "init-control", "suspend", "hibernate", "snapshot", "fs-freeze",
                "block-write", "migrate", "set-password"]


def decide(cases):
    node = shutil.which("node") or shutil.which("nodejs")
    if node is None:
        pytest.skip("no Node.js to evaluate the polkit rules with")
    out = subprocess.run([node, "-e", HARNESS, RULES], input=json.dumps(cases),
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def test_the_agent_does_what_it_needs_to_its_own_domains_and_secrets():
    own = {"domain_name": "instance-0d3e4c0a-8c1b-4d3e-9a49-2f0c1b7a6e55",
           "connect_driver": "QEMU"}
    cases = [("compute-agent", "org.libvirt.unix.manage", {})]
    cases += [("compute-agent", f"org.libvirt.api.domain.{p}", own) for p in DOMAIN_CALLS]
    cases += [("compute-agent", f"org.libvirt.api.connect.{p}", {"connect_driver": "QEMU"})
              for p in ("getattr", "read", "write", "search-domains")]
    cases += [("compute-agent", f"org.libvirt.api.secret.{p}",
               {"secret_usage_ceph": "compute-agent/images/vms"}) for p in
              ("getattr", "write", "save", "delete")]
    cases += [("compute-agent", "org.libvirt.api.secret.write",
               {"secret_usage_target": "compute-agent/u/v"})]
    assert decide(cases) == ["yes"] * len(cases)


@pytest.mark.parametrize("action,attrs", [
    ("org.libvirt.api.domain.write", {"domain_name": "the-operators-vm"}),
    ("org.libvirt.api.domain.start", {"domain_name": "xinstance-1"}),
    ("org.libvirt.api.domain.open-device", {"domain_name": "instance-1"}),
    ("org.libvirt.api.domain.send-signal", {"domain_name": "instance-1"}),
    ("org.libvirt.api.domain.core-dump", {"domain_name": "instance-1"}),
    ("org.libvirt.api.secret.read-secure", {"secret_usage_ceph": "compute-agent/x"}),
    ("org.libvirt.api.secret.getattr", {"secret_usage_ceph": "client.admin secret"}),
    ("org.libvirt.api.network.write", {"network_name": "default"}),
    ("org.libvirt.api.storage-pool.start", {"pool_name": "default"}),
    ("org.libvirt.api.node-device.detach", {"node_device_name": "pci_0000_00_02_0"}),
    ("org.libvirt.api.interface.write", {"interface_name": "eth0"}),
    ("org.libvirt.api.nwfilter.write", {"nwfilter_name": "clean-traffic"}),
    ("org.libvirt.api.connect.pm-control", {}),
    ("org.libvirt.api.connect.interface-transaction", {}),
    ("org.libvirt.something-new", {}),
])
def test_everything_else_of_libvirt_is_refused_to_the_agent(action, attrs):
    assert decide([("compute-agent", action, attrs)]) == ["no"]


def test_other_users_are_left_to_other_rules():
    assert decide([("root", "org.libvirt.api.domain.write", {"domain_name": "x"}),
                   ("alice", "org.libvirt.unix.manage", {}),
                   ("compute-agent", "org.freedesktop.login1.reboot", {})]) == \
        ["not-handled"] * 3
