"""The _base cache with a real image service, real downloads and real
guests: one download per image, failures that leave nothing behind,
hostile images refused, and a cache manager that never removes what is in
use."""
import concurrent.futures
import os
import time
import uuid

import libvirt
import pytest

from compute.db.api import Database
from imagecache import cleanup
from tests.harness import guest
from tests.harness.agent import FLAVOR, LIBVIRT_URI, Agent, wait_until
from tests.harness.faulty_images import FaultyProxy
from tests.unit import hostile_images as H


@pytest.fixture(scope="module")
def agent():
    a = Agent()
    proxy = FaultyProxy(a.image_url)
    a.agent_image_url = proxy.url
    a.proxy = proxy
    a.start()
    a.upload_test_guest()
    yield a
    a.close()
    proxy.stop()


def fresh_image(agent):
    """The test guest's disk under a new image id (so not cached yet)."""
    return agent.upload_variant("console=ttyS0 quiet tb.name=cache")


def spawn(agent, image, name="ic"):
    u = str(uuid.uuid4())
    agent.api.build_and_run_instance(agent.host, u, name, dict(FLAVOR), image)
    return u, agent.wait_state(u, {"active", "error"})


def base_dir(agent):
    return os.path.join(agent.instances_path, "_base")


def no_partial_files(agent):
    """Nothing temporary in _base (the last-use markers' directory aside)."""
    return [n for n in os.listdir(base_dir(agent))
            if n.startswith(".") and n != cleanup.USED_DIR] == []


def test_five_concurrent_spawns_download_once_and_all_boot(agent):
    image = fresh_image(agent)
    with concurrent.futures.ThreadPoolExecutor(5) as pool:
        results = list(pool.map(lambda i: spawn(agent, image, f"flight{i}"), range(5)))
    assert [rec["vm_state"] for _, rec in results] == ["active"] * 5
    assert agent.file_downloads(image) == 1
    for u, _ in results:
        agent.wait_console(u, lambda c: guest.DISK_MARKER in c, "boot", timeout=180)
    status = agent.api.get_image_cache_status(agent.host)
    row = next(i for i in status["images"] if i["image_id"] == image)
    assert (row["misses"], row["hits"]) == (1, 4)
    for u, _ in results:
        agent.api.terminate_instance(agent.host, u)
    for u, _ in results:
        agent.wait_state(u, {"deleted"})


@pytest.mark.parametrize("fault,reason", [("lie_about_hash", "mismatch"),
                                          ("cut_transfer", "broke off")])
def test_bad_download_ends_in_error_and_leaves_nothing(agent, fault, reason):
    image = fresh_image(agent)
    getattr(agent.proxy, fault).add(image)
    u, rec = spawn(agent, image, fault)
    assert rec["vm_state"] == "error" and reason in rec["fault"], rec["fault"]
    assert not os.path.exists(os.path.join(base_dir(agent), H_sha1(image)))
    assert no_partial_files(agent)
    assert not os.path.exists(os.path.join(agent.instances_path, u))
    good, rec = spawn(agent, agent.images["disk"], "after-" + fault)   # the next spawn works
    assert rec["vm_state"] == "active"
    for x in (u, good):
        agent.api.terminate_instance(agent.host, x)
        agent.wait_state(x, {"deleted"})


@pytest.mark.parametrize("fault,error,reason", [
    ("pad_transfer", "ImageTooLarge", "sent more than"),     # more bytes than its size
    ("endless", "ImageTooLarge", "sent more than"),          # no size, 5 GiB: cut at 1 GiB
    ("strip_hash", "UnverifiedImage", "no hash"),
])
def test_an_image_that_says_too_little_or_sends_too_much_is_refused(agent, fault, error,
                                                                      reason):
    image = fresh_image(agent)
    getattr(agent.proxy, fault).add(image)
    u, rec = spawn(agent, image, fault)
    assert rec["vm_state"] == "error" and rec["fault"].startswith(error), rec["fault"]
    assert reason in rec["fault"], rec["fault"]
    assert not os.path.exists(os.path.join(base_dir(agent), H_sha1(image)))
    assert no_partial_files(agent)
    assert not os.path.exists(os.path.join(agent.instances_path, u))
    agent.api.terminate_instance(agent.host, u)
    agent.wait_state(u, {"deleted"})


def H_sha1(image_id):
    import hashlib
    return hashlib.sha1(image_id.encode()).hexdigest()


