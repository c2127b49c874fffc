"""What a guest is told about itself, end to end on the two-host bed.

The config drive: the test guest (booted with tb.cd=1) mounts the ISO
labelled config-2 as cloud-init would, prints its meta_data.json and
network_data.json on its console and runs its user_data script.  The drive
follows the guest through a hard reboot (with a port attached since), a
snapshot, a live migration and a resize to the other host.

The metadata service: guests (tb.meta=1) ask 169.254.169.254 for their
meta_data.json; each gets its own, and one that takes another's address
gets nothing."""
import base64
import json
import os
import re
import subprocess

import pytest

from compute.core import exception
from tests.harness import guest
from tests.harness.agent import wait_until
from tests.harness.netguests import flat_network, port
from tests.harness.testbed import two_hosts
from virt import configdrive

SMALL = {"vcpus": 1, "memory_mb": 128, "root_gb": 1}
SCRIPT = b"#!/bin/sh\necho \"TB: user-data-ran on $(hostname)\"\n"


@pytest.fixture(scope="module")
def bed():
    yield from two_hosts("cd")


@pytest.fixture(scope="module")
def ssh_key(tmp_path_factory):
    path = tmp_path_factory.mktemp("keys") / "id"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "alice@e2e",
                    "-f", str(path)], check=True)
    return path.with_suffix(".pub").read_text().strip()


def static_network(host):
    """The flat segment without DHCP: the guest learns its address only
    from network_data.json (gateway and DNS are the same from every host)."""
    return dict(flat_network(host), dhcp=False, gateway="10.0.0.1", dns_servers=["10.0.0.53"])


def drive_docs(console):
    """{name: document} of the last config drive the guest read."""
    tail = console.rsplit(guest.BOOT_MARKER, 1)[-1]
    return {m.group(1): json.loads(m.group(2)) for m in re.finditer(
        r"^TB: config-2 (meta_data\.json|network_data\.json) (.*)$", tail, re.M)}


def read_in_guest(agent, u, boots):
    """The drive's documents, once boot number `boots` has read them."""
    console = agent.wait_console(
        u, lambda c: guest.boots(c) >= boots
        and "TB: config-2 on" in c.rsplit(guest.BOOT_MARKER, 1)[-1], "the config drive read")
    return drive_docs(console)


def cdrom(host, u):
    xml = host.virsh("dumpxml", f"instance-{u}")
    disk = re.search(r"<disk type='file' device='cdrom'>.*?</disk>", xml, re.S).group(0)
    return disk


def without_password(files):
    out = dict(files)
    for name in [n for n in out if n.endswith("meta_data.json")]:
        meta = json.loads(out[name])
        meta.pop("admin_pass", None)
        out[name] = meta
    return out


@pytest.fixture(scope="module")
def cd_guest(bed, ssh_key):
    a = bed.hosts["hA"].agent
    image = bed.images.upload_variant("console=ttyS0 quiet tb.name=cd tb.cd=1")
    item = {"port": port("10.0.0.41", []), "network": static_network("hA")}
    u = a.boot("cd guest", image=image, flavor=dict(SMALL), networks=[item],
               wait_console=False, config_drive=True, hostname="cd-one.example.org",
               key_pairs=[{"name": "alice", "public_key": ssh_key}],
               user_data=base64.b64encode(SCRIPT).decode(), admin_pass="first-pass")
    return u, item


def test_the_guest_reads_its_identity_keys_and_static_address_and_runs_its_script(
        bed, cd_guest, ssh_key):
    a, hA = bed.hosts["hA"].agent, bed.hosts["hA"]
    u, item = cd_guest
    docs = read_in_guest(a, u, 1)
    meta, net = docs["meta_data.json"], docs["network_data.json"]
    assert (meta["uuid"], meta["name"], meta["hostname"]) == (u, "cd guest",
                                                              "cd-one.example.org")
    assert meta["public_keys"] == {"alice": ssh_key} and meta["admin_pass"] == "first-pass"
    assert net["links"][0]["ethernet_mac_address"] == item["port"]["mac"]
    assert net["networks"] == [{
        "id": "network0", "type": "ipv4", "link": net["links"][0]["id"], "network_id": "flat1",
        "ip_address": "10.0.0.41", "netmask": "255.255.255.0",
        "routes": [{"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": "10.0.0.1"}],
        "services": [{"type": "dns", "address": "10.0.0.53"}]}]
    assert "TB: user-data-ran on cd" in a.console(u)
    assert a.api.get_instance(a.host, u)["config_drive"] is True
    disk = cdrom(hA, u)
    assert "<readonly/>" in disk and f"{a.agent_instances_path}/{u}/disk.config" in disk
    # the record keeps no password (nor does the database's journal)
    files = [os.path.join(a.state_path, n) for n in os.listdir(a.state_path)
             if n.startswith("compute.sqlite")]
    assert files
    for path in files:
        with open(path, "rb") as f:
            assert b"first-pass" not in f.read()


