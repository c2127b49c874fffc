"""Tenant isolation with hostile guests, on the namespaced test bed (hA
with an external network on pub0, hB beside it).  What a guest may reach
or poison is checked where it matters: on the taps, the uplink and the
external interface (tcpdump), in the neighbours' ARP caches, and on the
host's disk; what a payload may make the agent touch is checked on the
host's links and rulesets."""
import os
import re
import subprocess
import uuid

import pytest

from compute.core import exception
from network import names
from tests.harness.agent import wait_until
from tests.harness.capture import Capture
from tests.harness.netguests import (
    EGRESS,
    ICMP_IN,
    OPEN,
    Guest,
    ext_ping,
    flat_network,
    port,
    refresh,
    wait_dhcp,
)
from tests.harness.serial import vnc_security_types, vnc_through_proxy
from tests.harness.testbed import CONSOLE_LOG_BACKUPS, CONSOLE_LOG_MAX, MGMT, two_hosts
from virt.libvirt import console_ports

FLOATING = "203.0.113.21"
EXTERNAL = "203.0.113.254"            # the external namespace's own address


# hA serves serial consoles and its metrics on its management address, so
# that the hostile guest below has listeners there to try
HOST_SERVICES = ("[libvirt]\nserial_console = true\n"
                 "[metrics]\nlisten_address = {mgmt}\n")


@pytest.fixture(scope="module")
def bed():
    yield from two_hosts("iso", external=True,
                         extra_conf={"hA": HOST_SERVICES.format(mgmt=f"{MGMT}.11")})


def ext_http(bed, address, port_):
    """The body a TCP connection from the external network gets, or None."""
    r = subprocess.run(["ip", "netns", "exec", bed.external, "curl", "-s", "-m", "2",
                        f"http://{address}:{port_}/"], capture_output=True, text=True)
    return r.stdout.strip() if r.returncode == 0 else None


def tap(guest):
    return names.tap(guest.item["port"]["id"])


def mac(guest):
    return guest.item["port"]["mac"]


def test_a_floating_ip_reaches_only_what_the_guests_groups_allow(bed):
    closed = {"id": "fip", "rules": EGRESS}
    web = Guest(bed, "hA", "web", {"port": port("10.0.0.21", ["fip"]),
                                   "network": flat_network("hA")},
                "tb.ip=dhcp tb.httpd=22,23", [closed])
    wait_dhcp(web)
    web.agent.wait_console(web.uuid, lambda c: "TB: httpd 22,23" in c, "httpd")
    api, host = web.agent.api, web.agent.host
    api.associate_floating_ip(host, web.uuid, FLOATING)
    hA = bed.hosts["hA"]
    with Capture(hA.ns, tap(web), "icmp or tcp", "out") as reached:
        assert not any(ext_ping(bed, FLOATING) for _ in range(3))
        assert ext_http(bed, FLOATING, 22) is None and ext_http(bed, FLOATING, 23) is None
    assert reached.lines == []                     # not one packet got to the guest
    ssh_only = {"id": "fip", "rules": EGRESS + [
        {"direction": "ingress", "protocol": "tcp", "port_range_min": 22,
         "port_range_max": 22}]}
    refresh(bed, ssh_only)
    # the answer comes from the guest itself (the host holds the floating
    # address too, so an answer alone would prove nothing)
    assert wait_until(lambda: ext_http(bed, FLOATING, 22), 20, 0.5, "port 22") == "guest=web"
    assert ext_http(bed, FLOATING, 23) is None
    assert not ext_ping(bed, FLOATING)
    api.disassociate_floating_ip(host, FLOATING)


@pytest.fixture(scope="module")
def neighbours(bed):
    """On hA's flat network: a victim, a watcher that keeps ARP entries
    for it and for the gateway, and an attacker that from its 20th tick
    claims both addresses with gratuitous ARP and sends non-IP frames."""
    flat = flat_network("hA")
    victim = Guest(bed, "hA", "victim", {"port": port("10.0.0.22", ["victim"]), "network": flat},
                   f"tb.ip=dhcp tb.ping=10.0.0.2,{EXTERNAL}",
                   [{"id": "victim", "rules": EGRESS + [ICMP_IN]}])
    watcher = Guest(bed, "hA", "watcher", {"port": port("10.0.0.24", ["open"]), "network": flat},
                    "tb.ip=dhcp tb.arp=1 tb.ping=10.0.0.22,10.0.0.2", [OPEN])
    attacker = Guest(bed, "hA", "attacker", {"port": port("10.0.0.23", ["open"]),
                                             "network": flat},
                     "tb.ip=dhcp tb.attackat=20 tb.garp=10.0.0.22,10.0.0.2 tb.raw=88b5 "
                     "tb.ping=10.0.0.24", [OPEN])
    for g in (victim, watcher, attacker):
        wait_dhcp(g)
    return victim, watcher, attacker


