"""Guests on the namespaced test bed's networks, as the networking e2e
tests drive them: payloads for the flat and VXLAN networks, ports, security
groups, and a Guest that reports its pings on its console."""
import re
import subprocess
import uuid

from tests.harness.agent import wait_until

FLAT_CIDR, VX_CIDR = "10.0.0.0/24", "10.1.0.0/24"
HOST_ADDR = {"hA": "10.0.0.2", "hB": "10.0.0.3"}
FLOATING = "203.0.113.10"


def flat_network(host):
    return {"id": "flat1", "bridge": "brcaflat", "cidr": FLAT_CIDR,
            "segmentation": {"type": "flat", "physical_network": "physnet1"},
            "dhcp": True, "host_address": HOST_ADDR[host], "gateway": HOST_ADDR[host]}


def vxlan_network(bed, host):
    peer = "hB" if host == "hA" else "hA"
    return {"id": "vx1", "cidr": VX_CIDR, "mtu": 1450, "dhcp": True,
            "host_address": "10.1.0." + HOST_ADDR[host].rsplit(".", 1)[1],
            "segmentation": {"type": "vxlan", "vni": 200, "peers": [bed.hosts[peer].mgmt_ip]}}


def port(ip, groups, mac=None):
    _, _, c, d = (int(x) for x in ip.split("."))
    return {"id": str(uuid.uuid4()), "mac": mac or f"fa:16:3e:00:{c:02x}:{d:02x}",
            "fixed_ips": [ip], "security_groups": groups}


EGRESS = [{"direction": "egress", "ethertype": "IPv4"}]
ICMP_IN = {"direction": "ingress", "ethertype": "IPv4", "protocol": "icmp",
           "remote_ip_prefix": "0.0.0.0/0"}
WEB_NO_ICMP = {"id": "web", "rules": EGRESS}
WEB_ICMP = {"id": "web", "rules": EGRESS + [ICMP_IN]}
OPEN = {"id": "open", "rules": EGRESS + [ICMP_IN]}


class Guest:
    def __init__(self, bed, host, name, item, cmdline, groups):
        self.agent = bed.hosts[host].agent
        self.item, self.ip = item, item["port"]["fixed_ips"][0]
        image = bed.images.upload_variant(f"console=ttyS0 quiet tb.name={name} {cmdline}")
        self.uuid = self.agent.boot(name, image=image, networks=[item],
                                    security_groups=groups, wait_console=False)

    def console(self):
        return self.agent.console(self.uuid)

    def ticks(self):
        return re.findall(r"^TB: tick (\d+) .*$", self.console(), re.M)

    def wait_pings(self, ip, result, after_tick=0, times=2, timeout=90):
        """Wait for `times` consecutive ticks after after_tick whose ping of
        ip printed result (ok or FAIL)."""
        def seen():
            lines = [m.group(0) for m in re.finditer(r"^TB: tick (\d+) .*$", self.console(),
                                                     re.M) if int(m.group(1)) > after_tick]
            tail = lines[-times:]
            return len(tail) == times and all(f"ping:{ip}={result}" in t for t in tail)
        wait_until(seen, timeout, 0.5, f"{self.uuid}: ping {ip} {result}")

    def last_tick(self):
        ticks = self.ticks()
        return int(ticks[-1]) if ticks else 0


def wait_dhcp(guest, timeout=120):
    guest.agent.wait_console(guest.uuid, lambda c: f"TB: dhcp eth0 {guest.ip}/24" in c,
                             "DHCP lease", timeout)


def refresh(bed, group):
    for h in bed.hosts.values():
        h.agent.api.refresh_security_group_rules(h.agent.host, group)




def ext_ping(bed, address):
    """One ping from the external namespace (busybox: the host may lack
    iputils)."""
    return subprocess.run(["ip", "netns", "exec", bed.external, "busybox", "ping", "-c", "1",
                           "-W", "1", address], capture_output=True).returncode == 0