def test_a_port_attached_later_is_on_the_drive_after_a_hard_reboot(bed, cd_guest):
    a = bed.hosts["hA"].agent
    u, item = cd_guest
    second = port("10.0.0.42", [])
    a.api.attach_interface(a.host, u, second, static_network("hA"))
    a.api.reboot_instance(a.host, u, "HARD")
    wait_until(lambda: (r := a.find(u)) and r["task_state"] is None, 120, 0.2, "hard reboot")
    docs = read_in_guest(a, u, 2)
    assert [link["ethernet_mac_address"] for link in docs["network_data.json"]["links"]] \
        == [item["port"]["mac"], second["mac"]]
    assert [n["ip_address"] for n in docs["network_data.json"]["networks"]] \
        == ["10.0.0.41", "10.0.0.42"]
    assert "admin_pass" not in docs["meta_data.json"]     # given once, at build
    a.api.detach_interface(a.host, u, second["id"])
    a.wait_settled(u)
    a.api.reboot_instance(a.host, u, "HARD")                # and gone again
    wait_until(lambda: (r := a.find(u)) and r["task_state"] is None, 120, 0.2, "hard reboot")
    docs = read_in_guest(a, u, 3)
    assert [n["ip_address"] for n in docs["network_data.json"]["networks"]] == ["10.0.0.41"]


def test_a_snapshot_of_a_guest_with_a_drive_boots_with_a_drive_of_its_own(bed, cd_guest):
    a = bed.hosts["hA"].agent
    u, _ = cd_guest
    image_id = a.api.snapshot_instance(a.host, u, "cd-snap")["image_id"]
    a.wait_settled(u)
    item = {"port": port("10.0.0.43", []), "network": static_network("hA")}
    new = a.boot("from snapshot", image=image_id, flavor=dict(SMALL), networks=[item],
                 wait_console=False, config_drive=True)
    docs = read_in_guest(a, new, 1)
    assert (docs["meta_data.json"]["uuid"], docs["meta_data.json"]["hostname"]) \
        == (new, "from-snapshot")
    assert docs["network_data.json"]["networks"][0]["ip_address"] == "10.0.0.43"
    assert guest.DISK_MARKER in a.console(new)               # the snapshot's disk
    a.api.terminate_instance(a.host, new)
    a.wait_state(new, {"deleted"})


def test_the_drive_follows_a_live_migration_and_a_resize(bed, cd_guest):
    a, b = bed.hosts["hA"].agent, bed.hosts["hB"].agent
    u, item = cd_guest
    before = without_password(configdrive.read(os.path.join(a.instances_path, u,
                                                            "disk.config")))
    view = [dict(item, network=static_network("hB"))]
    a.api.live_migrate_instance(a.host, u, b.host, block_migration=True, networks=view)
    wait_until(lambda: (r := b.find(u)) and r["task_state"] is None and r["host"] == b.host,
               180, 0.2, "the guest on hB")
    on_b = os.path.join(b.instances_path, u, "disk.config")
    assert without_password(configdrive.read(on_b)) == before
    assert "<readonly/>" in cdrom(bed.hosts["hB"], u)
    wait_until(lambda: not os.path.exists(os.path.join(a.instances_path, u)), 60, 0.2,
               "the source to drop its copy")

    # resized back to hA (more memory): the guest boots there from the drive there
    boots = guest.boots(b.console(u))
    b.api.migrate_instance(b.host, u, a.host, flavor=dict(SMALL, memory_mb=160),
                           networks=[dict(item, network=static_network("hA"))])
    wait_until(lambda: (r := a.find(u)) and r["task_state"] is None
               and r["vm_state"] == "resized", 180, 0.2, "the guest resized on hA")
    a.api.confirm_resize(a.host, u)
    wait_until(lambda: (r := a.find(u)) and r["task_state"] is None
               and r["vm_state"] == "active", 120, 0.2, "confirmed")
    assert without_password(configdrive.read(os.path.join(a.instances_path, u,
                                                          "disk.config"))) == before
    docs = read_in_guest(a, u, boots + 1)
    assert docs["meta_data.json"]["uuid"] == u
    assert docs["network_data.json"]["networks"][0]["ip_address"] == "10.0.0.41"
    a.api.terminate_instance(a.host, u)
    a.wait_state(u, {"deleted"})
    assert not os.path.exists(os.path.join(a.instances_path, u))


