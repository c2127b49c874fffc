"""What a guest is told about itself: the checks on a build's user data,
keys, host name and password; the OpenStack documents; the ISO that
carries them; and the CD-ROM in the domain XML."""
import base64
import json

import pytest

from compute.core import instance_data as data
from compute.rpc import schemas
from network import names
from tests.unit.test_builder import DISKS, INST, META
from tests.unit.test_network import NET, VIF, build
from virt import configdrive
from virt.libvirt import builder

ED25519 = ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPyqlFKqyRkdc5K/XwqlNCoxgMxRZqzyQs5wKE/0oWks"
           " alice@laptop")
KEYS = [{"name": "alice", "type": "ssh", "public_key": ED25519}]
USER_DATA = base64.b64encode(b"#!/bin/sh\necho hello > /marker\n").decode()


def guest_data(**extra):
    return data.guest_data_from_payload(build(**extra), False, "zone-a")


def test_a_full_request_passes_schema_and_checks():
    payload = build(user_data=USER_DATA, key_pairs=KEYS, hostname="Web-1.example.org",
                    admin_pass="s3cret pass", config_drive=True, networks=[VIF])
    schemas.validate("build_and_run_instance", payload)
    g = data.guest_data_from_payload(payload, False, "zone-a")
    assert g == {"config_drive": True, "hostname": "web-1.example.org",
                 "user_data": USER_DATA, "key_pairs": KEYS, "availability_zone": "zone-a"}
    assert "admin_pass" not in json.dumps(g)             # never recorded


@pytest.mark.parametrize("extra, message", [
    ({"user_data": "not base64!"}, "user_data"),
    ({"user_data": "QUJD\n"}, "user_data"),
    ({"user_data": "A" * 90000}, "user_data"),
    ({"hostname": "-bad-"}, None),
    ({"hostname": "a" * 64}, None),
    ({"key_pairs": [{"name": "k", "public_key": "hello"}]}, None),
    ({"key_pairs": [{"name": "k/../x", "public_key": ED25519}]}, "name"),
    ({"admin_pass": ""}, "admin_pass"),
])
def test_the_schema_or_the_checks_refuse(extra, message):
    payload = build(**extra)
    with pytest.raises(Exception) as err:
        schemas.validate("build_and_run_instance", payload)
        data.guest_data_from_payload(payload, False, None)
    assert isinstance(err.value, (ValueError, schemas.InvalidRequest))
    if message:
        assert message in str(err.value)


@pytest.mark.parametrize("key, message", [
    ("ssh-ed25519 AAAA", "blob is not ssh-ed25519"),
    ("ssh-ed25519 @@@@", "not an OpenSSH public key"),
    ("ssh-rsa " + ED25519.split()[1], "blob is not ssh-rsa"),
    ("ssh-ed25519 " + base64.b64encode(b"\0\0\0\x0bssh-ed25519\0\0\0\x03abc").decode(),
     "not a valid ssh-ed25519 key"),
    ("-----BEGIN RSA PRIVATE KEY-----", "not an OpenSSH public key"),
])
def test_a_key_that_is_not_a_public_key_is_refused(key, message):
    with pytest.raises(ValueError, match=message):
        guest_data(key_pairs=[{"name": "k", "public_key": key}])


def test_two_keys_with_one_name_and_control_characters_in_a_password_are_refused():
    with pytest.raises(ValueError, match="share a name"):
        guest_data(key_pairs=KEYS * 2)
    with pytest.raises(ValueError, match="control characters"):
        guest_data(admin_pass="a\nb")
    with pytest.raises(ValueError, match="all digits"):
        guest_data(hostname="1234")


def test_a_hostname_is_made_from_the_name_when_none_is_given():
    assert data.hostname_from_name("My Web_Server #2", "8a3b7c2d-x") == "my-web-server-2"
    assert data.hostname_from_name("---", "8a3b7c2d-1111") == "instance-8a3b7c2d"
    assert guest_data()["hostname"] == "n"
    assert data.guest_data_from_payload(build(), True, None)["config_drive"] is True


