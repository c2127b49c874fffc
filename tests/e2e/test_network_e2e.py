"""Guest networking end to end, on the multi-host test bed: two namespaced
hosts (hA, hB), each with its own libvirtd and compute-agent, joined by a
flat data segment and a management segment carrying VXLAN.  Guests get
their fixed IPs from the agents' dnsmasqs and report pings on their
consoles; security groups, anti-spoofing and floating IPs are checked by
what the guests (and an external namespace) can reach."""
import contextlib
import json
import os
import re
import subprocess
import time

import pytest

from network import names
from tests.harness import guest
from tests.harness.agent import BIN, wait_until
from tests.harness.capture import Capture
from tests.harness.netguests import (
    FLOATING,
    OPEN,
    WEB_ICMP,
    WEB_NO_ICMP,
    Guest,
    ext_ping,
    flat_network,
    port,
    refresh,
    vxlan_network,
    wait_dhcp,
)
from tests.harness.testbed import kernel_has_vlan, ns_exec, two_hosts


@pytest.fixture(scope="module")
def bed():
    yield from two_hosts("net", external=True)


@pytest.fixture(scope="module")
def flat_guests(bed):
    """g1, g2 on hA and g3 on hB, one flat network, group web (no ICMP)."""
    g1 = Guest(bed, "hA", "g1", {"port": port("10.0.0.11", ["web"]),
                                 "network": flat_network("hA")},
               "tb.ip=dhcp tb.ping=10.0.0.12,10.0.0.13", [WEB_NO_ICMP])
    g2 = Guest(bed, "hA", "g2", {"port": port("10.0.0.12", ["web"]),
                                 "network": flat_network("hA")},
               "tb.ip=dhcp tb.ping=10.0.0.11", [WEB_NO_ICMP])
    g3 = Guest(bed, "hB", "g3", {"port": port("10.0.0.13", ["web"]),
                                 "network": flat_network("hB")},
               "tb.ip=dhcp tb.ping=10.0.0.11", [WEB_NO_ICMP])
    for g in (g1, g2, g3):
        wait_dhcp(g)
    return g1, g2, g3


def test_security_group_rules_change_without_restarting_guests(bed, flat_guests):
    g1, g2, g3 = flat_guests
    # each guest got its fixed IP from its own host's dnsmasq (wait_dhcp):
    # hA's one dnsmasq was reloaded, not restarted, for the second guest
    assert len(bed.hosts["hA"].snapshot()["dnsmasq"]) == 1
    assert "dnsmasq of network flat1 reloaded" in g1.agent.log()
    # without an ICMP rule nobody answers, on the same host or across hosts
    g1.wait_pings("10.0.0.12", "FAIL")
    g1.wait_pings("10.0.0.13", "FAIL")
    g3.wait_pings("10.0.0.11", "FAIL")
    mark = {g: g.last_tick() for g in flat_guests}
    refresh(bed, WEB_ICMP)
    g1.wait_pings("10.0.0.12", "ok", mark[g1])     # same host
    g2.wait_pings("10.0.0.11", "ok", mark[g2])
    g1.wait_pings("10.0.0.13", "ok", mark[g1])     # hA -> hB over the flat segment
    g3.wait_pings("10.0.0.11", "ok", mark[g3])     # hB -> hA
    mark = {g: g.last_tick() for g in flat_guests}
    refresh(bed, WEB_NO_ICMP)
    g1.wait_pings("10.0.0.12", "FAIL", mark[g1])
    g3.wait_pings("10.0.0.11", "FAIL", mark[g3])
    for g in flat_guests:                           # nobody rebooted
        assert g.console().count("TB: boot-ok") == 1
    refresh(bed, WEB_ICMP)
    g1.wait_pings("10.0.0.12", "ok", g1.last_tick())


def test_two_hosts_over_vxlan(bed):
    g4 = Guest(bed, "hA", "g4", {"port": port("10.1.0.11", ["open"]),
                                 "network": vxlan_network(bed, "hA")},
               "tb.ip=dhcp tb.ping=10.1.0.12", [OPEN])
    g5 = Guest(bed, "hB", "g5", {"port": port("10.1.0.12", ["open"]),
                                 "network": vxlan_network(bed, "hB")},
               "tb.ip=dhcp tb.ping=10.1.0.11", [OPEN])
    wait_dhcp(g4)
    wait_dhcp(g5)
    g4.wait_pings("10.1.0.12", "ok")
    g5.wait_pings("10.1.0.11", "ok")
    bridge = names.bridge("vx1")                   # no bridge in the payload: the agent's
    assert "vxlan-200" in bed.hosts["hA"].run("ip", "-o", "link", "show", "master", bridge)
    for g in (g4, g5):
        g.agent.api.terminate_instance(g.agent.host, g.uuid)
        g.agent.wait_state(g.uuid, {"deleted"})


