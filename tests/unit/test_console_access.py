"""Console access without daemons: tokens (issue, read, redeem once),
the proxy's request parsing and file serving, serial port choice, the
serial console's XML and its move on live migration, and the URLs."""
import json
import os
import types

import pytest

from compute.parts.console_access import console_urls
from console import proxy, tokens
from virt import errors
from virt.driver import Flavor, Instance
from virt.libvirt import builder, console_ports, migration
from virt.libvirt.xml.domain import Domain

KEY = tokens.new_key().encode()
U1 = "0d3e4c0a-8c1b-4d3e-9a49-2f0c1b7a6e55"
U2 = "11111111-2222-3333-4444-555555555555"


class Clock:
    def __init__(self, now=1_800_000_000.0):
        self.now = now

    def __call__(self):
        return self.now


HA = tokens.ConsoleHost("hA", KEY, frozenset({"10.0.0.5"}),
                        {"serial": (10000, 10100), "vnc": (5900, 6099)})
HB = tokens.ConsoleHost("hB", tokens.new_key().encode(), frozenset({"10.0.0.6"}),
                        {"serial": (10000, 10100), "vnc": (5900, 6099)})
HOSTS = {"hA": HA, "hB": HB}.get


def issue(kind="serial", uuid=U1, address="10.0.0.5", port=10001, ttl=60, now=None,
          key=KEY, signer="hA", password=None):
    return tokens.issue(key, signer, kind, uuid, address, port, ttl, now, password)


def test_a_token_names_its_host_and_hides_its_target():
    t = issue(now=1000.0)
    assert t.startswith("hA~") and "10.0.0.5" not in t and U1 not in t
    target = tokens.read(HOSTS, t, max_ttl=600, now=1010.0)
    assert (target.kind, target.instance_uuid, target.host, target.port, target.signer) == \
        ("serial", U1, "10.0.0.5", 10001, "hA")
    v = issue("vnc", port=5901, password="s3cr3t!x", now=1000.0)
    assert "s3cr3t" not in v and tokens.read(HOSTS, v, 600, 1010.0).password == "s3cr3t!x"


@pytest.mark.parametrize("mangle", [
    lambda t: t[:-4] + ("AAAA" if not t.endswith("AAAA") else "BBBB"),   # altered
    lambda t: issue(key=tokens.new_key().encode()),                      # not hA's key
    lambda t: "hB~" + t.split("~", 1)[1],                                # hA's, as hB's
    lambda t: "hA~not-a-token",
    lambda t: "hA~" + "é" * 20,
])
def test_forged_altered_or_misattributed_tokens_are_refused(mangle):
    t = issue()
    with pytest.raises(tokens.TokenRefused, match="forged|not a console token"):
        tokens.read(HOSTS, mangle(t), 600, tokens.time.time())


@pytest.mark.parametrize("token,why", [
    ("no-host-at-all", "names no host"),
    ("~" + "x" * 40, "names no host"),
    ("hC~" + "x" * 40, "not one whose consoles"),
    ("-h~" + "x" * 40, "names no host"),
])
def test_a_token_of_a_host_the_proxy_does_not_know_is_refused(token, why):
    with pytest.raises(tokens.TokenRefused, match=why):
        tokens.read(HOSTS, token, 600, tokens.time.time())


@pytest.mark.parametrize("kind,address,port", [
    ("serial", "10.0.0.6", 10001),      # host B's guest, minted with host A's key
    ("vnc", "10.0.0.6", 5901),
    ("serial", "10.250.0.1", 5432),     # the database
    ("serial", "127.0.0.1", 5672),      # the broker, on the proxy's own loopback
    ("serial", "10.0.0.5", 16509),      # host A's own libvirtd: no console port
    ("vnc", "10.0.0.5", 10001),         # a serial port as a VNC one
])
def test_a_token_opens_only_its_own_hosts_console_addresses_and_ports(kind, address, port):
    with pytest.raises(tokens.TokenRefused, match="which is not a .* console of host hA"):
        tokens.read(HOSTS, issue(kind, address=address, port=port), 600, tokens.time.time())


def test_a_token_expires_by_its_own_ttl_and_by_the_proxy_cap():
    t = issue("vnc", port=5900, ttl=30, now=1000.0)
    tokens.read(HOSTS, t, 600, 1029.0)
    with pytest.raises(tokens.TokenRefused, match="expired"):
        tokens.read(HOSTS, t, 600, 1031.0)
    long = issue("vnc", port=5900, ttl=3600, now=1000.0)
    with pytest.raises(tokens.TokenRefused, match="older than the proxy accepts"):
        tokens.read(HOSTS, long, 10, 1011.0)


