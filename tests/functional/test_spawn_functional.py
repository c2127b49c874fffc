"""Spawn and terminate through RPC, with the real endpoint, manager,
driver, image cache and database, on libvirt's test hypervisor."""
import json
import os
import subprocess
import time
import uuid

import oslo_messaging as messaging
import pytest

from compute.core import exception
from tests.functional.conftest import upload

FLAVOR = {"vcpus": 1, "memory_mb": 128, "root_gb": 1}


def wait_state(api, host, uuid_, states, timeout=20):
    deadline = time.monotonic() + timeout
    rec = None
    while time.monotonic() < deadline:
        try:
            rec = api.get_instance(host, uuid_)
        except exception.InstanceNotFound:
            continue            # the build cast is not recorded yet
        if rec["vm_state"] in states:
            return rec
        time.sleep(0.05)
    raise AssertionError(f"{uuid_} never reached {states}: {rec}")


def test_spawn_then_terminate(api, service, qcow2_image):
    host, u = service.conf.host, str(uuid.uuid4())
    api.build_and_run_instance(host, u, "web", FLAVOR, qcow2_image)
    rec = wait_state(api, host, u, {"active", "error"})
    assert (rec["vm_state"], rec["task_state"], rec["power_state"]) == ("active", None,
                                                                         "RUNNING"), rec
    inst_dir = os.path.join(service.conf.instances_path, u)
    info = json.loads(subprocess.run(
        ["qemu-img", "info", "-U", "--output=json", os.path.join(inst_dir, "disk")],
        check=True, capture_output=True, text=True).stdout)
    base = service.manager.images.cache.path_for(qcow2_image)
    assert info["format"] == "qcow2" and info["virtual-size"] == 1024 ** 3
    assert info["backing-filename"] == base
    assert info["backing-filename-format"] == "raw"      # force_raw_images converted it
    assert u in service.manager.driver.list_instance_uuids()
    actions, events = service.db.actions_for(u)
    assert [a.action for a in actions] == ["create"]
    assert [(e.event, e.result) for e in events] == [("compute_create", "Success")]

    api.terminate_instance(host, u)
    rec = wait_state(api, host, u, {"deleted"})
    assert u not in service.manager.driver.list_instance_uuids()
    assert not os.path.exists(inst_dir)
    assert os.path.exists(base)                           # base image kept
    api.terminate_instance(host, u)                       # deleting twice is fine
    assert api.get_instance(host, u)["vm_state"] == "deleted"


def test_flavor_smaller_than_image_fails_cleanly(api, service, tmp_path, image_service):
    big = tmp_path / "big.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(big), "2G"], check=True)
    image = upload(image_service, str(big), "qcow2")
    host, u = service.conf.host, str(uuid.uuid4())
    api.build_and_run_instance(host, u, "big", FLAVOR, image)
    rec = wait_state(api, host, u, {"error", "active"})
    assert rec["vm_state"] == "error"
    assert "exceeds" in rec["fault"] and "the flavor's disk" in rec["fault"]
    assert not os.path.exists(os.path.join(service.conf.instances_path, u))
    assert u not in service.manager.driver.list_instance_uuids()


def test_image_lying_about_its_format_fails_cleanly(api, service, tmp_path, image_service):
    q = tmp_path / "q.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(q), "1M"], check=True)
    image = upload(image_service, str(q), "raw")        # claims raw, is qcow2
    host, u = service.conf.host, str(uuid.uuid4())
    api.build_and_run_instance(host, u, "liar", FLAVOR, image)
    rec = wait_state(api, host, u, {"error", "active"})
    assert rec["vm_state"] == "error" and "claims disk_format raw" in rec["fault"]
    base_dir = os.path.join(service.conf.instances_path, "_base")
    assert not [n for n in os.listdir(base_dir) if n.startswith(".")]   # no temp files
    assert not os.path.exists(service.manager.images.cache.path_for(image))   # nothing half-made


BAD_PAYLOADS = [
    ("missing flavor", {"name": "x", "image_id": "img"}),
    ("negative memory", {"name": "x", "image_id": "img",
                         "flavor": {"vcpus": 1, "memory_mb": -5, "root_gb": 1}}),
    ("image id with slash", {"name": "x", "image_id": "../../etc/passwd", "flavor": FLAVOR}),
    ("unknown field", {"name": "x", "image_id": "img", "flavor": FLAVOR, "evil": True}),
]


