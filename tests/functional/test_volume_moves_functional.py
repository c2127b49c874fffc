"""Volumes through the moves between hosts, with two whole services in one
process (libvirt's test hypervisor, which neither hot-plugs disks nor
keeps secrets: the volume here is a plain iSCSI one, recorded as an
attach records it): a cold migration and an unshelve on another host
carry the volume in the record to the host that takes the guest, whose
definition opens it; a record from a peer whose volume its driver
refuses is not taken.  The credentials' side is in tests/e2e/test_volume_e2e.py."""
# ruff: noqa: F811 - the fixtures imported from twohosts are test arguments
import uuid as uuidlib

import pytest
from lxml import etree

from compute import exception
from tests.functional.twohosts import (  # noqa: F401 - fixtures too
    api,
    boot,
    host,
    hosts,
    settled,
)

VOLUME = {"volume_id": "5b1d7a3e-2c4f-4e8a-9b6d-1f2e3d4c5b6a", "device": "vdd",
          "connection_info": {"driver_volume_type": "iscsi", "data": {
              "target_portal": "10.250.0.1:3260", "target_iqn": "iqn.2024-01.tb.storage:v1",
              "target_lun": 1}}}


def volume_disks(svc, u):
    """(serial, target dev, source name) of the guest's network disks."""
    xml = etree.fromstring(svc.manager.driver.host.lookup(u).xml_desc().encode())
    return [(d.findtext("serial"), d.find("target").get("dev"), d.find("source").get("name"))
            for d in xml.iterfind("devices/disk[@type='network']")]


WANTED = [(VOLUME["volume_id"], "vdd", "iqn.2024-01.tb.storage:v1/1")]


def with_volume(api, hosts, image):
    fa = hosts["fa"]
    u = boot(api, hosts, image)
    fa.manager.db.instance_update(u, volumes=[VOLUME])
    api.reboot_instance(host(fa), u, "HARD")          # defined again, from the record
    settled(api, fa, u)
    assert volume_disks(fa, u) == WANTED
    return u


def test_a_cold_migration_and_an_unshelve_elsewhere_carry_the_volume(api, hosts,
                                                                     qcow2_image):
    fa, fb = hosts["fa"], hosts["fb"]
    u = with_volume(api, hosts, qcow2_image)
    api.migrate_instance(host(fa), u, host(fb))
    assert settled(api, fb, u)["vm_state"] == "resized"
    assert volume_disks(fb, u) == WANTED
    api.confirm_resize(host(fb), u)
    rec = settled(api, fb, u, vm_state="active")
    assert rec["volumes"] == [VOLUME["volume_id"]]
    api.shelve_instance(host(fb), u)
    settled(api, fb, u, vm_state="shelved_offloaded")
    api.unshelve_instance(host(fb), u, host(fa))
    rec = settled(api, fa, u, vm_state="active")
    assert rec["volumes"] == [VOLUME["volume_id"]]
    assert volume_disks(fa, u) == WANTED
    api.terminate_instance(host(fa), u)


def test_a_peer_record_with_a_volume_its_driver_refuses_is_not_taken(api, hosts,
                                                                    qcow2_image):
    """What a peer sends is checked as an attach's connection info is."""
    fa, fb = hosts["fa"], hosts["fb"]
    u = boot(api, hosts, qcow2_image)
    payload = fa.manager.peers.record_payload(fa.manager.db.instance_get(u))
    payload["volumes"] = [{**VOLUME, "connection_info": {"driver_volume_type": "iscsi", "data": {
        **VOLUME["connection_info"]["data"], "target_portal": "storage.evil:3260"}}}]
    flavor = payload["flavor"]
    migration = {"id": str(uuidlib.uuid4()), "instance_uuid": u,
                 "migration_type": "migration", "source_host": host(fa),
                 "dest_host": host(fb), "old_flavor": flavor, "new_flavor": flavor,
                 "old_vm_state": "active", "old_disk_formats": payload["disk_formats"]}
    with pytest.raises(exception.InvalidRequest, match="not an IP address"):
        api.prep_resize(host(fb), migration=migration, instance=payload,
                        probe=".shared-probe-" + "0" * 32)
    with pytest.raises(exception.InstanceNotFound):
        api.get_instance(host(fb), u)
    assert fb.manager.tracker.used().memory_mb == 0           # the claim let go
    api.terminate_instance(host(fa), u)
