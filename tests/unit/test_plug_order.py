"""The manager's plug/unplug order and its undo on failure (pure logic:
the plugin, firewall and database are fakes)."""
import types

import pytest

from compute.parts.networking import Networking
from tests.unit.test_network import NET, VIF

SECOND = {"network": dict(NET, id="net2", bridge="brcanet2"),
          "port": dict(VIF["port"], id="9b3b7c2d-1111-4222-8333-444455556666",
                       fixed_ips=["10.0.0.12"])}


class Record:
    def __init__(self, uuid, networks, vm_state="building", task_state="networking"):
        self.uuid, self.networks = uuid, networks
        self.vm_state, self.task_state, self.launched_at = vm_state, task_state, None


class FakeDB:
    def __init__(self, *instances):
        self.instances = list(instances)

    def instance_list(self, host=None):
        return self.instances

    def security_groups(self):
        return {"web": {"id": "web", "rules": []}}

    def floating_ips(self, host):
        return []


class Plugin:
    def __init__(self, log, fail_on=None):
        self.log, self.fail_on = log, fail_on

    def describe(self, network, port):
        return {"devname": port.devname, "bridge": network.bridge}

    def plug(self, network, vif):
        if network.id == self.fail_on:
            raise RuntimeError("plug failed")
        self.log.append(("plug", network.id))

    def unplug(self, network, vif):
        self.log.append(("unplug", network.id))

    def release(self, network):
        self.log.append(("release", network.id))


class Firewall:
    def __init__(self, log):
        self.log = log

    def apply(self, vifs, groups, floating_ips=(), snat_networks=()):
        self.log.append(("apply", tuple(sorted(p.id[:2] for _, p in vifs))))


CONF = types.SimpleNamespace(state_path="/nonexistent", metadata_port=8775,
                             network=types.SimpleNamespace(
    firewall_driver="noop", dhcp_enabled=False, public_interface="eth0"))


def Manager(db, log, fail_on=None):
    """The Networking part, built from its constructor alone."""
    part = Networking(CONF, db, Plugin(log, fail_on), driver=None, runner=None, host="h")
    part.firewall = Firewall(log)
    part._sync_floating_addresses = lambda floating: None
    return part


def test_plug_then_apply_and_undo_on_failure():
    log = []
    inst = Record("u1", [VIF, SECOND])
    m = Manager(FakeDB(inst), log, fail_on="net2")
    with pytest.raises(RuntimeError):
        m.plug_vifs(inst)
    # net1 was plugged, net2 failed: net1 is unplugged and (nobody else
    # using it) released; no rules were applied for a half-plugged guest
    assert log == [("plug", "net1"), ("unplug", "net1"), ("release", "net1")]


def test_unplug_applies_without_the_instance_and_keeps_shared_networks():
    log = []
    gone = Record("u1", [VIF], task_state="deleting")
    other = Record("u2", [SECOND], vm_state="active", task_state=None)
    shared = Record("u3", [dict(VIF, port=dict(VIF["port"], id="7c3b7c2d-1111-4222-8333-"
                                                                "444455556666"))],
                    vm_state="active", task_state=None)
    m = Manager(FakeDB(gone, other, shared), log)
    m.unplug_vifs(gone)
    assert log[0] == ("unplug", "net1")
    assert log[1] == ("apply", ("7c", "9b"))           # u1's port is gone from the rules
    assert ("release", "net1") not in log              # u3 still uses net1
