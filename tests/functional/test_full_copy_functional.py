"""use_cow_images=False: the instance gets a full raw copy of its image
(preallocated with preallocate_images=space) instead of an overlay; it
survives a hard reboot with its recorded format."""
import json
import os
import subprocess

from tests.functional.conftest import wait_settled

AGENT_CONF = {("image", "use_cow_images"): False, ("image", "preallocate_images"): "space"}


def test_full_copy_is_raw_preallocated_and_has_no_backing_file(api, service, active_instance):
    disk = os.path.join(service.conf.instances_path, active_instance, "disk")
    info = json.loads(subprocess.run(["qemu-img", "info", "-U", "--output=json", "-f", "raw",
                                      disk], check=True, capture_output=True, text=True).stdout)
    assert info["format"] == "raw" and "backing-filename" not in info
    assert info["virtual-size"] == 1024 ** 3
    assert os.stat(disk).st_blocks * 512 >= 1024 ** 3          # space reserved up front
    assert service.db.instance_get(active_instance).disk_formats == {"disk": "raw"}
    api.reboot_instance(service.conf.host, active_instance, "HARD")
    rec = wait_settled(api, service.conf.host, active_instance)
    assert (rec["vm_state"], rec["power_state"]) == ("active", "RUNNING")
