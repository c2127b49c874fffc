"""A real distribution configures itself: the Debian 12 cloud image of
tools/cloud-image (cloud-init, openssh-server, qemu-guest-agent) booted
through the agent on hA, first from a config drive (static address, DHCP
off), then from the metadata service (DHCP on).  Each time the test logs in
over SSH from hA's namespace with the key it gave, and finds the host name,
the address and what the user-data script wrote.  Each boot takes about
two minutes under TCG."""
import base64
import subprocess

import pytest

from tests.harness import cloudimage
from tests.harness.netguests import flat_network, port
from tests.harness.testbed import two_hosts

SSH_IN = {"id": "ssh", "rules": [
    {"direction": "egress", "ethertype": "IPv4"},
    {"direction": "ingress", "ethertype": "IPv4", "protocol": "tcp", "port_range_min": 22,
     "port_range_max": 22, "remote_ip_prefix": "0.0.0.0/0"},
    {"direction": "ingress", "ethertype": "IPv4", "protocol": "icmp",
     "remote_ip_prefix": "0.0.0.0/0"}]}


def user_data(marker):
    script = f"#!/bin/sh\necho {marker} > /var/tmp/marker\n"
    return base64.b64encode(script.encode()).decode()


@pytest.fixture(scope="module")
def bed():
    yield from two_hosts("cloud")


@pytest.fixture(scope="module")
def image(bed):
    return bed.images.upload_cloud_image()


@pytest.fixture(scope="module")
def key(tmp_path_factory):
    path = tmp_path_factory.mktemp("keys") / "id"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)],
                   check=True)
    return path


def check_guest(hA, key, address, hostname, marker):
    out = cloudimage.ssh(hA.ns, key, address,
                         "hostname; ip -4 -o addr show scope global; cat /var/tmp/marker")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == hostname
    assert f"inet {address}/24" in out.stdout
    assert lines[-1] == marker


def boot(a, image, key, name, item, **kwargs):
    return a.boot(name, image=image, flavor=dict(cloudimage.FLAVOR), networks=[item],
                  security_groups=[SSH_IN], wait_console=False,
                  key_pairs=[{"name": "e2e", "public_key": key.with_suffix(".pub")
                              .read_text().strip()}], **kwargs)


def test_the_cloud_image_configures_itself_from_its_config_drive(bed, image, key):
    hA = bed.hosts["hA"]
    a = hA.agent
    net = dict(flat_network("hA"), dhcp=False, dns_servers=["10.0.0.2"])
    item = {"port": port("10.0.0.71", ["ssh"]), "network": net}
    u = boot(a, image, key, "cloud one", item, config_drive=True, hostname="cloud-one",
             user_data=user_data("written-by-user-data-1"))
    seconds = cloudimage.wait_ssh(hA.ns, key, "10.0.0.71")
    print(f"config drive: boot to SSH in {seconds:.0f} s")
    check_guest(hA, key, "10.0.0.71", "cloud-one", "written-by-user-data-1")
    out = cloudimage.ssh(hA.ns, key, "10.0.0.71", "cloud-init query v1.subplatform")
    assert out.stdout.startswith("config-disk")            # the ConfigDrive source read it
    a.api.terminate_instance(a.host, u)
    a.wait_state(u, {"deleted"})


def test_the_cloud_image_configures_itself_from_the_metadata_service(bed, image, key):
    hA = bed.hosts["hA"]
    a = hA.agent
    net = dict(flat_network("hA"), metadata=True)
    item = {"port": port("10.0.0.72", ["ssh"]), "network": net}
    u = boot(a, image, key, "cloud two", item, hostname="cloud-two",
             user_data=user_data("written-by-user-data-2"))
    seconds = cloudimage.wait_ssh(hA.ns, key, "10.0.0.72")
    print(f"metadata service: boot to SSH in {seconds:.0f} s")
    check_guest(hA, key, "10.0.0.72", "cloud-two", "written-by-user-data-2")
    out = cloudimage.ssh(hA.ns, key, "10.0.0.72", "cloud-init query v1.subplatform")
    assert out.stdout.startswith("metadata (http://169.254.169.254")
    a.api.terminate_instance(a.host, u)
    a.wait_state(u, {"deleted"})