@pytest.mark.parametrize("why,payload", BAD_PAYLOADS, ids=[b[0] for b in BAD_PAYLOADS])
def test_malformed_request_is_refused_and_writes_nothing(api, service, why, payload):
    host, u = service.conf.host, str(uuid.uuid4())
    payload = {"instance_uuid": u, **payload}
    # The client refuses before sending (an unknown field it cannot even send) ...
    if "evil" not in payload:
        with pytest.raises(exception.InvalidRequest):
            api.build_and_run_instance(host, u, payload.get("name"), payload.get("flavor"),
                                       payload.get("image_id"))
    # ... and the server refuses what a client that skips validation sends,
    # answering with the same typed error.
    raw = api.client.prepare(server=host)
    with pytest.raises(exception.InvalidRequest) as e:
        raw.call({}, "build_and_run_instance", **payload)
    assert "build_and_run_instance: invalid" in str(e.value)
    raw.cast({}, "build_and_run_instance", **payload)
    time.sleep(0.3)
    with pytest.raises(exception.InstanceNotFound):
        service.db.instance_get(u, include_deleted=True)
    assert u not in {i.uuid for i in service.db.instance_list(include_deleted=True)}


def test_uuid_that_is_not_a_uuid_is_refused(api, service):
    raw = api.client.prepare(server=service.conf.host)
    with pytest.raises(exception.InvalidRequest, match="instance_uuid"):
        raw.call({}, "get_instance", instance_uuid="../../../etc")


def test_heartbeat_and_compute_node(service):
    (svc,) = service.db.service_list()
    first = svc.report_count
    time.sleep(1.5)
    (svc,) = service.db.service_list()
    assert svc.report_count > first and svc.host == service.conf.host


def test_ping_and_unknown_host_times_out(api, service):
    assert api.ping(service.conf.host)["status"] == "ok"
    with pytest.raises(messaging.MessagingTimeout):
        api.ping("no-such-host", timeout=0.5)


NET = {"id": "n1", "bridge": "brcan1", "cidr": "10.0.0.0/24",
       "segmentation": {"type": "flat"}}


@pytest.mark.parametrize("why,networks,groups,match", [
    ("fixed IP outside the subnet",
     [{"network": NET, "port": {"id": str(uuid.uuid4()), "mac": "fa:16:3e:00:00:01",
                                "fixed_ips": ["10.9.9.9"]}}], [], "outside 10.0.0.0/24"),
    ("unknown security group",
     [{"network": NET, "port": {"id": str(uuid.uuid4()), "mac": "fa:16:3e:00:00:01",
                                "fixed_ips": ["10.0.0.9"], "security_groups": ["nope"]}}],
     [], "unknown security group 'nope'"),
    ("duplicate port",
     [{"network": NET, "port": {"id": "8a3b7c2d-1111-4222-8333-444455556666",
                                "mac": "fa:16:3e:00:00:01", "fixed_ips": ["10.0.0.9"]}}] * 2,
     [], "port ids must be new and unique"),
    ("rule prefix of the other family", [],
     [{"id": "g", "rules": [{"direction": "ingress", "ethertype": "IPv4",
                             "remote_ip_prefix": "fd00::/64"}]}], "is not IPv4"),
])
def test_bad_networking_is_refused_and_writes_nothing(api, service, why, networks, groups,
                                                       match):
    u = str(uuid.uuid4())
    raw = api.client.prepare(server=service.conf.host)
    payload = {"instance_uuid": u, "name": "n", "flavor": FLAVOR, "image_id": "img",
               "networks": networks, "security_groups": groups}
    with pytest.raises(exception.InvalidRequest, match=match):
        raw.call({}, "build_and_run_instance", **payload)
    with pytest.raises(exception.InstanceNotFound):
        service.db.instance_get(u, include_deleted=True)
    assert "g" not in service.db.security_groups()


def test_a_pre_cache_the_agent_refuses_is_reported_at_once(api, service, image_service,
                                                           qcow2_image):
    """computectl cache-image of an image the agent cannot cache (queued: no
    data) fails with the agent's reason as soon as the agent knows it, not
    after its 600 s wait; a later request that succeeds is not misled by an
    earlier failure."""
    import argparse

    from compute.client import computectl
    from compute.client.cli import CLIError
    from imagecache.glance import GlanceClient
    queued = GlanceClient([image_service]).create(name="never-uploaded", disk_format="qcow2",
                                                 container_format="bare")["id"]
    host = service.conf.host
    args = argparse.Namespace(host=host, images=[queued], no_wait=False)
    started = time.monotonic()
    with pytest.raises(CLIError, match=f"not cached: {queued}: .*queued"):
        computectl.cmd_cache_image(api, args)
    assert time.monotonic() - started < 30
    (failed,) = api.get_image_cache_status(host)["failed"]
    assert failed["image_id"] == queued and failed["request_id"].startswith("req-")
    cached = computectl.cmd_cache_image(api, argparse.Namespace(
        host=host, images=[qcow2_image], no_wait=False))
    assert [i["image_id"] for i in cached] == [qcow2_image]
