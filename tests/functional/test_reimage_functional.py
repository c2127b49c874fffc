"""Rebuild and rescue through RPC on libvirt's test hypervisor, with real
disk files: a rebuild makes a new root disk from the (new) image and keeps
the ephemeral disk only when asked; a rescue boots a fresh rescue disk
with the instance's disks after it, and unrescue drops it; a missing
image is refused at once and changes nothing."""
import json
import os
import subprocess
import uuid

import pytest

from compute.core import exception
from tests.functional.conftest import upload, wait_settled
from virt.libvirt.xml.domain import Domain

FLAVOR = {"vcpus": 1, "memory_mb": 128, "root_gb": 1, "ephemeral_gb": 1}


@pytest.fixture(scope="module")
def other_image(tmp_module, image_service):
    path = tmp_module / "other.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), "16M"], check=True)
    return upload(image_service, str(path), "qcow2")


@pytest.fixture
def instance(api, service, qcow2_image):
    u = str(uuid.uuid4())
    api.build_and_run_instance(service.conf.host, u, "re", FLAVOR, qcow2_image)
    assert wait_settled(api, service.conf.host, u)["vm_state"] == "active"
    return u


def _inodes(service, u):
    """Each disk file's identity: a file made anew differs (an inode
    number alone may be reused at once)."""
    d = os.path.join(service.conf.instances_path, u)
    return {n: (st.st_ino, st.st_ctime_ns) for n in os.listdir(d) if n.startswith("disk")
            for st in [os.stat(os.path.join(d, n))]}


def _backing(service, u):
    out = subprocess.run(["qemu-img", "info", "--output=json", "-U",
                          os.path.join(service.conf.instances_path, u, "disk")],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)["backing-filename"]


def _disks(service, u):
    xml = service.manager.driver.host.lookup(u).xml_desc()
    return [os.path.basename(d.source_file) for d in Domain.parse(xml).devices.disks]


def test_rebuild_makes_a_new_root_and_keeps_the_ephemeral_disk_only_when_asked(
        api, service, instance, other_image):
    host = service.conf.host
    before = _inodes(service, instance)
    assert api.rebuild_instance(host, instance, other_image, preserve_ephemeral=True)[
        "image_ref"] == other_image
    rec = wait_settled(api, host, instance)
    assert (rec["vm_state"], rec["image_id"]) == ("active", other_image)
    kept = _inodes(service, instance)
    assert kept["disk"] != before["disk"] and kept["disk.local"] == before["disk.local"]
    assert _backing(service, instance) == service.manager.images.cache.path_for(other_image)
    api.rebuild_instance(host, instance)                         # its own image, again
    assert wait_settled(api, host, instance)["vm_state"] == "active"
    again = _inodes(service, instance)
    assert again["disk"] != kept["disk"] and again["disk.local"] != kept["disk.local"]
    assert _disks(service, instance) == ["disk", "disk.local"]
    events = [e["event"] for a in api.list_instance_actions(host, instance)
              if a["action"] == "rebuild" for e in a["events"]]
    assert "rebuilt" in events


def test_rescue_boots_a_rescue_disk_before_the_instances_own(api, service, instance,
                                                             other_image):
    host = service.conf.host
    before = _inodes(service, instance)
    api.rescue_instance(host, instance, other_image)
    assert wait_settled(api, host, instance)["vm_state"] == "rescued"
    assert _disks(service, instance) == ["disk.rescue", "disk", "disk.local"]
    assert {k: v for k, v in _inodes(service, instance).items() if k != "disk.rescue"} \
        == before                                        # the own disks untouched
    for refused in (lambda: api.rescue_instance(host, instance),
                    lambda: api.rebuild_instance(host, instance),
                    lambda: api.stop_instance(host, instance)):
        with pytest.raises(exception.InstanceInvalidState):
            refused()
    api.unrescue_instance(host, instance)
    assert wait_settled(api, host, instance)["vm_state"] == "active"
    assert _disks(service, instance) == ["disk", "disk.local"]
    assert _inodes(service, instance) == before


def test_a_missing_image_is_refused_and_nothing_changes(api, service, instance):
    host = service.conf.host
    for call in (lambda: api.rebuild_instance(host, instance, "no-such-image"),
                 lambda: api.rescue_instance(host, instance, "no-such-image")):
        with pytest.raises(exception.InvalidRequest, match="image no-such-image"):
            call()
    rec = api.get_instance(host, instance)
    assert (rec["vm_state"], rec["task_state"]) == ("active", None)
    with pytest.raises(exception.InvalidRequest):
        api._rpc(host, "rebuild_instance", instance_uuid=instance, image_ref="../x")
