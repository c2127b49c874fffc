"""JSON schemas of every RPC method's payload, checked at the RPC boundary
(and by the client before it sends), and of the answers one agent takes
from another during a migration.  Unknown fields are errors, and every
string, list and map has a bound.  A request that fails here is answered
with compute.core.exception.InvalidRequest naming the offending field, and
nothing is written.

Patterns end in \\Z, not $: Python's $ also matches before a trailing
newline, so "abc\\n" would pass a "^[a-z]+$" check (jsonschema uses re)."""
import jsonschema

from compute.core.exception import InvalidAnswer, InvalidRequest

UUID = {"type": "string",
        "pattern": "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\\Z"}
IMAGE_ID = {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}\\Z"}
NAME = {"type": "string", "minLength": 1, "maxLength": 255,
        "pattern": "^[^\\x00-\\x1f/]+\\Z"}

FLAVOR = {
    "type": "object",
    "additionalProperties": False,
    "required": ["vcpus", "memory_mb", "root_gb"],
    "properties": {
        "name": {"type": "string", "maxLength": 255},
        "vcpus": {"type": "integer", "minimum": 1, "maximum": 1024},
        "memory_mb": {"type": "integer", "minimum": 16, "maximum": 16 * 1024 * 1024},
        "root_gb": {"type": "integer", "minimum": 0, "maximum": 65536},
        "ephemeral_gb": {"type": "integer", "minimum": 0, "maximum": 65536},
        "swap_mb": {"type": "integer", "minimum": 0, "maximum": 1024 * 1024},
    },
}

_INSTANCE_ONLY = {"instance_uuid": UUID}
HOST_ADDRESS = "[A-Za-z0-9._:\\[\\]-]{1,255}"

# Networking.  Addresses are checked further by network.model (syntax,
# inside the subnet); names that become device or chain names are narrow.
NET_ID = {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_-]{0,63}\\Z"}
IP = {"type": "string", "maxLength": 45, "pattern": "^[0-9a-fA-F:.]+\\Z"}
MAC = {"type": "string", "pattern": "^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}\\Z"}


def _object(properties, required=()):
    return {"type": "object", "additionalProperties": False,
            "required": list(required), "properties": properties}