def test_the_checker_redeems_each_token_once_for_its_own_console():
    clock = Clock()
    checker = tokens.TokenChecker(HOSTS, 600, clock)
    t = issue(port=10000, now=clock.now + 1)
    clock.now += 2
    with pytest.raises(tokens.TokenRefused, match="not for the serial console of " + U2):
        checker.redeem(t, "serial", U2)
    with pytest.raises(tokens.TokenRefused, match="not for the vnc console"):
        checker.redeem(t, "vnc", U1)
    assert checker.redeem(t, "serial", U1).port == 10000
    with pytest.raises(tokens.TokenRefused, match="already used"):
        checker.redeem(t, "serial", U1)


def test_tokens_from_before_the_proxy_started_are_refused():
    clock = Clock()
    t = issue(port=10000, now=clock.now - 5)
    checker = tokens.TokenChecker(HOSTS, 600, clock)     # a restarted proxy forgot its uses
    with pytest.raises(tokens.TokenRefused, match="before the proxy started"):
        checker.redeem(t, "serial", U1)


def test_used_tokens_are_forgotten_once_they_expire():
    clock = Clock()
    checker = tokens.TokenChecker(HOSTS, 600, clock)
    for _ in range(50):
        checker.redeem(issue(ttl=5, now=clock.now), "serial", U1)
    assert len(checker._used) == 50
    clock.now += 10
    checker.redeem(issue(ttl=5, now=clock.now), "serial", U1)
    assert len(checker._used) == 1


def test_unknown_kinds_and_host_names_are_not_issued():
    with pytest.raises(ValueError):
        issue("spice")
    with pytest.raises(ValueError):
        issue(signer="a~b")


def test_the_hosts_file_names_each_hosts_key_addresses_and_ranges(tmp_path):
    key = tokens.new_key()
    hosts = tokens.parse_hosts({"hA": {"token_key": key, "addresses": ["10.0.0.5"],
                                       "serial_ports": "10000:10099"}})
    assert hosts["hA"].allows("serial", "10.0.0.5", 10099)
    assert not hosts["hA"].allows("serial", "10.0.0.5", 10100)
    assert hosts["hA"].allows("vnc", "10.0.0.5", 5900)          # the default range
    for bad in ({"h A": {}}, {"hA": {"token_key": key}}, {"hA": {"token_key": "x",
                                                                 "addresses": ["1.2.3.4"]}},
                {"hA": {"token_key": key, "addresses": ["h"]}},
                {"hA": {"token_key": key, "addresses": ["1.2.3.4"], "serial_ports": "9:1"}},
                {"hA": {"token_key": key, "addresses": ["1.2.3.4"], "shell": "x"}}, []):
        with pytest.raises(ValueError):
            tokens.parse_hosts(bad)
    path = tmp_path / "hosts.json"
    path.write_text(json.dumps({"hA": {"token_key": key, "addresses": ["10.0.0.5"]}}))
    watched = tokens.ConsoleHosts(str(path), log=types.SimpleNamespace(error=print))
    assert watched("hA") and watched("hB") is None
    path.write_text(json.dumps({"hB": {"token_key": key, "addresses": ["10.0.0.6"]}}))
    os.utime(path, ns=(1, 1))                          # a change, whatever the clock says
    assert watched("hB") and watched("hA") is None     # re-read without a restart
    path.write_text("not json")
    os.utime(path, ns=(2, 2))
    assert watched("hB")                               # the last good list stays


@pytest.mark.parametrize("path,parsed", [
    (f"/serial/{U1}?token=abc", ("serial", U1, "abc")),
    (f"/vnc/{U1}?token=a-b_c%3D", ("vnc", U1, "a-b_c=")),
    (f"/serial/{U1}", None),
    (f"/serial/{U1}?token=", None),
    (f"/spice/{U1}?token=abc", None),
    (f"/serial/{U1.upper()}?token=abc", None),
    (f"/serial/{U1}/../x?token=abc", None),
    (f"/serial/{U1}\n?token=abc", None),
])
def test_request_paths(path, parsed):
    assert proxy.parse_request_path(path) == parsed


def test_static_files_never_leave_their_directory(tmp_path):
    root = tmp_path / "novnc"
    (root / "app").mkdir(parents=True)
    (root / "vnc_lite.html").write_text("<html>")
    (tmp_path / "secret").write_text("no")
    (root / "link").symlink_to(tmp_path / "secret")
    assert proxy.static_file(str(root), "/novnc/vnc_lite.html?x=1") == str(root / "vnc_lite.html")
    for bad in ("/novnc/../secret", "/novnc/%2e%2e/secret", "/novnc/link", "/novnc/",
                "/novnc/app", "/novnc/missing", "/novnc/a%00b"):
        assert proxy.static_file(str(root), bad) is None, bad
    assert proxy.static_file("", "/novnc/vnc_lite.html") is None