def arp_cache(guest):
    """The guest's last printed ARP cache: {ip: mac}."""
    lines = re.findall(r"^TB: arp (.*)$", guest.console(), re.M)
    return dict(e.split("=") for e in lines[-1].split()) if lines else {}


def test_gratuitous_arp_and_foreign_frames_poison_no_one(bed, neighbours):
    victim, watcher, attacker = neighbours
    hA = bed.hosts["hA"]
    gateway_mac = open_sys(hA, "brcaflat")
    wait_until(lambda: arp_cache(watcher).get("10.0.0.22") == mac(victim)
               and arp_cache(watcher).get("10.0.0.2") == gateway_mac, 120, 0.5,
               "the watcher's ARP entries")
    attacker.agent.wait_console(attacker.uuid, lambda c: c.count("TB: attacking") >= 2,
                                "the attack", timeout=180)
    # the attacker's own frames: other ethertypes, and ARP claiming the
    # victim's (0a000016) or the gateway's (0a000002) address
    forged = (f"ether proto 0x88b5 or (arp and ether src {mac(attacker)} and "
              "(arp[14:4] = 0x0a000016 or arp[14:4] = 0x0a000002))")
    with Capture(hA.ns, tap(attacker), "ip and dst host 10.0.0.22", "out") as stolen, \
            Capture(hA.ns, tap(watcher), forged, "out") as to_the_watcher, \
            Capture(hA.ns, "data0", forged, "out") as to_the_wire:
        mark, attacks = watcher.last_tick(), attacker.console().count("TB: attacking")
        watcher.wait_pings("10.0.0.22", "ok", mark, times=3)
        attacker.agent.wait_console(attacker.uuid,
                                    lambda c: c.count("TB: attacking") >= attacks + 2,
                                    "two more rounds of the attack")
    assert arp_cache(watcher)["10.0.0.22"] == mac(victim)
    assert arp_cache(watcher)["10.0.0.2"] == gateway_mac
    neigh = hA.run("ip", "neigh", "show", "10.0.0.22", "dev", "brcaflat")
    assert mac(victim) in neigh, neigh                 # the gateway's entry is right too
    assert stolen.lines == []                          # no traffic for the victim
    assert to_the_watcher.lines == [] and to_the_wire.lines == []


def open_sys(host, dev):
    return host.run("cat", f"/sys/class/net/{dev}/address").strip()


def test_a_guest_leaves_by_snat_only_as_far_as_its_egress_rules_allow(bed, neighbours):
    victim = neighbours[0]
    ext = bed.external
    with Capture(ext, "ext0", "icmp and src host 203.0.113.1", "in") as snat, \
            Capture(ext, "ext0", "src net 10.0.0.0/24", "in") as unsnat:
        victim.wait_pings(EXTERNAL, "ok", victim.last_tick())
    assert snat.lines and unsnat.lines == []           # out as the host's public address
    refresh(bed, {"id": "victim", "rules": [{"direction": "egress",
                                             "remote_ip_prefix": "10.0.0.0/24"}, ICMP_IN]})
    mark = victim.last_tick()
    victim.wait_pings(EXTERNAL, "FAIL", mark)
    victim.wait_pings("10.0.0.2", "ok", mark)           # what the rule allows still works