PHYSNET = {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\\Z"}
# a bridge a payload names must be one of the agent's own (network.names)
BRIDGE = {"type": "string", "pattern": "^brca[A-Za-z0-9_-]{1,11}\\Z"}
SEGMENTATION = {"oneOf": [
    _object({"type": {"const": "flat"}, "physical_network": PHYSNET}, ["type"]),
    _object({"type": {"const": "vlan"}, "physical_network": PHYSNET,
             "vlan_id": {"type": "integer", "minimum": 1, "maximum": 4094}},
            ["type", "physical_network", "vlan_id"]),
    _object({"type": {"const": "vxlan"},
             "vni": {"type": "integer", "minimum": 1, "maximum": 16777215},
             "peers": {"type": "array", "items": IP, "maxItems": 256, "uniqueItems": True}},
            ["type", "vni"]),
]}
NETWORK = _object({
    "id": NET_ID, "bridge": BRIDGE, "segmentation": SEGMENTATION,
    "cidr": {"type": "string", "maxLength": 49, "pattern": "^[0-9a-fA-F:.]+/[0-9]{1,3}\\Z"},
    "gateway": {"oneOf": [IP, {"type": "null"}]}, "dhcp": {"type": "boolean"},
    "dns_servers": {"type": "array", "items": IP, "maxItems": 4},
    "mtu": {"type": "integer", "minimum": 576, "maximum": 9000},
    "host_address": {"oneOf": [IP, {"type": "null"}]},
    "metadata": {"type": "boolean"},
}, ["id", "segmentation", "cidr"])
PORT = _object({
    "id": UUID, "mac": MAC,
    "fixed_ips": {"type": "array", "items": IP, "minItems": 1, "maxItems": 8},
    "security_groups": {"type": "array", "items": NET_ID, "maxItems": 16,
                        "uniqueItems": True},
}, ["id", "mac", "fixed_ips"])
VIF = _object({"port": PORT, "network": NETWORK}, ["port", "network"])
RULE = _object({
    "direction": {"enum": ["ingress", "egress"]}, "ethertype": {"enum": ["IPv4", "IPv6"]},
    "protocol": {"oneOf": [{"enum": ["tcp", "udp", "icmp", "icmpv6"]}, {"type": "null"}]},
    "port_range_min": {"type": ["integer", "null"], "minimum": 1, "maximum": 65535},
    "port_range_max": {"type": ["integer", "null"], "minimum": 1, "maximum": 65535},
    "remote_ip_prefix": {"oneOf": [{"type": "string", "maxLength": 49,
                                    "pattern": "^[0-9a-fA-F:.]+(/[0-9]{1,3})?\\Z"},
                                   {"type": "null"}]},
    "remote_group_id": {"oneOf": [NET_ID, {"type": "null"}]},
}, ["direction"])
SECURITY_GROUP = _object({
    "id": NET_ID, "rules": {"type": "array", "items": RULE, "maxItems": 512},
    "members": {"type": "array", "items": IP, "maxItems": 4096},
}, ["id", "rules"])
SECURITY_GROUPS = {"type": "array", "items": SECURITY_GROUP, "maxItems": 64}
# An image's record as the image service gave it (core fields, and its
# custom properties under "properties"): flat values, bounded.
_SCALAR = {"type": ["string", "number", "boolean", "null"], "maxLength": 4096}
_FIELD = {"oneOf": [_SCALAR,
                    {"type": "array", "maxItems": 64, "items": {"oneOf": [
                        _SCALAR, {"type": "object", "maxProperties": 16,
                                  "additionalProperties": _SCALAR}]}}]}
IMAGE_META = {"type": "object", "maxProperties": 64, "additionalProperties": _FIELD,
              "properties": {"properties": {"type": "object", "maxProperties": 128,
                                            "additionalProperties": _FIELD}}}
DISK_FORMATS = {"type": "object", "propertyNames": {"enum": ["disk", "disk.local",
                                                             "disk.swap"]},
                "additionalProperties": {"enum": ["qcow2", "raw", "rbd"]}}
# What the guest is told about itself (compute.core.instance_data checks the
# rest: base64, key material, host name syntax).
USER_DATA = {"type": "string", "maxLength": 87384, "pattern": "^[A-Za-z0-9+/=]*\\Z"}
HOSTNAME = {"type": "string", "minLength": 1, "maxLength": 253,
            "pattern": "^[A-Za-z0-9.-]+\\Z"}
KEY_PAIR = _object({"name": {"type": "string", "minLength": 1, "maxLength": 255,
                             "pattern": "^[A-Za-z0-9 _.@-]+\\Z"},
                    "type": {"enum": ["ssh"]},
                    "public_key": {"type": "string", "maxLength": 16384}},
                   ["name", "public_key"])
KEY_PAIRS = {"type": "array", "items": KEY_PAIR, "maxItems": 16}
GUEST_DATA = _object({"config_drive": {"type": "boolean"}, "hostname": HOSTNAME,
                      "user_data": {"oneOf": [USER_DATA, {"type": "null"}]},
                      "key_pairs": KEY_PAIRS,
                      "availability_zone": {"type": ["string", "null"], "maxLength": 255}},
                     ["config_drive", "hostname"])
# Cinder's connection info for a volume: the driver's data is checked by
# the volume driver of that type (volume/), whose values become a disk's
# source; here only its shape and size.
CONNECTION_INFO = _object({
    "driver_volume_type": {"type": "string", "pattern": "^[a-z][a-z0-9_]{0,31}\\Z"},
    "data": {"type": "object", "maxProperties": 32,
             "additionalProperties": {
                 "type": ["string", "integer", "boolean", "null", "array"], "maxLength": 1024,
                 "maxItems": 16, "items": {"type": ["string", "integer"], "maxLength": 255}}},
}, ["driver_volume_type", "data"])

# A volume as a record keeps it.
VOLUME = _object({"volume_id": UUID, "device": {"type": "string", "pattern": "^vd[ad-z]\\Z"},
                  "connection_info": CONNECTION_INFO},
                 ["volume_id", "device", "connection_info"])

# An instance record sent from one agent to another (migrations).
INSTANCE_RECORD = _object({
    "uuid": UUID, "display_name": NAME, "vm_state": {"enum": ["active", "paused", "stopped"]},
    "flavor": FLAVOR, "image_ref": IMAGE_ID,
    "image_meta": IMAGE_META,
    "disk_formats": DISK_FORMATS,
    "networks": {"type": "array", "items": VIF, "maxItems": 8},
    "metadata": {"type": "object", "maxProperties": 128,
                 "additionalProperties": {"type": "string", "maxLength": 255}},
    "security_groups": SECURITY_GROUPS,
    "guest_data": GUEST_DATA,
    "volumes": {"type": "array", "items": VOLUME, "maxItems": 23},
}, ["uuid", "display_name", "vm_state", "flavor", "image_ref", "image_meta", "disk_formats",
    "networks", "metadata", "security_groups"])

# An offloaded instance's record as the host that has it hands it over to
# the host that unshelves it.
SHELVED_RECORD = {**INSTANCE_RECORD, "properties": {
    **INSTANCE_RECORD["properties"], "vm_state": {"enum": ["shelved_offloaded"]}}}

# A cold migration or resize as its source sends it to the destination.
MIGRATION = _object({
    "id": UUID, "instance_uuid": UUID,
    "migration_type": {"enum": ["migration", "resize"]},
    "source_host": NAME, "dest_host": NAME, "old_flavor": FLAVOR, "new_flavor": FLAVOR,
    "old_vm_state": {"enum": ["active", "stopped"]},
    "old_disk_formats": DISK_FORMATS,
}, ["id", "instance_uuid", "migration_type", "source_host", "dest_host", "old_flavor",
    "new_flavor", "old_vm_state", "old_disk_formats"])
_MIGRATION_ONLY = {"migration_id": UUID}
DEST_CHECK = _object({
    "shared_storage": {"type": "boolean"}, "block_migration": {"type": "boolean"},
    "disk_available": {"type": "integer", "minimum": 0},
    "libvirt_uri": {"type": "string",
                    "pattern": f"^qemu\\+(tcp|tls|ssh)://{HOST_ADDRESS}/system\\Z"},
    "migrate_uri": {"type": "string", "pattern": f"^tcp://{HOST_ADDRESS}\\Z"},
    "native_tls": {"type": "boolean"},
}, ["shared_storage", "block_migration", "disk_available", "libvirt_uri", "migrate_uri"])


def _method(properties, required):
    return {"type": "object", "additionalProperties": False,
            "required": list(required), "properties": properties}


SCHEMAS = {
    "build_and_run_instance": _method(
        {"instance_uuid": UUID, "name": NAME, "flavor": FLAVOR, "image_id": IMAGE_ID,
         "metadata": {"type": "object", "maxProperties": 128,
                      "additionalProperties": {"type": "string", "maxLength": 255}},
         "networks": {"type": "array", "items": VIF, "maxItems": 8},
         "security_groups": SECURITY_GROUPS,
         "user_data": USER_DATA, "key_pairs": KEY_PAIRS, "hostname": HOSTNAME,
         "admin_pass": {"type": "string", "minLength": 1, "maxLength": 255},
         "config_drive": {"type": "boolean"},
         # the root disk: a volume holding the image already (Cinder's
         # volume from an image); image_id still gives the properties
         "boot_volume": _object({"volume_id": UUID, "connection_info": CONNECTION_INFO},
                                ["volume_id", "connection_info"])},
        ["instance_uuid", "name", "flavor", "image_id"]),
    "terminate_instance": _method(_INSTANCE_ONLY, ["instance_uuid"]),
    "reboot_instance": _method(
        {"instance_uuid": UUID, "reboot_type": {"enum": ["SOFT", "HARD"]}},
        ["instance_uuid", "reboot_type"]),
    **{m: _method(_INSTANCE_ONLY, ["instance_uuid"])
       for m in ("suspend_instance", "resume_instance", "pause_instance", "unpause_instance",
                 "stop_instance", "start_instance", "get_diagnostics",
                 "list_instance_actions")},
    "reset_state": _method(
        {"instance_uuid": UUID, "state": {"enum": ["active", "error"]}},
        ["instance_uuid", "state"]),
    "set_admin_password": _method(
        {"instance_uuid": UUID, "admin_pass": {"type": "string", "minLength": 1,
                                               "maxLength": 255,
                                               "pattern": "^[^\\x00-\\x1f\\x7f]+\\Z"},
         "user": {"type": "string", "minLength": 1, "maxLength": 32,
                  "pattern": "^[a-z_][a-z0-9_-]*\\Z"}},
        ["instance_uuid", "admin_pass"]),
    "get_host_status": _method({}, []),
    "refresh_security_group_rules": _method({"security_group": SECURITY_GROUP},
                                            ["security_group"]),
    "attach_interface": _method(
        {"instance_uuid": UUID, "port": PORT, "network": NETWORK,
         "security_groups": SECURITY_GROUPS},
        ["instance_uuid", "port", "network"]),
    "detach_interface": _method({"instance_uuid": UUID, "port_id": UUID},
                                ["instance_uuid", "port_id"]),
    "associate_floating_ip": _method(
        {"instance_uuid": UUID, "address": IP, "fixed_ip": IP},
        ["instance_uuid", "address"]),
    "disassociate_floating_ip": _method({"address": IP}, ["address"]),
    "get_network_status": _method({}, []),
    "live_migrate_instance": _method(
        {"instance_uuid": UUID, "dest_host": NAME, "block_migration": {"type": "boolean"},
         "networks": {"type": "array", "items": VIF, "maxItems": 8}},
        ["instance_uuid", "dest_host", "block_migration"]),
    "check_can_live_migrate_destination": _method(
        {"instance": INSTANCE_RECORD, "block_migration": {"type": "boolean"},
         "probe": {"type": "string", "pattern": "^\\.shared-probe-[0-9a-f]{32}\\Z"},
         "source_host": NAME,
         "cpu": {"oneOf": [{"type": "string", "maxLength": 65536,
                            "pattern": "^\\s*<cpu[\\s>/]"}, {"type": "null"}]}},
        ["instance", "block_migration", "probe", "source_host"]),
    "check_can_live_migrate_source": _method(
        {"instance_uuid": UUID, "dest_check_data": DEST_CHECK},
        ["instance_uuid", "dest_check_data"]),
    "pre_live_migration": _method(
        {"instance": INSTANCE_RECORD, "block_migration": {"type": "boolean"},
         "migration_id": UUID, "source_host": NAME},
        ["instance", "block_migration", "migration_id", "source_host"]),
    "live_migration_abort": _method(_INSTANCE_ONLY, ["instance_uuid"]),
    "live_migration_force_complete": _method(_INSTANCE_ONLY, ["instance_uuid"]),
    "post_live_migration_at_destination": _method(_INSTANCE_ONLY, ["instance_uuid"]),
    "rollback_live_migration_at_destination": _method(
        {"instance_uuid": UUID, "shared_storage": {"type": "boolean"}},
        ["instance_uuid", "shared_storage"]),
    "migrate_instance": _method(
        {"instance_uuid": UUID, "dest_host": NAME, "flavor": FLAVOR,
         "networks": {"type": "array", "items": VIF, "maxItems": 8}},
        ["instance_uuid", "dest_host"]),
    "confirm_resize": _method(_INSTANCE_ONLY, ["instance_uuid"]),
    "revert_resize": _method(_INSTANCE_ONLY, ["instance_uuid"]),
    "list_migrations": _method({"instance_uuid": UUID}, []),
    "prep_resize": _method(
        {"migration": MIGRATION, "instance": INSTANCE_RECORD,
         "probe": {"type": "string", "pattern": "^\\.shared-probe-[0-9a-f]{32}\\Z"}},
        ["migration", "instance", "probe"]),
    **{m: _method(_MIGRATION_ONLY, ["migration_id"])
       for m in ("finish_resize", "abort_resize_at_destination", "confirm_resize_at_source",
                 "finish_revert_resize")},
    "snapshot_instance": _method({"instance_uuid": UUID, "name": NAME},
                                 ["instance_uuid", "name"]),
    "rebuild_instance": _method({"instance_uuid": UUID, "image_ref": IMAGE_ID,
                                 "preserve_ephemeral": {"type": "boolean"}},
                                ["instance_uuid"]),
    "rescue_instance": _method({"instance_uuid": UUID, "rescue_image_ref": IMAGE_ID},
                               ["instance_uuid"]),
    "unrescue_instance": _method(_INSTANCE_ONLY, ["instance_uuid"]),
    "shelve_instance": _method(_INSTANCE_ONLY, ["instance_uuid"]),
    "shelve_offload_instance": _method(_INSTANCE_ONLY, ["instance_uuid"]),
    "unshelve_instance": _method(
        {"instance_uuid": UUID, "dest_host": NAME,
         "networks": {"type": "array", "items": VIF, "maxItems": 8}},
        ["instance_uuid"]),
    "attach_volume": _method(
        {"instance_uuid": UUID, "volume_id": UUID, "connection_info": CONNECTION_INFO},
        ["instance_uuid", "volume_id", "connection_info"]),
    "detach_volume": _method({"instance_uuid": UUID, "volume_id": UUID},
                             ["instance_uuid", "volume_id"]),
    "extend_volume": _method({"instance_uuid": UUID, "volume_id": UUID,
                              "new_size": {"type": "integer", "minimum": 1,
                                           "maximum": 2 ** 50}},   # 1 PiB
                             ["instance_uuid", "volume_id", "new_size"]),
    "evacuate_instance": _method(
        {"instance_uuid": UUID, "source_host": NAME,
         "networks": {"type": "array", "items": VIF, "maxItems": 8},
         # what the down host's record seals with its own key, given again
         "connections": {"type": "object", "maxProperties": 26,
                         "propertyNames": {"pattern": UUID["pattern"]},
                         "additionalProperties": CONNECTION_INFO},
         "user_data": USER_DATA},
        ["instance_uuid", "source_host"]),
    "take_shelved_instance": _method(
        {"instance": SHELVED_RECORD, "shelved_image_id": IMAGE_ID, "source_host": NAME},
        ["instance", "shelved_image_id", "source_host"]),
    "cache_images": _method(
        {"image_ids": {"type": "array", "items": IMAGE_ID, "minItems": 1, "maxItems": 64}},
        ["image_ids"]),
    "manage_image_cache": _method({}, []),
    "get_image_cache_status": _method({}, []),
    "get_instance": _method(_INSTANCE_ONLY, ["instance_uuid"]),
    "get_console_output": _method(
        {"instance_uuid": UUID, "length": {"type": ["integer", "null"], "minimum": 1,
                                           "maximum": 100000}},
        ["instance_uuid"]),
    "get_serial_console": _method(_INSTANCE_ONLY, ["instance_uuid"]),
    "get_vnc_console": _method(_INSTANCE_ONLY, ["instance_uuid"]),
    "list_instances": _method({}, []),
    "ping": _method({}, []),
}


# Answers one agent takes from another during a migration: a peer is as
# untrusted as any caller.
ABS_PATH = {"type": "string", "maxLength": 4096,
            "pattern": "^(?!.*/\\.\\.(/|\\Z))(/[A-Za-z0-9._+@:-]+)+/?\\Z"}
_STATE = {"type": ["string", "null"], "maxLength": 32}
INSTANCE_VIEW = {"type": "object", "maxProperties": 32, "required": ["uuid", "vm_state"],
                 "properties": {"uuid": UUID, "vm_state": _STATE, "task_state": _STATE,
                                "power_state": _STATE, "host": NAME}}
_UUID_ANSWER = {k: _object({k: UUID}, [k]) for k in ("instance_uuid", "migration_id")}
ANSWERS = {
    "check_can_live_migrate_destination": DEST_CHECK,
    "check_can_live_migrate_source": DEST_CHECK,
    "pre_live_migration": _object({
        "paths": _object({"instance_dir": ABS_PATH, "kernel": ABS_PATH, "ramdisk": ABS_PATH},
                         ["instance_dir"]),
        "serial": _object({"host": {"type": "string", "pattern": "^[0-9a-fA-F:.]{2,45}\\Z"},
                           "port": {"type": "integer", "minimum": 1, "maximum": 65535}},
                          ["host", "port"]),
        "vnc_listen": {"type": "string", "pattern": f"^{HOST_ADDRESS}\\Z"}}, ["paths"]),
    "post_live_migration_at_destination": INSTANCE_VIEW,
    "get_instance": INSTANCE_VIEW,          # a peer's record, asked at agent start
    "rollback_live_migration_at_destination": _UUID_ANSWER["instance_uuid"],
    "take_shelved_instance": _UUID_ANSWER["instance_uuid"],
    "prep_resize": _object({
        "shared_storage": {"type": "boolean"},
        "transfer": _object({"address": {"type": "string",
                                         "pattern": f"^{HOST_ADDRESS}\\Z"},
                             "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                             "token": {"type": "string", "pattern": "^[0-9a-f]{64}\\Z"}},
                            ["address", "port", "token"])}, ["shared_storage"]),
    "finish_resize": INSTANCE_VIEW,
    "abort_resize_at_destination": _UUID_ANSWER["migration_id"],
    "confirm_resize_at_source": _UUID_ANSWER["migration_id"],
    "finish_revert_resize": _UUID_ANSWER["migration_id"],
    "list_migrations": {"type": "array", "maxItems": 1000, "items": {
        "type": "object", "maxProperties": 32, "required": ["id", "status"],
        "properties": {"id": UUID, "status": {"type": "string", "maxLength": 32}}}},
}


def _first_error(schema, document):
    error = jsonschema.exceptions.best_match(
        jsonschema.Draft202012Validator(schema).iter_errors(document))
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path) or "payload"
    return f"invalid {where}: {error.message}"


def validate_answer(method, answer):
    """Raise InvalidAnswer unless a peer's answer to method fits its
    schema (methods without one are not agent-to-agent)."""
    schema = ANSWERS.get(method)
    if schema is not None and (reason := _first_error(schema, answer)):
        raise InvalidAnswer(f"the answer to {method}: {reason}")


def validate(method, payload):
    """Raise InvalidRequest (naming the field) unless payload fits method."""
    schema = SCHEMAS.get(method)
    if schema is None:
        raise InvalidRequest(f"unknown method {method!r}")
    reason = _first_error(schema, payload)
    if reason is not None:
        raise InvalidRequest(f"{method}: {reason}")