@pytest.mark.parametrize("bad, field", [
    ({"user_data": "not base64!"}, "user_data"),
    ({"user_data": base64.b64encode(b"x" * 70000).decode()}, "user_data"),
    ({"key_pairs": [{"name": "k", "public_key": "ssh-rsa bm90IGEga2V5"}]}, "key_pairs"),
    ({"hostname": "bad_host!"}, "hostname"),
])
def test_bad_guest_data_is_refused_and_nothing_is_written(bed, bad, field):
    a = bed.hosts["hA"].agent
    u = "00000000-0000-4000-8000-0000000000cd"
    with pytest.raises(exception.InvalidRequest, match=field):     # the agent's own check
        a.api.client.prepare(server=a.host).call(
            {}, "build_and_run_instance", instance_uuid=u, name="bad", flavor=dict(SMALL),
            image_id=bed.images.images["disk"], config_drive=True, **bad)
    assert a.find(u) is None
    assert not os.path.exists(os.path.join(a.instances_path, u))


# -- the metadata service ------------------------------------------------------------

def metadata_lines(console, label):
    """The guest's complete metadata lines (a line still arriving over the
    serial port, without its newline yet, is not one)."""
    return [m.group(1) for m in re.finditer(rf"^TB: metadata {label} (.*)\r?\n", console,
                                            re.M)]


def test_each_guest_gets_its_own_metadata_and_a_spoofer_none(bed, ssh_key):
    hA = bed.hosts["hA"]
    a = hA.agent
    net = dict(flat_network("hA"), metadata=True)
    group = {"id": "open", "rules": [{"direction": "egress", "ethertype": "IPv4"}]}
    first, second = port("10.0.0.51", ["open"]), port("10.0.0.52", ["open"])
    m1 = a.boot("m1", image=bed.images.upload_variant(
        "console=ttyS0 quiet tb.name=m1 tb.ip=dhcp tb.meta=1"), flavor=dict(SMALL),
        networks=[{"port": first, "network": net}], security_groups=[group],
        wait_console=False, hostname="meta-one",
        key_pairs=[{"name": "alice", "public_key": ssh_key}])
    m2 = a.boot("m2", image=bed.images.upload_variant(
        "console=ttyS0 quiet tb.name=m2 tb.ip=dhcp tb.meta=1 tb.spoofat=3 "
        "tb.setip=10.0.0.51/24 tb.gw=10.0.0.2"), flavor=dict(SMALL),
        networks=[{"port": second, "network": net}], security_groups=[group],
        wait_console=False)
    one = json.loads(metadata_lines(a.wait_console(
        m1, lambda c: metadata_lines(c, "boot"), "m1's metadata"), "boot")[0])
    assert (one["uuid"], one["hostname"], one["public_keys"]) == (m1, "meta-one",
                                                                  {"alice": ssh_key})
    console = a.wait_console(m2, lambda c: metadata_lines(c, "spoofed"), "m2 spoofing")
    two = json.loads(metadata_lines(console, "boot")[0])
    assert (two["uuid"], two["hostname"], two["public_keys"]) == (m2, "m2", {})
    # with m1's address m2's requests never leave its tap: no data at all
    assert [line.split()[0] for line in metadata_lines(console, "spoofed")] == ["FAIL"]
    # the service listens, but only DNATed requests reach it
    assert ":8775 " in hA.run("ss", "-Hltn")
    assert "ca-meta-pre" in hA.run("iptables-save", "-t", "nat")
    probe = subprocess.run(["ip", "netns", "exec", hA.ns, "timeout", "3", "bash", "-c",
                            "exec 3<>/dev/tcp/10.0.0.2/8775"], capture_output=True)
    assert probe.returncode != 0
    for u in (m1, m2):
        a.api.terminate_instance(a.host, u)
        a.wait_state(u, {"deleted"})
