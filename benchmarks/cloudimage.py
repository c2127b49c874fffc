"""Boot of the Debian cloud image (tools/cloud-image) to the first SSH
login, through the agent and by hand, in the same run, on a namespaced
test host (tests/harness/testbed.py):

- agent_boot_to_ssh_s: build_and_run_instance (config drive, key, static
  address) to the first successful SSH login from the host's namespace;
- floor_boot_to_ssh_s: the same image (a new overlay on the same base),
  the same config drive file and the agent's own domain XML (new name and
  uuid, no firewall) created directly with libvirt (virsh create) to the
  first successful login;
- ratio_to_floor: agent / floor (target <= 1.1).

Both are polled the same way (an SSH attempt every second).  A small test
guest keeps the network's bridge on the host between the two boots.
Prints JSON.  Needs root, libvirtd and RabbitMQ (tools/start-daemons.sh);
builds the cloud image on first use (a few minutes)."""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from lxml import etree  # noqa: E402

from benchmarks import smoke  # noqa: E402
from tests.harness import cloudimage  # noqa: E402
from tests.harness.netguests import flat_network, port  # noqa: E402
from tests.harness.testbed import TestBed  # noqa: E402

ADDRESS = "10.0.0.81"
OPEN = {"id": "open", "rules": [{"direction": "egress", "ethertype": "IPv4"},
                                {"direction": "ingress", "ethertype": "IPv4"}]}

# the keys its JSON always has (benchmarks/smoke.py checks them)
KEYS = ("agent_boot_to_ssh_s", "floor_boot_to_ssh_s", "ratio_to_floor")


def wait_ssh(host, key):
    return cloudimage.wait_ssh(host.ns, key, ADDRESS, timeout=900)


def floor_xml(xml, name, disk, drive, log):
    """The agent's domain XML for a guest of our own: another name and
    uuid, its own overlay, drive copy and console log, libvirt's tap name."""
    root = etree.fromstring(xml.encode())
    new = str(uuid.uuid4())
    root.find("name").text, root.find("uuid").text = name, new
    for entry in root.iterfind("sysinfo/system/entry"):
        if entry.get("name") in ("uuid", "serial"):
            entry.text = new
    for source in root.iterfind("devices/disk/source"):
        source.set("file", drive if source.get("file").endswith("disk.config") else disk)
    for serial in root.iterfind("devices/serial/source"):
        serial.set("path", log)
    for target in root.iterfind("devices/interface/target"):
        target.getparent().remove(target)
    return etree.tostring(root).decode()


def main():
    # one round is all it does: --smoke changes nothing but is accepted
    smoke.arguments(argparse.ArgumentParser(description=__doc__.split("\n\n")[0]))
    bed = TestBed().start()
    tmp = tempfile.mkdtemp(prefix="cloudbench-")
    try:
        host = bed.add_host("hA")
        host.start_agent(bed.image_port)
        a = host.agent
        bed.upload_test_guest("console=ttyS0 quiet tb.name=keeper tb.ip=none")
        image = bed.images.upload_cloud_image()
        key = os.path.join(tmp, "id")
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], check=True)
        with open(key + ".pub") as f:
            public = f.read().strip()
        net = dict(flat_network("hA"), dhcp=False, dns_servers=["10.0.0.2"])
        a.boot("keeper", image=bed.images.images["disk"],
               networks=[{"port": port("10.0.0.80", ["open"]), "network": net}],
               security_groups=[OPEN])

        u = str(uuid.uuid4())
        start = time.monotonic()
        a.api.build_and_run_instance(
            a.host, u, "bench", dict(cloudimage.FLAVOR), image, config_drive=True,
            networks=[{"port": port(ADDRESS, ["open"]), "network": net}],
            key_pairs=[{"name": "bench", "public_key": public}], hostname="bench")
        wait_ssh(host, key)
        agent_s = time.monotonic() - start

        xml = host.virsh("dumpxml", "--inactive", f"instance-{u}")
        disk_xml = etree.fromstring(xml.encode()).find("devices/disk/source").get("file")
        info = json.loads(host.run_in_mounts("qemu-img", "info", "-U", "--output=json",
                                             disk_xml))
        backing, backing_format = info["backing-filename"], info["backing-filename-format"]
        floor_dir = os.path.join(a.agent_instances_path, "floor-" + u[:8])
        host.run_in_mounts("mkdir", "-p", floor_dir)
        drive = os.path.join(floor_dir, "disk.config")
        host.run_in_mounts("cp", os.path.join(os.path.dirname(disk_xml), "disk.config"), drive)
        a.api.terminate_instance(a.host, u)
        a.wait_state(u, {"deleted"})
        disk = os.path.join(floor_dir, "disk")
        host.run_in_mounts("qemu-img", "create", "-q", "-f", "qcow2", "-b", backing, "-F",
                           backing_format, disk)
        path = os.path.join(tmp, "floor.xml")
        with open(path, "w") as f:
            f.write(floor_xml(xml, "floor-" + u[:8], disk, drive,
                              os.path.join(floor_dir, "console.log")))
        start = time.monotonic()
        host.virsh("create", path)
        wait_ssh(host, key)
        floor_s = time.monotonic() - start
        host.virsh("destroy", "floor-" + u[:8])
        print(json.dumps({"agent_boot_to_ssh_s": round(agent_s, 1),
                          "floor_boot_to_ssh_s": round(floor_s, 1),
                          "ratio_to_floor": round(agent_s / floor_s, 3)}, indent=2))
    finally:
        bed.close()


if __name__ == "__main__":
    main()