def test_a_guest_flooding_its_console_cannot_fill_the_host_disk(bed):
    """TCG's serial port carries about 0.6 MB/s here, so the guest writes
    16 MiB against a 1 MiB log with 2 rotated copies, not 1 GiB."""
    g = Guest(bed, "hA", "flood", {"port": port("10.0.0.30", ["open"]),
                                   "network": flat_network("hA")},
              "tb.ip=dhcp tb.flood=16", [OPEN])
    a = g.agent
    log_dir = os.path.join(a.instances_path, g.uuid)
    wait_until(lambda: "TB: flood-end" in a.api.get_console_output(a.host, g.uuid, 50), 300,
               1, "the flood to end")
    a.wait_console(g.uuid, lambda c: "TB: tick 2 " in c, "ticks after the flood")
    logs = [n for n in os.listdir(log_dir) if n.startswith("console.log")]
    total = sum(os.path.getsize(os.path.join(log_dir, n)) for n in logs)
    assert total <= CONSOLE_LOG_MAX * (1 + CONSOLE_LOG_BACKUPS), (logs, total)
    assert len(logs) == 1 + CONSOLE_LOG_BACKUPS       # it did rotate
    latest = a.api.get_console_output(a.host, g.uuid, 5)
    assert re.search(r"^TB: tick \d+ ", latest, re.M), latest      # the latest lines
    assert a.api.get_instance(a.host, g.uuid)["power_state"] == "RUNNING"
    a.api.terminate_instance(a.host, g.uuid)
    a.wait_state(g.uuid, {"deleted"})


def host_state(host):
    return (host.run("ip", "-o", "link"), host.run("iptables-save"), host.run("ip6tables-save"),
            host.run("nft", "list", "ruleset"), host.run("ip", "-o", "addr"))


def without_counters(state):
    """The state without what traffic and time change (counters, the
    timestamps of iptables-save's comment lines)."""
    return tuple(re.sub(r"\[\d+:\d+\]|packets \d+ bytes \d+|^#.*$", "", s, flags=re.M)
                 for s in state)


@pytest.mark.parametrize("change,field", [
    ({"bridge": "mgmt0"}, "bridge"),                               # a host interface
    ({"bridge": "brcaforeign"}, "brcaforeign exists on this host and is not created by"),
    ({"segmentation": {"type": "flat", "physical_interface": "mgmt0"}}, "segmentation"),
    ({"segmentation": {"type": "flat", "physical_network": "physnet7"}}, "not mapped"),
    ({"bridge": "brcaflat"}, "is the bridge of network flat1"),
    ({"segmentation": {"type": "flat", "physical_network": "physnet1"}},
     "uplink carries network flat1"),                              # physnet1 is taken
    ({"cidr": "10.250.0.0/24", "host_address": "10.250.0.99", "gateway": None,
      "segmentation": {"type": "flat"}}, "overlaps 10.250.0.0/24"),
    ({"id": "flat1", "cidr": "10.9.0.0/24", "host_address": None, "gateway": None},
     "network flat1 is served here already"),
])
def test_payloads_may_not_name_host_resources(bed, neighbours, change, field):
    hA = bed.hosts["hA"]
    a = hA.agent
    hA.run("ip", "link", "add", "brcaforeign", "type", "bridge", check=False)
    before = without_counters(host_state(hA))
    network = {**flat_network("hA"), "id": "other", "bridge": "brcaother",
               "segmentation": {"type": "flat"}, **change}
    subnet = network["cidr"].rsplit(".", 1)[0]
    item = {"network": network, "port": port(f"{subnet}.40", ["open"])}
    u = str(uuid.uuid4())
    with pytest.raises(exception.InvalidRequest, match=field):
        a.api.client.prepare(server=a.host).call(
            {}, "build_and_run_instance", instance_uuid=u, name="bad",
            flavor={"vcpus": 1, "memory_mb": 128, "root_gb": 1}, image_id="x",
            networks=[item])
    assert a.find(u) is None
    assert without_counters(host_state(hA)) == before


@pytest.mark.parametrize("address,why", [
    ("127.0.0.1", "not a unicast address"), ("198.51.100.7", "outside this host's "
                                                             "floating_ranges"),
    ("203.0.113.1", "an address of this host"), ("224.0.0.9", "not a unicast address")])
def test_floating_ips_only_from_the_configured_ranges(bed, neighbours, address, why):
    hA, victim = bed.hosts["hA"], neighbours[0]
    before = without_counters(host_state(hA))
    with pytest.raises(exception.InvalidRequest, match=why):
        victim.agent.api.associate_floating_ip(victim.agent.host, victim.uuid, address)
    assert without_counters(host_state(hA)) == before


def _accepts_from(ns, address, port_):
    """Whether a TCP connection from netns ns to address:port_ opens (a
    dropped SYN: no, after 3 s)."""
    return subprocess.run(["ip", "netns", "exec", ns, "timeout", "3", "bash", "-c",
                           f"exec 3<>/dev/tcp/{address}/{port_}"],
                          capture_output=True).returncode == 0


