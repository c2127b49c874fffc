"""Claims: builds that do not fit are refused at once, with their reason,
and nothing made; concurrent builds cannot over-commit the host; the
resource report reads the tracker's figures.  libvirt's test driver offers
16 vCPUs and 3 GiB; with 512 MiB reserved, 2560 MiB can be claimed."""
import concurrent.futures
import os
import time
import uuid

from tests.functional.conftest import wait_settled

AGENT_CONF = {(None, "ram_allocation_ratio"): 1.0, (None, "reserved_host_memory_mb"): 512,
              (None, "cpu_allocation_ratio"): 1.0}
GIB_GUEST = {"vcpus": 1, "memory_mb": 1024, "root_gb": 1}


def build(api, service, image, flavor):
    u = str(uuid.uuid4())
    api.build_and_run_instance(service.conf.host, u, "claim", flavor, image)
    return u


def test_a_build_that_does_not_fit_fails_at_once_and_makes_nothing(api, service, qcow2_image):
    u = build(api, service, qcow2_image, {"vcpus": 1, "memory_mb": 4096, "root_gb": 1})
    rec = wait_settled(api, service.conf.host, u)
    assert rec["vm_state"] == "error"
    assert rec["fault"].startswith("ResourcesUnavailable") and "MiB of memory" in rec["fault"]
    assert u not in service.manager.driver.list_instance_uuids()
    assert not os.path.exists(os.path.join(service.conf.instances_path, u))
    u = build(api, service, qcow2_image, {"vcpus": 17, "memory_mb": 128, "root_gb": 1})
    assert "vCPUs 17 of" in wait_settled(api, service.conf.host, u)["fault"]


def test_concurrent_builds_never_over_commit(api, service, qcow2_image):
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        uuids = list(pool.map(lambda _: build(api, service, qcow2_image, GIB_GUEST), range(6)))
    records = [wait_settled(api, service.conf.host, u) for u in uuids]
    states = sorted(r["vm_state"] for r in records)
    assert states == ["active"] * 2 + ["error"] * 4, states       # 2 x 1024 of 2560 MiB
    for r in records:
        if r["vm_state"] == "error":
            assert r["fault"].startswith("ResourcesUnavailable")
            assert r["uuid"] not in service.manager.driver.list_instance_uuids()
    service.manager.update_available_resource()
    node = api.get_host_status(service.conf.host)["node"]
    assert node["memory_mb_used"] == 2048 and node["vcpus_used"] == 2
    for u in uuids:                       # deleting frees the room again
        api.terminate_instance(service.conf.host, u)
    deadline = time.monotonic() + 30
    while service.manager.tracker.used().memory_mb and time.monotonic() < deadline:
        time.sleep(0.1)
    assert service.manager.tracker.used().memory_mb == 0