@pytest.mark.parametrize("spoof", ["ip", "mac"])
def test_a_guest_taking_another_ports_address_reaches_no_one(bed, flat_guests, spoof):
    g1, g2, g3 = flat_guests
    ip = "10.0.0.21" if spoof == "ip" else "10.0.0.22"
    steal = f"tb.setip={g2.ip}/24" if spoof == "ip" else \
        f"tb.setmac={g2.item['port']['mac']}"
    g = Guest(bed, "hA", f"spoof-{spoof}", {"port": port(ip, ["open"]),
                                            "network": flat_network("hA")},
              f"tb.ip=dhcp tb.ping=10.0.0.11,10.0.0.13 tb.spoofat=4 {steal}", [OPEN])
    wait_dhcp(g)
    g.agent.wait_console(g.uuid, lambda c: re.search(r"^TB: tick [123] .*10.0.0.11=ok", c,
                                                     re.M), "pings before spoofing")
    g.agent.wait_console(g.uuid, lambda c: "TB: spoofing" in c, "spoofing")
    # what the spoofer sends, told apart from g2's own traffic: the stolen
    # address with the spoofer's own other half (its MAC, or its IP)
    spoofed = (f"ether src {g.item['port']['mac']} and ip src {g2.ip}" if spoof == "ip" else
               f"ether src {g2.item['port']['mac']} and ip src {ip}")
    hA = bed.hosts["hA"]
    with Capture(hA.ns, names.tap(g1.item["port"]["id"]), spoofed, "out") as to_g1, \
            Capture(hA.ns, "data0", spoofed, "out") as to_hB:
        g.wait_pings("10.0.0.11", "FAIL", 4, times=3)    # same host
        g.wait_pings("10.0.0.13", "FAIL", 4, times=3)    # other host
    assert (to_g1.lines, to_hB.lines) == ([], [])         # nothing arrives anywhere
    g.agent.api.terminate_instance(g.agent.host, g.uuid)
    g.agent.wait_state(g.uuid, {"deleted"})


def test_floating_ip_reaches_the_guest_from_outside(bed, flat_guests):
    g1 = flat_guests[0]
    api, host = g1.agent.api, g1.agent.host
    assert not ext_ping(bed, FLOATING)
    api.associate_floating_ip(host, g1.uuid, FLOATING)
    wait_until(lambda: ext_ping(bed, FLOATING), 20, 0.5, "floating IP to answer")
    assert FLOATING + "/32" in bed.hosts["hA"].run("ip", "-o", "addr", "show", "pub0")
    api.disassociate_floating_ip(host, FLOATING)
    time.sleep(1)
    assert not any(ext_ping(bed, FLOATING) for _ in range(3))
    assert FLOATING not in bed.hosts["hA"].run("ip", "-o", "addr", "show", "pub0")


def test_attach_and_detach_an_interface_while_the_guest_runs(bed, flat_guests):
    g2, hA = flat_guests[1], bed.hosts["hA"]
    api, host = g2.agent.api, g2.agent.host
    item = {"port": port("10.0.0.41", ["web"]), "network": flat_network("hA")}
    pid, tap = item["port"]["id"], names.tap(item["port"]["id"])
    api.attach_interface(host, g2.uuid, item["port"], item["network"])
    assert tap in hA.run("ip", "-o", "link", "show", "master", "brcaflat")
    assert f":ca-i{names.chain_id(pid)}" in hA.run("iptables-save")   # filtered before use
    assert tap in hA.run("nft", "list", "table", "bridge", "compute_agent")
    g2.agent.wait_console(g2.uuid, lambda c: re.findall(r"^TB: tick .* nics=(\d)", c, re.M)[-1]
                          == "2", "the guest to see a second NIC")
    api.detach_interface(host, g2.uuid, pid)
    g2.agent.wait_console(g2.uuid, lambda c: re.findall(r"^TB: tick .* nics=(\d)", c, re.M)[-1]
                          == "1", "the guest to lose it")
    assert tap not in hA.run("ip", "-o", "link")
    assert names.chain_id(pid) not in hA.run("iptables-save")
    assert g2.console().count("TB: boot-ok") == 1


