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
from tests.harness.agent import wait_until
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
    # sshd may answer before cloud-init's last stage ran the user data
    cloudimage.ssh(hA.ns, key, address, "cloud-init status --wait", timeout=300)
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
    try:
        seconds = cloudimage.wait_ssh(hA.ns, key, "10.0.0.71")
        print(f"config drive: boot to SSH in {seconds:.0f} s")
        check_guest(hA, key, "10.0.0.71", "cloud-one", "written-by-user-data-1")
        out = cloudimage.ssh(hA.ns, key, "10.0.0.71", "cloud-init query v1.subplatform")
        assert out.stdout.startswith("config-disk"), out    # the ConfigDrive source read it
    finally:                            # the next guest's network serves DHCP
        a.api.terminate_instance(a.host, u)
        a.wait_state(u, {"deleted"})


@pytest.fixture(scope="module")
def metadata_guest(bed, image, key):
    """A guest configured by the metadata service (DHCP on), up for SSH."""
    hA = bed.hosts["hA"]
    a = hA.agent
    net = dict(flat_network("hA"), metadata=True)
    item = {"port": port("10.0.0.72", ["ssh"]), "network": net}
    u = boot(a, image, key, "cloud two", item, hostname="cloud-two",
             user_data=user_data("written-by-user-data-2"))
    seconds = cloudimage.wait_ssh(hA.ns, key, "10.0.0.72")
    print(f"metadata service: boot to SSH in {seconds:.0f} s")
    yield u
    a.api.terminate_instance(a.host, u)
    a.wait_state(u, {"deleted"})


def test_the_cloud_image_configures_itself_from_the_metadata_service(bed, key,
                                                                       metadata_guest):
    hA = bed.hosts["hA"]
    check_guest(hA, key, "10.0.0.72", "cloud-two", "written-by-user-data-2")
    out = cloudimage.ssh(hA.ns, key, "10.0.0.72", "cloud-init query v1.subplatform")
    assert out.stdout.startswith("metadata (http://169.254.169.254")


def test_the_guest_agent_answers(bed, key, metadata_guest):
    """Its addresses in the diagnostics; a password set through the agent
    lets a password login in; a live snapshot freezes and thaws the
    guest's filesystems."""
    hA, u = bed.hosts["hA"], metadata_guest
    a = hA.agent
    diag = wait_until(lambda: (d := a.api.get_diagnostics(a.host, u))
                      and d["guest_agent"] == "connected" and d, 60, 1, "the guest agent")
    assert "10.0.0.72/24" in [addr for addrs in diag["guest_addresses"].values()
                              for addr in addrs]
    login = ["ip", "netns", "exec", hA.ns, "sshpass", "-p", "Sw0rdfish-e2e", "ssh", "-q",
             "-o", "PubkeyAuthentication=no", "-o", "StrictHostKeyChecking=no",
             "-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=5",
             f"{cloudimage.USER}@10.0.0.72", "id -un"]
    assert subprocess.run(login, capture_output=True, text=True, timeout=30).returncode != 0
    a.api.set_admin_password(a.host, u, "Sw0rdfish-e2e", user=cloudimage.USER)
    done = subprocess.run(login, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0 and done.stdout.strip() == cloudimage.USER, done.stderr
    a.api.snapshot_instance(a.host, u, "cloud-snap")
    wait_until(lambda: (r := a.find(u)) and r["task_state"] is None, 300, 1, "the snapshot")
    journal = cloudimage.ssh(hA.ns, key, "10.0.0.72",
                             "sudo journalctl -u qemu-guest-agent --no-pager").stdout
    assert "guest-fsfreeze called" in journal, journal         # qemu-ga's own log line
    thawed = cloudimage.ssh(hA.ns, key, "10.0.0.72", "sudo touch /var/tmp/after && sync")
    assert thawed.returncode == 0, thawed.stderr                 # writable again: thawed