def test_a_serial_port_is_the_lowest_free_one_that_binds():
    assert console_ports.pick_port(10000, 10005, {10000, 10001}, lambda p: True) == 10002
    assert console_ports.pick_port(10000, 10005, {10000}, lambda p: p != 10001) == 10002
    with pytest.raises(errors.VirtError, match="no free serial console port"):
        console_ports.pick_port(10000, 10001, {10000, 10001}, lambda p: True)
    assert console_ports.port_range("10000:20000") == (10000, 20000)
    for bad in ("20000:10000", "0:5", "1:70000"):
        with pytest.raises(ValueError):
            console_ports.port_range(bad)


def _xml(listen):
    inst = Instance(uuid=U1, display_name="c", image_id="i",
                    flavor=Flavor(vcpus=1, memory_mb=64, root_gb=1, name="f"))
    return builder.build_domain(inst, {"properties": {}}, [], [], builder.BootFiles(),
                                "/i/console.log", builder.HostSettings(),
                                serial_listen=listen).to_xml()


def test_the_serial_console_is_a_logged_tcp_server_only_when_enabled():
    xml = _xml(("127.0.0.1", 10007))
    serial = Domain.parse(xml).devices.serials[0]
    assert (serial.type, serial.source_mode, serial.source_host, serial.source_service,
            serial.protocol, serial.log_file) == \
        ("tcp", "bind", "127.0.0.1", "10007", "raw", "/i/console.log")
    assert console_ports.serial_target(xml) == ("127.0.0.1", 10007)
    assert console_ports.ports_in_use([xml, _xml(None)]) == {10007}
    plain = Domain.parse(_xml(None)).devices.serials[0]
    assert (plain.type, plain.source_path) == ("file", "/i/console.log")
    assert console_ports.serial_target(_xml(None)) is None


def test_serial_ports_keep_a_guests_port_and_avoid_the_others(monkeypatch):
    monkeypatch.setattr(console_ports, "can_bind", lambda a, p: True)
    xmls = {U1: _xml(("127.0.0.1", 10000))}
    ports = console_ports.SerialPorts(True, "127.0.0.1", "10000:10010", lambda: xmls)
    assert ports.listen_for(U1) == ("127.0.0.1", 10000)
    assert ports.listen_for(U2) == ("127.0.0.1", 10001)
    assert ports.hold_for_incoming(U2) == ("127.0.0.1", 10001)
    assert ports.listen_for("33333333-2222-3333-4444-555555555555")[1] == 10002
    ports.release(U2)
    assert ports.listen_for("33333333-2222-3333-4444-555555555555")[1] == 10001
    assert console_ports.SerialPorts(False, "127.0.0.1", "1:2", dict).listen_for(U1) is None


def test_live_migration_moves_the_serial_server_or_falls_back_to_the_log():
    xml = _xml(("127.0.0.1", 10000))
    moved = migration.rewrite_for_destination(xml, {"/i": "/j"}, ("10.0.0.2", 10042))
    assert console_ports.serial_target(moved) == ("10.0.0.2", 10042)
    assert Domain.parse(moved).devices.serials[0].log_file == "/j/console.log"
    plain = Domain.parse(migration.rewrite_for_destination(xml, {"/i": "/j"})).devices
    assert (plain.serials[0].type, plain.serials[0].source_path) == ("file", "/j/console.log")
    assert plain.serials[0].source_host is None and plain.serials[0].log_file is None


def test_live_migration_moves_the_vnc_server_to_the_destination_address():
    dom = Domain.parse(_xml(None))
    dom.devices.graphics[0].listen_address = "127.0.0.1"     # as libvirt reports it
    moved = Domain.parse(migration.rewrite_for_destination(dom.to_xml(), {}, None,
                                                           "10.0.0.2")).devices.graphics[0]
    assert (moved.listen, moved.listen_address) == ("10.0.0.2", "10.0.0.2")
    kept = Domain.parse(migration.rewrite_for_destination(dom.to_xml(), {})).devices
    assert kept.graphics[0].listen == "127.0.0.1"


def test_console_urls():
    conf = types.SimpleNamespace(serial_proxy_url="ws://p:6083/serial/",
                                 vnc_proxy_url="wss://p/vnc", token_ttl=60,
                                 novnc_url="https://p/novnc/vnc_lite.html")
    serial = console_urls(conf, "serial", U1, "T0k=")
    assert serial["url"] == serial["websocket"] == f"ws://p:6083/serial/{U1}?token=T0k="
    vnc = console_urls(conf, "vnc", U1, "T0k=")
    assert vnc["websocket"] == f"wss://p/vnc/{U1}?token=T0k="
    assert vnc["url"] == f"https://p/novnc/vnc_lite.html?path=vnc%2F{U1}%3Ftoken%3DT0k%3D"
    conf.novnc_url = ""
    assert console_urls(conf, "vnc", U1, "T")["url"].startswith("wss://")