def test_live_migration_takes_the_port_along(bed, flat_guests):
    g1, g2, _ = flat_guests
    a, b = bed.hosts["hA"].agent, bed.hosts["hB"].agent
    view = [dict(g2.item, network=flat_network("hB"))]       # hB's view of the network
    a.api.live_migrate_instance(a.host, g2.uuid, b.host, block_migration=True,
                                networks=view)
    wait_until(lambda: (r := b.find(g2.uuid)) and r["task_state"] is None, 120, 0.2,
               "g2 on hB")
    g2.agent = b                                                 # its console is on hB now
    chain = f":ca-i{names.chain_id(g2.item['port']['id'])}"
    assert chain in bed.hosts["hB"].run("iptables-save")
    # the source unplugs after the destination settled: wait for it
    wait_until(lambda: chain not in bed.hosts["hA"].run("iptables-save"), 30,
               0.2, "g2's chains to leave hA")
    g1.wait_pings("10.0.0.12", "ok", g1.last_tick())          # hA -> hB now
    g2.wait_pings("10.0.0.11", "ok")
    assert "TB: boot-ok" not in g2.console()                   # moved, not rebooted


def test_rebuild_wipes_the_disk_and_keeps_the_address(bed, tmp_path):
    """Rebuilt from a new image: the old disk's writes and marker are gone,
    the guest has the new image's disk, and it comes back with the same MAC
    (dnsmasq leases by MAC) and the same address, reachable there."""
    hA = bed.hosts["hA"]
    item = {"port": port("10.0.0.21", ["open"]), "network": flat_network("hA")}
    cmdline = "console=ttyS0 quiet tb.name=rb tb.ip=dhcp tb.ping=10.0.0.2"
    g = Guest(bed, "hA", "rb", item, "tb.ip=dhcp tb.ping=10.0.0.2", [OPEN])
    wait_dhcp(g)
    a = g.agent
    a.api.reboot_instance(a.host, g.uuid, "HARD")
    a.wait_console(g.uuid, lambda c: "TB: bootcount=2" in c and "TB: dhcp eth0 10.0.0.21/24"
                   in c.rsplit(guest.BOOT_MARKER, 1)[-1], "the second boot of its disk")

    def answers():
        return hA.run("busybox", "ping", "-c", "1", "-W", "1", "10.0.0.21", check=False)
    wait_until(lambda: "1 packets received" in answers(), 30, 0.5, "the guest to answer")
    new = bed.images.upload_disk(guest.make_disk(str(tmp_path), "rebuilt-disk"), cmdline)
    booted = guest.boots(g.console())
    assert a.api.rebuild_instance(a.host, g.uuid, new)["image_ref"] == new
    rec = a.wait_settled(g.uuid)
    assert (rec["vm_state"], rec["image_id"]) == ("active", new), rec
    a.wait_console(g.uuid, lambda c: guest.boots(c) > booted and "TB: dhcp eth0 10.0.0.21/24"
                   in c.rsplit(guest.BOOT_MARKER, 1)[-1], "DHCP after the rebuild")
    boot = g.console().rsplit(guest.BOOT_MARKER, 1)[-1]
    assert "TB: disk-marker=rebuilt-disk" in boot and "TB: bootcount=1" in boot, boot
    assert "test-guest-disk" not in boot
    wait_until(lambda: "1 packets received" in answers(), 30, 0.5, "an answer, same address")
    assert item["port"]["mac"] in hA.virsh("domiflist", g.uuid)
    g.wait_pings("10.0.0.2", "ok", g.last_tick())
    a.api.terminate_instance(a.host, g.uuid)
    a.wait_state(g.uuid, {"deleted"})


