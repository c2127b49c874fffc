"""Volumes through the moves between hosts, with two whole services in one
process (libvirt's test hypervisor, which neither hot-plugs disks nor
keeps secrets: the volume here is a plain iSCSI one, recorded as an
attach records it): a cold migration and an unshelve on another host
carry the volume in the record to the host that takes the guest, whose
definition opens it; a record from a peer whose volume its driver
refuses is not taken.  The credentials' side is in tests/e2e/test_volume_e2e.py."""
# ruff: noqa: F811 - the fixtures imported from twohosts are test arguments
import os
import uuid as uuidlib

import pytest
from lxml import etree

from compute.core import exception
from compute.core.resource_tracker import of_instance
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


def test_a_guest_booted_from_a_volume_has_no_root_file_and_keeps_its_root(
        api, hosts, qcow2_image):
    """The volume is the root disk (vda, first): no root file, no root disk
    claimed; what works on a root file (snapshot, shelve, rebuild, rescue,
    cold migration) is refused, the boot volume is never detached, and a
    hard reboot keeps it."""
    fa, fb = hosts["fa"], hosts["fb"]
    u = str(uuidlib.uuid4())
    boot = {"volume_id": VOLUME["volume_id"], "connection_info": VOLUME["connection_info"]}
    flavor = {"vcpus": 1, "memory_mb": 128, "root_gb": 7}
    api.build_and_run_instance(host(fa), u, "bfv", flavor, qcow2_image, boot_volume=boot)
    rec = settled(api, fa, u)
    assert rec["vm_state"] == "active", rec
    assert rec["volumes"] == [VOLUME["volume_id"]]
    root = [(VOLUME["volume_id"], "vda", "iqn.2024-01.tb.storage:v1/1")]
    assert volume_disks(fa, u) == root
    assert not os.path.exists(os.path.join(fa.conf.instances_path, u, "disk"))
    assert of_instance(fa.manager.db.instance_get(u)).disk_gb == 0     # no root disk here
    for refused in (lambda: api.snapshot_instance(host(fa), u, "s"),
                    lambda: api.shelve_instance(host(fa), u),
                    lambda: api.rebuild_instance(host(fa), u),
                    lambda: api.rescue_instance(host(fa), u),
                    lambda: api.migrate_instance(host(fa), u, host(fb))):
        with pytest.raises(exception.InvalidRequest, match="boots from a volume"):
            refused()
    with pytest.raises(exception.InvalidRequest, match="root disk"):
        api.detach_volume(host(fa), u, VOLUME["volume_id"])
    api.reboot_instance(host(fa), u, "HARD")
    assert settled(api, fa, u)["power_state"] == "RUNNING"
    assert volume_disks(fa, u) == root
    api.terminate_instance(host(fa), u)
    settled(api, fa, u, vm_state="deleted")


def test_a_boot_volume_its_driver_refuses_is_a_build_fault(api, hosts, qcow2_image):
    fa = hosts["fa"]
    u = str(uuidlib.uuid4())
    api.build_and_run_instance(host(fa), u, "bfv", {"vcpus": 1, "memory_mb": 128, "root_gb": 1},
                               qcow2_image, boot_volume={
                                   "volume_id": VOLUME["volume_id"],
                                   "connection_info": {"driver_volume_type": "nfs", "data": {}}})
    rec = settled(api, fa, u)
    assert rec["vm_state"] == "error" and "no volume driver" in rec["fault"], rec
    assert u not in fa.manager.driver.list_instance_uuids()
    api.terminate_instance(host(fa), u)
