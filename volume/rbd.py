"""Ceph RBD volumes through QEMU's own client (librbd): pool/image, the
monitors, and a cephx user with its key when auth is enabled."""
import base64
import ipaddress
import re

from volume.base import VolumeDriver

NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}/[A-Za-z0-9_.-]{1,128}\Z")
USER = re.compile(r"^[A-Za-z0-9_.-]{1,64}\Z")
KEY = re.compile(r"^[A-Za-z0-9+/]{16,128}={0,2}\Z")     # a cephx key, base64


class RbdVolumeDriver(VolumeDriver):
    secret_type = "ceph"

    def check(self, data):
        if not isinstance(data.get("name"), str) or not NAME.match(data["name"]) \
                or ".." in data["name"]:
            raise ValueError(f"name {data.get('name')!r} is not pool/image")
        self.monitors(data)
        if data.get("auth_enabled"):
            if not isinstance(data.get("auth_username"), str) \
                    or not USER.match(data["auth_username"]):
                raise ValueError("auth_username must be a cephx user name")
            if not isinstance(data.get("key"), str) or not KEY.match(data["key"]):
                raise ValueError("key must be the user's cephx key")

    @staticmethod
    def monitors(data):
        """((address, port), ...) of the monitors: hosts and ports, paired."""
        hosts, ports = data.get("hosts"), data.get("ports")
        if not isinstance(hosts, list) or not isinstance(ports, list) or not hosts \
                or len(hosts) != len(ports) or len(hosts) > 16:
            raise ValueError("hosts and ports must list the same 1-16 monitors")
        out = []
        for host, port in zip(hosts, ports, strict=True):
            try:
                address = ipaddress.ip_address(host)
            except ValueError:
                raise ValueError(f"monitor {host!r} is not an IP address") from None
            if not str(port).isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"monitor port {port!r} is not a port")
            out.append((str(address), int(port)))
        return tuple(out)

    def source(self, data):
        return "rbd", data["name"], self.monitors(data)

    def credential(self, data):
        if not data.get("auth_enabled"):
            return None
        return data["auth_username"], base64.b64decode(data["key"])     # libvirt keeps bytes
