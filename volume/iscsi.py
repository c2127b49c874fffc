"""iSCSI volumes through QEMU's own initiator (libiscsi): one portal, a
target IQN and a LUN, with CHAP when the data says so."""
import ipaddress
import re

from volume.base import VolumeDriver

IQN = re.compile(r"^(iqn\.\d{4}-\d{2}\.[a-z0-9][a-z0-9.-]*(:[A-Za-z0-9._:-]+)?"
                 r"|eui\.[0-9A-Fa-f]{16})\Z")
CHAP_TEXT = re.compile(r"^[\x21-\x7e]{1,255}\Z")     # printable, no blanks or controls


def portal(value):
    """(address, port) of "address:port" ("[v6]:port" for IPv6)."""
    if not isinstance(value, str) or len(value) > 64:
        raise ValueError("target_portal must be address:port")
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"target_portal {value!r}: no port")
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        raise ValueError(f"target_portal {value!r}: not an IP address") from None
    return str(address), int(port)


class IscsiVolumeDriver(VolumeDriver):
    secret_type = "iscsi"

    def check(self, data):
        portal(data.get("target_portal"))
        if not isinstance(data.get("target_iqn"), str) or not IQN.match(data["target_iqn"]):
            raise ValueError(f"target_iqn {data.get('target_iqn')!r} is not an iSCSI name")
        lun = data.get("target_lun", 0)
        if not isinstance(lun, int) or isinstance(lun, bool) or not 0 <= lun < 16384:
            raise ValueError(f"target_lun {lun!r} is not a LUN number")
        method = data.get("auth_method")
        if method not in (None, "CHAP"):
            raise ValueError(f"auth_method {method!r}: only CHAP is supported")
        if method == "CHAP":
            for key in ("auth_username", "auth_password"):
                if not isinstance(data.get(key), str) or not CHAP_TEXT.match(data[key]):
                    raise ValueError(f"{key} must be 1-255 printable characters")

    def source(self, data):
        return "iscsi", f"{data['target_iqn']}/{data.get('target_lun', 0)}", (
            portal(data["target_portal"]),)

    def credential(self, data):
        if data.get("auth_method") != "CHAP":
            return None
        return data["auth_username"], data["auth_password"].encode()
