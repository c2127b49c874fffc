"""What a guest learns about itself, in the OpenStack metadata format that
cloud-init reads: meta_data.json, network_data.json, vendor_data2.json and
user_data, built from an instance record by pure functions (the config
drive holds them; the metadata service will answer the same documents).

Also the checks on what a build request brings for the guest (user data,
key pairs, hostname, admin password): what a JSON schema cannot say, each
raising ValueError naming the field.  Nothing here touches a file.
"""
import base64
import binascii
import ipaddress
import json
import re

from network import model as net_model

# The dated version cloud-init asks for first, then "latest".
VERSIONS = ("2018-08-27", "latest")
MAX_USER_DATA_BYTES = 65535          # decoded, as nova's user_data column
KEY_TYPES = ("ssh",)
SSH_KEY_ALGORITHMS = ("ssh-rsa", "ssh-ed25519", "ecdsa-sha2-nistp256",
                      "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521")
_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\Z")


# -- checks on the request ---------------------------------------------------------

def check_user_data(value, field="user_data"):
    """The decoded bytes of base64 user data (strict alphabet, bounded)."""
    if len(value) > (MAX_USER_DATA_BYTES + 2) // 3 * 4:
        raise ValueError(f"{field}: more than {MAX_USER_DATA_BYTES} bytes")
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{field}: not base64") from None
    if len(data) > MAX_USER_DATA_BYTES:
        raise ValueError(f"{field}: more than {MAX_USER_DATA_BYTES} bytes")
    return data


def check_hostname(value, field="hostname"):
    """An RFC 1123 host name (dot-separated labels), lower-cased."""
    name = value.lower().rstrip(".")
    if not name or len(name) > 253 or not all(_LABEL.match(p) for p in name.split(".")):
        raise ValueError(f"{field}: {value!r} is not a host name")
    if name.replace(".", "").isdigit():
        raise ValueError(f"{field}: {value!r} is not a host name (all digits)")
    return name


def hostname_from_name(name, uuid):
    """A host name made from a display name, as nova makes one: other
    characters become '-'; an empty result falls back to the uuid."""
    label = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")[:63].strip("-")
    return label if label and not label.isdigit() else f"instance-{uuid[:8]}"


