"""Volumes, pure parts: what the iSCSI driver accepts from a payload, the
disk it describes (credential as a libvirt secret, never its value), the
domain XML of a network disk, and device naming."""
import pytest

from compute.core import exception
from compute.core.volume_rules import next_device
from virt.libvirt import builder
from virt.libvirt.volumes import attached_serials
from volume import base

U = "0d3e4c0a-8c1b-4d3e-9a49-2f0c1b7a6e55"
V = "5b1d7a3e-2c4f-4e8a-9b6d-1f2e3d4c5b6a"
GOOD = {"target_portal": "10.250.0.1:3260", "target_iqn": "iqn.2024-01.tb.storage:vol1",
        "target_lun": 1, "auth_method": "CHAP", "auth_username": "user1",
        "auth_password": "s3cret-pass"}


def info(**data):
    return {"driver_volume_type": "iscsi", "data": {**GOOD, **data}}


def test_the_iscsi_driver_takes_good_data_and_names_what_is_wrong():
    base.check(info())
    base.check({"driver_volume_type": "iscsi", "data": {
        "target_portal": "[fd00::1]:3260", "target_iqn": "iqn.2024-01.x:y"}})
    for bad, why in ((info(target_portal="storage.example:3260"), "not an IP address"),
                     (info(target_portal="10.0.0.1"), "no port"),
                     (info(target_portal="10.0.0.1:99999"), "no port"),
                     (info(target_iqn="iqn.2024-01.x:y/../../etc"), "not an iSCSI name"),
                     (info(target_iqn="iqn.x"), "not an iSCSI name"),
                     (info(target_lun=-1), "not a LUN"),
                     (info(target_lun=True), "not a LUN"),
                     (info(auth_method="kerberos"), "only CHAP"),
                     (info(auth_password="with space"), "auth_password"),
                     (info(auth_username=""), "auth_username"),
                     ({"driver_volume_type": "nfs", "data": {}}, "no volume driver")):
        with pytest.raises(ValueError, match=why):
            base.check(bad)


def test_a_chap_volume_is_a_network_disk_with_a_secret_that_stays_the_same():
    vol = {"volume_id": V, "device": "vdd", "connection_info": info()}
    disk = base.volume_disk(U, vol)
    assert (disk.protocol, disk.name, disk.hosts) == (
        "iscsi", "iqn.2024-01.tb.storage:vol1/1", (("10.250.0.1", 3260),))
    assert (disk.username, disk.secret_type) == ("user1", "iscsi")
    assert disk.secret_uuid == base.volume_disk(U, vol).secret_uuid            # stable
    assert disk.secret_uuid != base.volume_disk(V, vol).secret_uuid            # per instance
    assert base.secret_value(vol) == b"s3cret-pass"
    xml = builder.build_volume_disk(disk).to_xml()
    assert "s3cret-pass" not in xml
    for part in ("type=\"network\"", "protocol=\"iscsi\"", "name=\"10.250.0.1\"",
                 "port=\"3260\"", "username=\"user1\"", f"uuid=\"{disk.secret_uuid}\"",
                 f"<serial>{V}</serial>", "dev=\"vdd\""):
        assert part in xml, part
    assert attached_serials(f"<domain><devices>{xml}</devices></domain>") == {V: "vdd"}
    plain = base.volume_disk(U, {"volume_id": V, "device": "vde", "connection_info": info(
        auth_method=None)})
    assert plain.secret_uuid is None and "<auth" not in builder.build_volume_disk(plain).to_xml()


def test_volumes_take_the_next_free_device_after_the_instance_disks():
    assert next_device([]) == "vdd"
    assert next_device([{"device": "vdd"}, {"device": "vdf"}]) == "vde"
    with pytest.raises(exception.InvalidRequest, match="no free device"):
        next_device([{"device": f"vd{c}"} for c in "defghijklmnopqrstuvwxyz"])


RBD = {"name": "volumes/vol-1", "hosts": ["10.250.0.1", "10.250.0.2"], "ports": ["6789", 6789],
       "auth_enabled": True, "auth_username": "tbvol",
       "key": "AQBx3XplAAAAABAAk1p0Y5f8qM7yv3g9o4dL2w=="}


def test_the_rbd_driver_takes_monitors_and_a_cephx_key():
    vol = {"volume_id": V, "device": "vdd",
           "connection_info": {"driver_volume_type": "rbd", "data": RBD}}
    base.check(vol["connection_info"])
    disk = base.volume_disk(U, vol)
    assert (disk.protocol, disk.name, disk.hosts, disk.secret_type) == (
        "rbd", "volumes/vol-1", (("10.250.0.1", 6789), ("10.250.0.2", 6789)), "ceph")
    assert len(base.secret_value(vol)) == 28            # the key's bytes, not its text
    xml = builder.build_volume_disk(disk).to_xml()
    assert xml.count("<host ") == 2 and RBD["key"] not in xml
    for bad, why in (({"name": "volumes"}, "pool/image"), ({"name": "../etc/x"}, "pool/image"),
                     ({"hosts": ["mon.example", "10.0.0.1"]}, "not an IP"),
                     ({"ports": ["6789"]}, "same 1-16"),
                     ({"key": "not a key!"}, "cephx key"),
                     ({"auth_username": "a b"}, "user name")):
        with pytest.raises(ValueError, match=why):
            base.check({"driver_volume_type": "rbd", "data": {**RBD, **bad}})


def test_a_peers_volumes_are_checked_by_their_drivers_and_take_distinct_devices():
    import ipaddress

    from compute.core.volume_rules import check_all
    good = {"volume_id": V, "device": "vdd", "connection_info": info()}
    storage = [ipaddress.ip_network("10.250.0.0/24")]
    check_all([good], storage)
    with pytest.raises(exception.InvalidRequest, match="share a device"):
        check_all([good, {**good, "volume_id": U}], storage)
    with pytest.raises(exception.InvalidRequest, match=f"volume {V}.*not an IP address"):
        check_all([{**good, "connection_info": info(target_portal="evil.example:3260")}],
                  storage)
    # no storage network configured: no volume at all, and the error names the option
    with pytest.raises(exception.InvalidRequest, match="volume_allowed_networks names"):
        check_all([good], [])
    for portal in ("127.0.0.1:3260", "169.254.169.254:80", "[fd00::1]:3260"):
        with pytest.raises(exception.InvalidRequest, match="not on the networks"):
            check_all([{**good, "connection_info": info(target_portal=portal)}], storage)


def test_a_block_migration_copies_local_writable_disks_and_never_a_volume():
    from virt.libvirt import migration
    vol = builder.build_volume_disk(base.volume_disk(U, {
        "volume_id": V, "device": "vdd", "connection_info": info()})).to_xml()
    xml = ("<domain><devices>"
           "<disk type='file' device='disk'><source file='/i/disk'/><target dev='vda'/></disk>"
           "<disk type='file' device='disk'><source file='/i/disk.local'/>"
           "<target dev='vdb'/></disk>"
           "<disk type='file' device='cdrom'><source file='/i/disk.config'/>"
           "<target dev='hdd'/><readonly/></disk>"
           f"{vol}</devices></domain>")
    assert migration.copied_disks(xml) == ["vda", "vdb"]