def test_a_guest_reaches_nothing_of_its_host_but_what_it_needs(bed, neighbours):
    """A guest whose group allows all egress tries its host's management
    address on every port something listens on there: its neighbours' VNC
    and serial consoles, libvirtd, the metrics, and stand-ins for a live
    migration's and a disk transfer's ports.  Its SYNs are seen on its tap
    and nothing answers; it still pings its neighbour and the outside (by
    SNAT); the proxy still opens both consoles; another host of the
    management network reaches neither console port, and the VNC server
    wants a password from anyone who reaches it without the proxy."""
    victim = neighbours[0]
    hA = bed.hosts["hA"]
    mgmt = hA.mgmt_ip
    xml = hA.virsh("dumpxml", victim.uuid)
    stand_ins = {"migration": 49152, "transfer": 41234}
    relays = [subprocess.Popen(["ip", "netns", "exec", hA.ns, "socat",
                                f"TCP-LISTEN:{p},bind={mgmt},fork,reuseaddr", "SYSTEM:true"],
                               stderr=subprocess.DEVNULL) for p in stand_ins.values()]
    try:
        ports = {"vnc": console_ports.vnc_target(xml)[1],
                 "serial": console_ports.serial_target(xml)[1],
                 "libvirtd": 16509, "metrics": hA.agent.metrics_port, **stand_ins}
        for what, p in ports.items():         # so the check can fail: they do answer
            # (the consoles to the proxy's address alone: see below)
            ns = bed.sw if what in ("vnc", "serial") else hA.ns
            wait_until(lambda p=p, ns=ns: _accepts_from(ns, mgmt, p), 20, 0.2,
                       f"{what} on {p}")
        targets = ",".join(f"{mgmt}:{p}" for p in ports.values())
        allout = {"id": "allout", "rules": EGRESS + [ICMP_IN]}
        item = {"port": port("10.0.0.32", ["allout"]), "network": flat_network("hA")}
        probe = Guest(bed, "hA", "probe", item,
                      f"tb.ip=dhcp tb.connect={targets} tb.connectat=8 "
                      f"tb.ping=10.0.0.22,{EXTERNAL}", [allout])
        wait_dhcp(probe)
        with Capture(hA.ns, names.tap(item["port"]["id"]), f"tcp and host {mgmt}") as seen:
            lines = wait_until(lambda: (found := re.findall(r"^TB: connect (\S+)=(\w+)$",
                                                            probe.console(), re.M))
                               and len(found) >= len(ports) and found, 120, 0.5,
                               "the probe's connection attempts")
        assert dict(lines[:len(ports)]) == {f"{mgmt}:{p}": "closed" for p in ports.values()}
        for what, p in ports.items():
            syn = [x for x in seen.lines if "10.0.0.32." in x and f"> {mgmt}.{p}:" in x
                   and "Flags [S]" in x]
            assert syn, (what, p, seen.lines[:20])            # it did try
        answers = [x for x in seen.lines if f"{mgmt}." in x.split(">")[0]]
        assert answers == [], answers                         # no SYN-ACK, no RST
        # and what it needs still works: its neighbour, the outside through SNAT
        probe.wait_pings("10.0.0.22", "ok")
        probe.wait_pings(EXTERNAL, "ok")
    finally:
        for r in relays:
            r.kill()
    # the proxy is the way in: both consoles open through it
    bed.start_console_proxy()
    a = victim.agent
    serial = bed.console(a.api.get_serial_console(a.host, victim.uuid)["url"], "", linger=3)
    assert "TB: tick" in serial
    vnc = vnc_through_proxy(bed.sw, a.api.get_vnc_console(a.host, victim.uuid)["websocket"])
    assert vnc.startswith("RFB 003.008 [1] 00000000 ") and victim.uuid in vnc, vnc
    # the console ports answer the proxy's address alone (ca-consoles): not
    # another host of the management network; and reached from the proxy's
    # address without the proxy, the VNC server still wants its password
    hB = bed.hosts["hB"]
    for what in ("vnc", "serial"):
        assert not _accepts_from(hB.ns, mgmt, ports[what]), what
    assert _accepts_from(hB.ns, mgmt, 16509)                  # hB does reach hA
    assert vnc_security_types(bed.sw, mgmt, ports["vnc"]) == [2]
