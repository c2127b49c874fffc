"""JSON schemas of every RPC method's payload, checked at the RPC boundary
(and by the client before it sends).  Unknown fields are errors.  A request
that fails here is answered with compute.exception.InvalidRequest naming the
offending field, and nothing is written."""
import jsonschema

from compute.exception import InvalidRequest

UUID = {"type": "string",
        "pattern": "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"}
IMAGE_ID = {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"}
NAME = {"type": "string", "minLength": 1, "maxLength": 255,
        "pattern": "^[^\\x00-\\x1f/]+$"}

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


def _method(properties, required):
    return {"type": "object", "additionalProperties": False,
            "required": list(required), "properties": properties}


SCHEMAS = {
    "build_and_run_instance": _method(
        {"instance_uuid": UUID, "name": NAME, "flavor": FLAVOR, "image_id": IMAGE_ID,
         "metadata": {"type": "object", "maxProperties": 128,
                      "additionalProperties": {"type": "string", "maxLength": 255}},
         "networks": {"type": "array", "maxItems": 0}},
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
    "get_host_status": _method({}, []),
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
    "list_instances": _method({}, []),
    "ping": _method({}, []),
}


def validate(method, payload):
    """Raise InvalidRequest (naming the field) unless payload fits method."""
    schema = SCHEMAS.get(method)
    if schema is None:
        raise InvalidRequest(f"unknown method {method!r}")
    error = jsonschema.exceptions.best_match(
        jsonschema.Draft202012Validator(schema).iter_errors(payload))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "payload"
        raise InvalidRequest(f"{method}: invalid {where}: {error.message}")
