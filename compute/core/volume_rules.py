"""What a volume may be, checked before anything is attached (pure, no I/O):
the device a new volume takes after the recorded ones, and that a
connection info is one its driver takes with its storage servers on the
networks volumes may use.  Both the RPC boundary (a record from a peer)
and the attach part check with these."""
import ipaddress

from compute.core import exception
from volume import base as volume_base

DEVICE_LETTERS = "defghijklmnopqrstuvwxyz"     # vda-vdc: root, ephemeral, swap


def next_device(volumes):
    """The first free vdX for a new volume after the recorded ones (pure)."""
    used = {v["device"] for v in volumes}
    for letter in DEVICE_LETTERS:
        if f"vd{letter}" not in used:
            return f"vd{letter}"
    raise exception.InvalidRequest(f"no free device for another volume ({len(used)} attached)")


def outside(servers, networks):
    """The addresses of servers ((address, port), ...) in none of networks
    (ipaddress networks); all of them when networks is empty (pure)."""
    return [a for a, _port in servers
            if not any(ipaddress.ip_address(a) in net for net in networks)]


def check(volume_id, connection_info, networks):
    """InvalidRequest unless its driver takes the connection info and its
    servers are on the allowed networks."""
    try:
        volume_base.check(connection_info)
    except ValueError as e:
        raise exception.InvalidRequest(f"volume {volume_id}: connection_info: {e}") from None
    refused = outside(volume_base.servers(connection_info), networks)
    if refused and not networks:
        raise exception.InvalidRequest(
            f"volume {volume_id}: storage server {', '.join(refused)} refused: this host "
            "takes volumes from no network until [DEFAULT] volume_allowed_networks names "
            "the storage networks")
    if refused:
        raise exception.InvalidRequest(
            f"volume {volume_id}: storage server {', '.join(refused)} is not on the networks "
            f"volumes may use (volume_allowed_networks: {', '.join(map(str, networks))})")


def check_all(volumes, networks):
    """InvalidRequest unless every recorded volume passes check and the
    devices are distinct (a record from a peer: nothing in it is trusted)."""
    devices = [v["device"] for v in volumes]
    if len(set(devices)) != len(devices):
        raise exception.InvalidRequest(f"volumes share a device: {devices}")
    for v in volumes:
        check(v["volume_id"], v["connection_info"], networks)
