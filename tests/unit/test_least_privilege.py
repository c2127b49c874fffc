"""Pure parts of least privilege: the argument checks of the privileged
entry points, the systemd unit's capabilities against the privsep
contexts', the watchdog's decision, and when migrations use TLS."""
import configparser
import ipaddress
import os

import pytest
from oslo_privsep import capabilities

import privileged
from compute.agent import systemd
from privileged import Refused, checks
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


@pytest.mark.parametrize("cidr", ["203.0.113.10/24", "203.0.113.0/32", "203.0.113.255/32",
                                  "198.51.100.7/32", "fd00::5/128"])
def test_only_a_floating_ip_of_the_ranges_goes_on_the_public_interface(cidr):
    assert checks.floating_address(ipaddress.ip_interface("203.0.113.10/32"),
                                   ["203.0.113.0/24"])
    with pytest.raises(Refused):
        checks.floating_address(ipaddress.ip_interface(cidr), ["203.0.113.0/24"])


@pytest.mark.parametrize("cidr", ["10.250.0.99/24", "10.250.0.99/16", "127.0.0.2/8",
                                  "169.254.1.1/16", "224.0.0.1/4", "0.0.0.0/0"])
def test_a_bridge_address_may_not_reach_into_the_hosts_own_networks(cidr):
    foreign = [ipaddress.ip_network("10.250.0.0/24"), ipaddress.ip_network("127.0.0.0/8")]
    assert checks.bridge_address(ipaddress.ip_interface("10.0.0.1/24"), "brca1", foreign)
    with pytest.raises(Refused):
        checks.bridge_address(ipaddress.ip_interface(cidr), "brca1", foreign)


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


def test_missing_or_unreadable_tls_files_are_named(tmp_path):
    assert migration.missing_tls_files(str(tmp_path)) == list(migration.TLS_FILES)
    assert migration.missing_tls_files("") == list(migration.TLS_FILES)
    for name in migration.TLS_FILES:
        (tmp_path / name).write_text("x")
    assert migration.missing_tls_files(str(tmp_path)) == []
    assert migration.has_tls_files(str(tmp_path))
    (tmp_path / "client-cert.pem").unlink()
    assert migration.missing_tls_files(str(tmp_path)) == ["client-cert.pem"]
    assert migration.flags(True, tls=True) & migration.libvirt.VIR_MIGRATE_TLS
    assert not migration.flags(True) & migration.libvirt.VIR_MIGRATE_TLS


def test_a_tls_handshake_failure_is_told_apart():
    assert migration.is_tls_failure(
        "operation failed: job 'migration out' failed: Certificate does not match the hostname")
    assert not migration.is_tls_failure("operation failed: domain is not running")


def test_console_ranges_stay_clear_of_the_hosts_own_ports_once_only_proxies_reach_them():
    import types

    from compute.cmd import agent

    def conf(serial, vnc="5900:6099", proxies=("10.250.0.1",)):
        return types.SimpleNamespace(
            libvirt=types.SimpleNamespace(vnc_listen="10.0.0.11", vnc_port_range=vnc,
                                          serial_console=True, serial_listen="10.0.0.11",
                                          serial_port_range=serial),
            console=types.SimpleNamespace(proxy_addresses=list(proxies)))
    assert agent.console_listeners(conf("10000:10999")) == [
        ("10.0.0.11", (5900, 6099)), ("10.0.0.11", (10000, 10999))]
    for serial, vnc, taken in (("10000:20000", "5900:6099", "16509"),
                               ("10000:10999", "5900:65535", "16509"),
                               ("49000:49200", "5900:6099", "49152")):
        with pytest.raises(SystemExit, match=taken):
            agent.console_listeners(conf(serial, vnc))
    assert agent.console_listeners(conf("10000:20000", proxies=()))   # not guarded: allowed
