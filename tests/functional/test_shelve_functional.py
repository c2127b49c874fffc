"""Shelve, offload and unshelve through RPC between two whole services in
one process (libvirt's test hypervisor, real disk files, the real image
service stand-in): what an offload leaves (nothing), where the root disk
goes (an image, deleted after the unshelve), a disk rebased onto the
instance's own image, the record handed to another host, and an agent
dying in the middle of each step."""
# ruff: noqa: F811 - the fixtures imported from twohosts are test arguments
import json
import os
import subprocess
import time

import pytest

from compute.core import exception
from imagecache.glance import GlanceClient
from tests.functional.twohosts import (  # noqa: F401 - fixtures too
    Crash,
    api,
    boot,
    client,
    crash_at,
    guests,
    host,
    hosts,
    instance_dir,
    settled,
    until,
)


def impatient(hosts):
    """A client that gives up at once on a call whose handler died."""
    return client(hosts, timeout=1)


def image_status(image_service, image_id):
    try:
        return GlanceClient([image_service]).show(image_id)["status"]
    except Exception:            # noqa: BLE001 - gone
        return None


def backing(svc, u):
    out = subprocess.run(["qemu-img", "info", "--output=json", "-U",
                          os.path.join(instance_dir(svc, u), "disk")],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out).get("backing-filename")


def shelved(api, svc, u):
    rec = settled(api, svc, u, vm_state="shelved_offloaded")
    assert rec["shelved_image_id"], rec
    return rec


def test_shelve_offloads_and_unshelve_here_boots_from_the_image_then_deletes_it(
        api, hosts, qcow2_image, image_service):
    fa = hosts["fa"]
    u = boot(api, hosts, qcow2_image)
    base_before = backing(fa, u)
    with pytest.raises(exception.InstanceInvalidState):
        api.unshelve_instance(host(fa), u)                    # not shelved
    assert api.shelve_instance(host(fa), u)["accepted"] == "shelve"
    rec = shelved(api, fa, u)
    image = rec["shelved_image_id"]
    assert image_status(image_service, image) == "active"
    assert u not in guests(fa) and not os.path.exists(instance_dir(fa, u))
    assert fa.manager.tracker.used().memory_mb == 0           # no claim left
    actions = [a["action"] for a in api.list_instance_actions(host(fa), u)]
    assert actions[-2:] == ["shelve", "shelve_offload"]

    assert api.unshelve_instance(host(fa), u)["host"] == host(fa)
    rec = settled(api, fa, u, vm_state="active")
    assert rec["shelved_image_id"] is None and u in guests(fa)
    assert backing(fa, u) == base_before                     # on the own image's base again
    until(lambda: image_status(image_service, image) is None)
    assert image_status(image_service, image) is None
    api.terminate_instance(host(fa), u)


def test_unshelve_on_another_host_hands_the_record_over(api, hosts, qcow2_image,
                                                        image_service):
    fa, fb = hosts["fa"], hosts["fb"]
    u = boot(api, hosts, qcow2_image)
    api.shelve_instance(host(fa), u)
    image = shelved(api, fa, u)["shelved_image_id"]
    with pytest.raises(exception.InvalidRequest, match="destination's view"):
        api.unshelve_instance(host(fa), u, host(fb), networks=[
            {"port": {"id": "9c1a7a4e-3f5e-4d7c-9a43-6f1f6f0e0a11", "mac": "fa:16:3e:00:00:01",
                      "fixed_ips": ["10.9.0.5"], "security_groups": []},
             "network": {"id": "n1", "cidr": "10.9.0.0/24", "dhcp": False,
                         "segmentation": {"type": "flat", "physical_network": "physnet1"}}}])
    assert api.get_instance(host(fa), u)["task_state"] is None        # nothing changed
    assert api.unshelve_instance(host(fa), u, host(fb))["host"] == host(fb)
    rec = settled(api, fb, u, vm_state="active")
    assert rec["host"] == host(fb) and u in guests(fb)
    assert fa.manager.peers.find(u) is None and u not in guests(fa)
    until(lambda: image_status(image_service, image) is None)
    assert image_status(image_service, image) is None
    api.terminate_instance(host(fb), u)