@pytest.mark.parametrize("build", H.HOSTILE + H.CORRUPT,
                         ids=[b.__name__ for b in H.HOSTILE + H.CORRUPT])
def test_hostile_image_is_refused_and_no_guest_starts(agent, tmp_path, build):
    path = str(tmp_path / "hostile")
    declared, words = build(path)
    image = agent._upload(path, declared, kernel_id=agent.images["kernel"],
                          ramdisk_id=agent.images["ramdisk"])
    u, rec = spawn(agent, image, build.__name__)
    assert rec["vm_state"] == "error"
    assert "UnsafeImage" in rec["fault"] and words.lower() in rec["fault"].lower()
    assert not os.path.exists(os.path.join(agent.instances_path, u))
    assert not os.path.exists(os.path.join(base_dir(agent), H_sha1(image)))
    assert no_partial_files(agent)
    assert u not in libvirt_domains()                       # libvirt never saw a guest
    agent.api.terminate_instance(agent.host, u)
    agent.wait_state(u, {"deleted"})


def libvirt_domains():
    conn = libvirt.open(LIBVIRT_URI)
    try:
        return {d.UUIDString() for d in conn.listAllDomains(0)}
    finally:
        conn.close()


def make_old(agent, image_id):
    """Age a base and its last-use marker by three days."""
    path = os.path.join(base_dir(agent), H_sha1(image_id))
    marker = os.path.join(base_dir(agent), cleanup.USED_DIR, H_sha1(image_id))
    for p in (path, marker):
        if os.path.exists(p):
            os.utime(p, (time.time() - 3 * 86400,) * 2)
    return path


def test_cache_manager_keeps_what_is_used_and_removes_the_rest(agent):
    db = Database(f"sqlite:///{agent.state_path}/compute.sqlite")
    used = agent.boot("cm-used")                                   # the test guest image
    only_backing = fresh_image(agent)
    hidden = agent.boot("cm-hidden", image=only_backing, wait_console=False)
    unused = fresh_image(agent)
    agent.api.cache_images(agent.host, [unused])                   # pre-cache
    wait_until(lambda: any(i["image_id"] == unused and i["present"] for i in
                           agent.api.get_image_cache_status(agent.host)["images"]),
               60, 0.2, "pre-cached image")
    # The record of `hidden` no longer names its image: only its disk's
    # backing file shows that the base is in use, and the agent restarts.
    db.instance_update(hidden, image_ref=agent.images["disk"])
    agent.kill_agent()
    agent.restart_agent()
    paths = {name: make_old(agent, image) for name, image in
             (("used", agent.images["disk"]), ("backing", only_backing), ("unused", unused))}
    result = agent.api.manage_image_cache(agent.host)
    assert H_sha1(unused) in result["removed"]
    assert not os.path.exists(paths["unused"])
    assert os.path.exists(paths["used"]) and os.path.exists(paths["backing"])
    assert time.time() - cleanup.last_used(base_dir(agent))[H_sha1(agent.images["disk"])] < 60
    assert os.path.exists(os.path.join(base_dir(agent), H_sha1(agent.images["kernel"])))

    # A base deleted by hand is fetched again by a hard reboot.
    downloads = agent.file_downloads(agent.images["disk"])
    os.unlink(paths["used"])
    agent.api.reboot_instance(agent.host, used, "HARD")
    rec = agent.wait_settled(used)
    assert (rec["vm_state"], rec["power_state"]) == ("active", "RUNNING"), rec
    assert agent.file_downloads(agent.images["disk"]) == downloads + 1
    agent.wait_console(used, lambda c: guest.boots(c) == 2, "boot after re-fetch")
    for u in (used, hidden):
        agent.api.terminate_instance(agent.host, u)
        agent.wait_state(u, {"deleted"})


def test_precached_image_spawns_without_download(agent):
    image = fresh_image(agent)
    agent.api.cache_images(agent.host, [image])
    wait_until(lambda: agent.file_downloads(image) == 1 and any(
        i["image_id"] == image for i in agent.api.get_image_cache_status(agent.host)["images"]),
        60, 0.2, "pre-cache")
    u, rec = spawn(agent, image, "precached")
    assert rec["vm_state"] == "active" and agent.file_downloads(image) == 1
    agent.api.terminate_instance(agent.host, u)
    agent.wait_state(u, {"deleted"})