def test_shelve_offload_leaves_nothing_and_unshelve_on_hb_keeps_disk_and_address(
        bed, tmp_path):
    """Shelved through computectl (and offloaded at once): hA keeps no
    domain, disk, tap, chain or bridge rule of it.  Unshelved on hB with
    hB's view of the network: its own disk boots there (the boot count
    goes on) with the same MAC and address, reachable."""
    hA, hB = bed.hosts["hA"], bed.hosts["hB"]
    item = {"port": port("10.0.0.31", ["open"]), "network": flat_network("hA")}
    g = Guest(bed, "hA", "sh", item, "tb.ip=dhcp tb.ping=10.0.0.2", [OPEN])
    wait_dhcp(g)
    a, b = hA.agent, hB.agent
    pid, tap = item["port"]["id"], names.tap(item["port"]["id"])
    assert tap in hA.run("ip", "-o", "link")
    run = subprocess.run([os.path.join(BIN, "computectl"), "--config-file", a.config_file,
                          "shelve", "--host", a.host, g.uuid],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    rec = a.find(g.uuid)
    assert (rec["vm_state"], rec["task_state"]) == ("shelved_offloaded", None), rec
    assert rec["shelved_image_id"]
    assert f"instance-{g.uuid}" not in hA.virsh("list", "--all", "--name")
    assert not os.path.exists(os.path.join(a.instances_path, g.uuid))
    assert tap not in hA.run("ip", "-o", "link")
    assert names.chain_id(pid) not in hA.run("iptables-save")
    assert tap not in hA.run("nft", "list", "ruleset")

    nets = tmp_path / "nets.json"                              # hB's view of the network
    nets.write_text(json.dumps({"networks": [dict(item, network=flat_network("hB"))]}))
    run = subprocess.run([os.path.join(BIN, "computectl"), "--config-file", a.config_file,
                          "unshelve", "--host", a.host, "--dest", b.host, "--networks",
                          str(nets), g.uuid], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "vm_state=active task_state=None" in run.stderr    # its progress, from hB
    g.agent = b
    rec = b.find(g.uuid)
    assert (rec["vm_state"], rec["power_state"], rec["shelved_image_id"]) == (
        "active", "RUNNING", None), rec
    assert a.find(g.uuid) is None                               # hA let it go
    b.wait_console(g.uuid, lambda c: "TB: bootcount=2" in c and "TB: dhcp eth0 10.0.0.31/24"
                   in c, "its own disk's second boot, with its address")
    assert item["port"]["mac"] in hB.virsh("domiflist", g.uuid)

    def answers():
        return hB.run("busybox", "ping", "-c", "1", "-W", "1", "10.0.0.31", check=False)
    wait_until(lambda: "1 packets received" in answers(), 30, 0.5, "the guest to answer")
    b.api.terminate_instance(b.host, g.uuid)
    b.wait_state(g.uuid, {"deleted"})


def test_rules_survive_an_agent_restart_and_nothing_is_left_after_deletes(bed, flat_guests):
    api_a = bed.hosts["hA"].agent.api
    hA = bed.hosts["hA"]
    api_a.associate_floating_ip(hA.agent.host, flat_guests[0].uuid, FLOATING)
    rules = hA.snapshot()
    assert any(line.startswith("-A ca-") for line in rules["iptables"])
    hA.agent.kill_agent()
    # kernel rules outlive a killed process anyway: take them away (as a
    # host reboot would), so only the restarted agent can bring them back
    for tool in ("iptables", "ip6tables"):
        kept = "\n".join(line for line in hA.run(f"{tool}-save").splitlines()
                         if "ca-" not in line) + "\n"
        ns_exec(hA.ns, f"{tool}-restore", input=kept)
    hA.run("nft", "delete", "table", "bridge", "compute_agent")
    assert not any("ca-" in line for line in hA.snapshot()["iptables"])
    hA.agent.restart_agent()
    after = hA.snapshot()
    assert after["iptables"] == rules["iptables"]
    assert after["ip6tables"] == rules["ip6tables"]
    assert after["dnsmasq"] == rules["dnsmasq"]
    for g in flat_guests:
        g.agent.api.terminate_instance(g.agent.host, g.uuid)
    for g in flat_guests:
        g.agent.wait_state(g.uuid, {"deleted"})
    for name, h in bed.hosts.items():
        with contextlib.suppress(TimeoutError):
            wait_until(lambda h=h, n=name: h.snapshot() == bed.before[n], 10, 0.5)
        now, before = h.snapshot(), bed.before[name]
        for key in before:
            assert (key, sorted(set(now[key]) - set(before[key])),
                    sorted(set(before[key]) - set(now[key]))) == (key, [], [])


def test_vlan_network_between_two_guests(bed):
    if not kernel_has_vlan():
        pytest.skip("this kernel has no 802.1Q support (CONFIG_VLAN_8021Q is off); "
                    "VLAN plugging is covered by tests/unit/test_network.py::"
                    "test_vlan_network_gets_a_subinterface_of_its_mapped_interface")
    net = {"id": "vlan1", "bridge": "brcavlan", "cidr": "10.2.0.0/24", "dhcp": True,
           "segmentation": {"type": "vlan", "vlan_id": 100, "physical_network": "physnet1"}}
    ga = Guest(bed, "hA", "va", {"port": port("10.2.0.11", ["open"]),
                                 "network": dict(net, host_address="10.2.0.2")},
               "tb.ip=dhcp tb.ping=10.2.0.12", [OPEN])
    gb = Guest(bed, "hB", "vb", {"port": port("10.2.0.12", ["open"]),
                                 "network": dict(net, host_address="10.2.0.3")},
               "tb.ip=dhcp tb.ping=10.2.0.11", [OPEN])
    ga.wait_pings("10.2.0.12", "ok")
    gb.wait_pings("10.2.0.11", "ok")