def test_an_agent_dying_after_the_hand_over_drops_its_record_at_start(
        api, hosts, qcow2_image, crash_at):
    fa, fb = hosts["fa"], hosts["fb"]
    u = boot(api, hosts, qcow2_image)
    api.shelve_instance(host(fa), u)
    shelved(api, fa, u)
    crash_at("unshelve.handed_over")
    with pytest.raises(Exception):     # noqa: B017 - the handling thread died
        impatient(hosts).unshelve_instance(host(fa), u, host(fb))
    settled(api, fb, u, vm_state="active")
    assert fa.db.instance_get(u).task_state == "unshelving"              # left mid-way
    fa.manager.reconciler._reconcile(fa.db.instance_get(u))              # the restart
    until(lambda: fa.manager.peers.find(u) is None)
    assert fa.manager.peers.find(u) is None
    api.terminate_instance(host(fb), u)


def test_an_agent_dying_before_the_hand_over_keeps_the_instance_at_start(
        api, hosts, qcow2_image, monkeypatch):
    fa, fb = hosts["fa"], hosts["fb"]
    u = boot(api, hosts, qcow2_image)
    api.shelve_instance(host(fa), u)
    shelved(api, fa, u)

    def dies(*args, **kwargs):
        raise Crash("before the peer answered")
    monkeypatch.setattr(fa.manager.peers.api, "take_shelved_instance", dies)
    with pytest.raises(Exception):     # noqa: B017 - the handling thread died
        impatient(hosts).unshelve_instance(host(fa), u, host(fb))
    assert fa.db.instance_get(u).task_state == "unshelving"
    monkeypatch.undo()
    fa.manager.reconciler._reconcile(fa.db.instance_get(u))              # fb never took it
    rec = settled(api, fa, u, vm_state="shelved_offloaded")
    assert rec["host"] == host(fa) and fb.manager.peers.find(u) is None
    api.unshelve_instance(host(fa), u)
    settled(api, fa, u, vm_state="active")
    api.terminate_instance(host(fa), u)


def test_an_interrupted_shelve_and_unshelve_are_taken_up_again(
        api, hosts, qcow2_image, crash_at, image_service):
    fa = hosts["fa"]
    u = boot(api, hosts, qcow2_image)
    crash_at("shelve.image_created")
    api.shelve_instance(host(fa), u)
    until(lambda: fa.db.instance_get(u).shelved_image_id is not None)
    time.sleep(0.3)
    first = fa.db.instance_get(u).shelved_image_id
    assert fa.db.instance_get(u).task_state == "shelving"
    crash_at("no-such-step")
    fa.manager.snapshots.recover_at_start()
    fa.manager.reconciler._reconcile(fa.db.instance_get(u))       # the restart: again
    rec = shelved(api, fa, u)
    assert rec["shelved_image_id"] != first                          # the queued one went
    assert image_status(image_service, first) is None
    crash_at("unshelve.spawned")
    api.unshelve_instance(host(fa), u)
    until(lambda: u in guests(fa))
    time.sleep(0.3)
    assert fa.db.instance_get(u).task_state == "unshelving"
    crash_at("no-such-step")
    fa.manager.reconciler._reconcile(fa.db.instance_get(u))
    assert settled(api, fa, u, vm_state="active")["shelved_image_id"] is None
    api.terminate_instance(host(fa), u)


def test_a_vtpm_instance_is_not_shelved(api, hosts, qcow2_image, image_service):
    fa = hosts["fa"]
    u = boot(api, hosts, qcow2_image)
    fa.db.instance_update(u, image_meta={"properties": {"hw_tpm_version": "2.0"}})
    with pytest.raises(exception.InvalidRequest, match="vTPM"):
        api.shelve_instance(host(fa), u)
    assert api.get_instance(host(fa), u)["task_state"] is None
    api.terminate_instance(host(fa), u)