def test_network_data_describes_each_port_and_its_addresses():
    static = dict(VIF, network=dict(NET, dhcp=False, dns_servers=["10.0.0.53"]))
    doc = data.network_data([data.net_model.vif_from_payload(static)])
    port = VIF["port"]
    assert doc["links"] == [{"id": names.tap(port["id"]), "vif_id": port["id"],
                             "type": "bridge", "ethernet_mac_address": "fa:16:3e:00:00:0b",
                             "mtu": 1450}]
    assert doc["networks"] == [{
        "id": "network0", "type": "ipv4", "link": names.tap(port["id"]), "network_id": "net1",
        "ip_address": "10.0.0.11", "netmask": "255.255.255.0",
        "routes": [{"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": "10.0.0.1"}],
        "services": [{"type": "dns", "address": "10.0.0.53"}]}]
    assert doc["services"] == [{"type": "dns", "address": "10.0.0.53"}]
    dhcp = data.network_data([data.net_model.vif_from_payload(VIF)])
    assert dhcp["networks"][0]["type"] == "ipv4_dhcp"


def test_drive_files_hold_both_versions_and_the_password_only_when_given():
    g = guest_data(user_data=USER_DATA, key_pairs=KEYS)
    files = data.drive_files("u-1", "web", {"role": "db"}, g, [VIF], admin_pass="pw")
    assert sorted(files) == sorted(
        f"openstack/{v}/{n}" for v in ("2018-08-27", "latest")
        for n in ("meta_data.json", "network_data.json", "user_data", "vendor_data.json",
                  "vendor_data2.json"))
    meta = json.loads(files["openstack/latest/meta_data.json"])
    assert meta["uuid"] == "u-1" and meta["hostname"] == "n" and meta["meta"] == {"role": "db"}
    assert meta["public_keys"] == {"alice": ED25519} and meta["admin_pass"] == "pw"
    assert meta["availability_zone"] == "zone-a"
    assert files["openstack/latest/user_data"] == b"#!/bin/sh\necho hello > /marker\n"
    again = data.drive_files("u-1", "web", {"role": "db"}, g, [VIF])
    assert "admin_pass" not in json.loads(again["openstack/latest/meta_data.json"])
    assert "openstack/latest/user_data" not in data.drive_files("u-1", "web", {}, guest_data(),
                                                                [])


def test_the_iso_is_labelled_config_2_and_holds_exactly_the_files(tmp_path):
    files = data.drive_files("u-1", "web", {}, guest_data(user_data=USER_DATA), [VIF])
    path = tmp_path / "disk.config"
    configdrive.write(str(path), files)
    assert configdrive.read(str(path)) == files
    with open(path, "rb") as f:
        f.seek(16 * 2048)                                 # the primary volume descriptor
        pvd = f.read(2048)
    assert pvd[1:6] == b"CD001" and pvd[40:72].rstrip() == b"config-2"
    assert oct(path.stat().st_mode & 0o777) == "0o640"
    assert not (tmp_path / "disk.config.tmp").exists()


@pytest.mark.parametrize("bad", ["../etc/passwd", "/abs", "a//b", "a/B", "a/./b"])
def test_the_iso_writer_refuses_paths_that_are_not_plain(tmp_path, bad):
    with pytest.raises(ValueError, match="plain relative path"):
        configdrive.write(str(tmp_path / "d"), {bad: b"x"})
    assert list(tmp_path.iterdir()) == []


def test_the_drive_is_a_read_only_cdrom_after_the_disks():
    dom = builder.build_domain(INST, META, DISKS, [], builder.BootFiles(), "/i/console.log",
                               builder.HostSettings(), config_drive="/i/disk.config")
    cd = list(dom.devices.disks)[-1]
    assert (cd.device, cd.source_file, cd.target_bus, cd.target_dev, cd.readonly,
            cd.driver_type) == ("cdrom", "/i/disk.config", "ide", "hdd", True, "raw")
    q35 = builder.build_config_drive("/d", {"properties": {"hw_machine_type": "pc-q35-7.2",
                                                           "hw_disk_bus": "sata"}},
                                     DISKS, builder.HostSettings())
    assert (q35.target_bus, q35.target_dev) == ("sata", "sdc")
    none = builder.build_domain(INST, META, DISKS, [], builder.BootFiles(), "/i/c.log",
                                builder.HostSettings())
    assert all(d.device == "disk" for d in none.devices.disks)