def check_public_key(key_type, public_key, field):
    """An OpenSSH public key line ('ALGO BASE64 [comment]') whose blob
    names the same algorithm and which cryptography loads."""
    if key_type not in KEY_TYPES:
        raise ValueError(f"{field}.type: {key_type!r} is not one of {list(KEY_TYPES)}")
    parts = public_key.strip().split(None, 2)
    if len(parts) < 2 or parts[0] not in SSH_KEY_ALGORITHMS:
        raise ValueError(f"{field}.public_key: not an OpenSSH public key")
    try:
        blob = base64.b64decode(parts[1], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{field}.public_key: not an OpenSSH public key") from None
    size = int.from_bytes(blob[:4], "big")
    if blob[4:4 + size].decode("ascii", "replace") != parts[0]:
        raise ValueError(f"{field}.public_key: the key's blob is not {parts[0]}")
    from cryptography.hazmat.primitives import serialization  # loaded when first needed
    try:
        serialization.load_ssh_public_key(f"{parts[0]} {parts[1]}".encode())
    except Exception:
        raise ValueError(f"{field}.public_key: not a valid {parts[0]} key") from None
    return f"{parts[0]} {parts[1]}" + (f" {parts[2]}" if len(parts) == 3 else "")


def check_admin_pass(value, field="admin_pass"):
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError(f"{field}: control characters are not allowed")
    return value


def guest_data_from_payload(payload, force_config_drive, availability_zone):
    """The record's guest_data from a build request: what the guest is told
    about itself.  The admin password is not kept: it reaches the first
    config drive only (guest_data never stores a password)."""
    if "user_data" in payload:
        check_user_data(payload["user_data"])
    keys = [{"name": k["name"], "type": k.get("type", "ssh"),
             "public_key": check_public_key(k.get("type", "ssh"), k["public_key"],
                                            f"key_pairs[{i}]")}
            for i, k in enumerate(payload.get("key_pairs", ()))]
    if len({k["name"] for k in keys}) != len(keys):
        raise ValueError("key_pairs: two keys share a name")
    if "admin_pass" in payload:
        check_admin_pass(payload["admin_pass"])
    hostname = (check_hostname(payload["hostname"]) if "hostname" in payload
                else hostname_from_name(payload["name"], payload["instance_uuid"]))
    return {"config_drive": bool(payload.get("config_drive")) or force_config_drive,
            "hostname": hostname, "user_data": payload.get("user_data"),
            "key_pairs": keys, "availability_zone": availability_zone}


# -- the documents -----------------------------------------------------------------

def meta_data(uuid, name, metadata, guest_data, admin_pass=None):
    keys = guest_data.get("key_pairs") or []
    hostname = guest_data.get("hostname") or hostname_from_name(name, uuid)
    doc = {"uuid": uuid, "name": name, "hostname": hostname,
           "launch_index": 0, "availability_zone": guest_data.get("availability_zone"),
           "meta": dict(metadata or {}),
           "public_keys": {k["name"]: k["public_key"] for k in keys},
           "keys": [{"name": k["name"], "type": k["type"], "data": k["public_key"]}
                    for k in keys],
           "devices": []}
    if admin_pass is not None:
        doc["admin_pass"] = admin_pass
    return doc


def network_data(vifs):
    """network_data.json of [(Network, Port)]: one link per port (matched
    by MAC in the guest), one network per fixed IP (ipv4_dhcp/ipv6_dhcp
    where the network runs DHCP, static otherwise, with its gateway as the
    default route), and the DNS servers."""
    links, networks, dns = [], [], []
    for net, port in vifs:
        link = port.devname
        links.append({"id": link, "vif_id": port.id, "type": "bridge",
                      "ethernet_mac_address": port.mac, "mtu": net.mtu or 1500})
        subnet = ipaddress.ip_network(net.cidr)
        for ip in port.fixed_ips:
            version = ipaddress.ip_address(ip).version
            if version != subnet.version:
                continue
            kind = f"ipv{version}" + ("_dhcp" if net.dhcp else "")
            item = {"id": f"network{len(networks)}", "type": kind, "link": link,
                    "network_id": net.id, "ip_address": ip, "netmask": str(subnet.netmask),
                    "routes": [], "services": []}
            if net.gateway:
                default = "0.0.0.0" if version == 4 else "::"
                item["routes"].append({"network": default, "netmask": default,
                                       "gateway": net.gateway})
            for server in net.dns_servers:
                item["services"].append({"type": "dns", "address": server})
                if server not in dns:
                    dns.append(server)
            networks.append(item)
    return {"links": links, "networks": networks,
            "services": [{"type": "dns", "address": s} for s in dns]}


def _dump(doc):
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def documents(uuid, name, metadata, guest_data, networks, admin_pass=None):
    """{document name: bytes} of the OpenStack tree (user_data only when
    there is some)."""
    vifs = [net_model.vif_from_payload(item) for item in networks or ()]
    docs = {"meta_data.json": _dump(meta_data(uuid, name, metadata, guest_data, admin_pass)),
            "network_data.json": _dump(network_data(vifs)),
            "vendor_data.json": b"{}", "vendor_data2.json": b"{}"}
    if guest_data.get("user_data"):
        docs["user_data"] = base64.b64decode(guest_data["user_data"])
    return docs


def drive_files(uuid, name, metadata, guest_data, networks, admin_pass=None):
    """{path inside the drive: bytes} of a config drive (ec2 tree left out:
    cloud-init's ConfigDrive source reads the openstack one)."""
    docs = documents(uuid, name, metadata, guest_data, networks, admin_pass)
    return {f"openstack/{version}/{doc}": data
            for version in VERSIONS for doc, data in docs.items()}
