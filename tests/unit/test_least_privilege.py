"""Pure parts of least privilege: the argument checks of the privileged
entry points, the systemd unit's capabilities against the privsep
contexts', the watchdog's decision, and when migrations use TLS."""
import configparser
import os

import pytest
from oslo_privsep import capabilities

import privileged
from compute import systemd
from network import firewall, l2filter
from privileged import Refused, checks
from tests.unit.test_firewall import GROUPS, NET, PORT
from virt.libvirt import migration

UNIT = os.path.join(os.path.dirname(__file__), "..", "..", "etc", "systemd",
                    "compute-agent.service")


def unit():
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str
    parser.read(UNIT)
    return parser["Service"]


def test_unit_runs_the_agent_as_its_user_with_exactly_the_daemons_capabilities():
    service = unit()
    names = sorted(capabilities.CAPS_BYVALUE[c] for c in privileged.CAPABILITIES)
    assert service["User"] == "compute-agent" and service["NoNewPrivileges"] == "yes"
    assert sorted(service["AmbientCapabilities"].split()) == names
    assert sorted(service["CapabilityBoundingSet"].split()) == names
    assert service["Type"] == "notify" and int(service["WatchdogSec"]) > 0
    assert service["ProtectSystem"] == "strict" and service["PrivateTmp"] == "yes"


def test_rulesets_the_agent_renders_pass_the_checks():
    for version in (4, 6):
        tables = {"filter": firewall.filter_chains([(NET, PORT)], GROUPS, version, {}, None)}
        text = firewall.render(tables, {})
        assert checks.iptables_restore_text(text) == text
    text = l2filter.ruleset([PORT])
    assert checks.nft_text(text) == text
    assert checks.nft_text(l2filter.ruleset([])) == l2filter.ruleset([])


@pytest.mark.parametrize("text", [
    "*filter\n-A FORWARD -j DROP\nCOMMIT\n",
    "*filter\n-I INPUT 1 -j DROP\nCOMMIT\n",
    "*filter\n:INPUT DROP [0:0]\nCOMMIT\n",
    "*filter\n-X not-ours\nCOMMIT\n",
    "*raw\n:ca-x - [0:0]\nCOMMIT\n",
    "*filter\n:ca-x - [0:0]\n",
    "*filter\n-D FORWARD -j not-ours\nCOMMIT\n",
])
def test_iptables_text_touching_what_is_not_the_agents_is_refused(text):
    with pytest.raises(Refused):
        checks.iptables_restore_text(text)


@pytest.mark.parametrize("argv", [
    ["dnsmasq", "--pid-file=/srv/state/dhcp/n1/pid", "--dhcp-script=/bin/sh"],
    ["dnsmasq", "--pid-file=/srv/state/dhcp/n1/pid", "--interface=eth0"],
    ["dnsmasq", "--pid-file=/srv/state/dhcp/n1/../../../etc/pid"],
    ["dnsmasq", "--pid-file=/srv/state/dhcp/n1/pid",
     "--dhcp-leasefile=/srv/state/dhcp/n2/leases"],
    ["dnsmasq", "--dhcp-hostsfile=/srv/state/dhcp/n1/hosts"],
    ["sh", "--pid-file=/srv/state/dhcp/n1/pid"],
    "dnsmasq --pid-file=/srv/state/dhcp/n1/pid",
])
def test_dnsmasq_commands_the_agent_would_not_build_are_refused(argv):
    with pytest.raises(Refused):
        checks.dnsmasq_argv(argv, "/srv/state/dhcp")


def test_owned_device_needs_the_agents_alias_unless_an_uplink_or_tap():
    aliases = {"brca1": "compute-agent network n1", "eth0": "", "tapabcdef012345": ""}
    assert checks.owned_device("brca1", aliases.get) == "brca1"
    assert checks.owned_device("eth0", aliases.get, frozenset({"eth0"})) == "eth0"
    assert checks.owned_device("tapabcdef012345", aliases.get, taps=True)
    for dev in ("eth0", "tapabcdef012345", "-all", "a b", "x" * 16):
        with pytest.raises(Refused):
            checks.owned_device(dev, lambda d: "")


def test_watchdog_is_fed_unless_the_rpc_server_is_down():
    assert systemd.health(True, True)[0] and systemd.health(True, False)[0]
    assert "libvirt unreachable" in systemd.health(True, False)[1]
    assert systemd.health(False, True) == (False, "RPC server not running")


def test_watchdog_interval_is_half_watchdog_sec_for_this_process_only():
    assert systemd.watchdog_interval({"WATCHDOG_USEC": "60000000"}, pid=7) == 30
    assert systemd.watchdog_interval({"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": "8"},
                                     pid=7) is None
    assert systemd.watchdog_interval({}, pid=7) is None


def test_tls_is_on_when_the_certificates_are_there_unless_set(tmp_path):
    assert not migration.use_tls(None, str(tmp_path))
    for name in migration.TLS_FILES:
        (tmp_path / name).write_text("x")
    assert migration.use_tls(None, str(tmp_path))
    assert not migration.use_tls(False, str(tmp_path))
    assert migration.flags(True, tls=True) & migration.libvirt.VIR_MIGRATE_TLS
    assert not migration.flags(True) & migration.libvirt.VIR_MIGRATE_TLS


def test_a_tls_handshake_failure_is_told_apart():
    assert migration.is_tls_failure(
        "operation failed: job 'migration out' failed: Certificate does not match the hostname")
    assert not migration.is_tls_failure("operation failed: domain is not running")
