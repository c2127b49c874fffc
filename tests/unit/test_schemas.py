"""Every RPC payload is checked against its schema; each malformed request
names what is wrong."""
import jsonschema
import pytest

from compute.core import exception
from compute.core.exception import InvalidRequest
from compute.rpc import schemas

GOOD = {"instance_uuid": "0d3e4c0a-8c1b-4d3e-9a49-2f0c1b7a6e55", "name": "web",
        "flavor": {"vcpus": 1, "memory_mb": 128, "root_gb": 1}, "image_id": "img-1"}

BAD = [
    ("missing flavor", {k: v for k, v in GOOD.items() if k != "flavor"}, "flavor"),
    ("negative memory", {**GOOD, "flavor": {"vcpus": 1, "memory_mb": -1, "root_gb": 1}},
     "flavor/memory_mb"),
    ("uuid not a uuid", {**GOOD, "instance_uuid": "../../etc"}, "instance_uuid"),
    ("image id with slash", {**GOOD, "image_id": "a/b"}, "image_id"),
    ("image id dot-dot", {**GOOD, "image_id": "../x"}, "image_id"),
    ("unknown field", {**GOOD, "hack": 1}, "hack"),
    ("unknown flavor field", {**GOOD, "flavor": {**GOOD["flavor"], "gpu": 1}}, "gpu"),
    ("memory as string", {**GOOD, "flavor": {**GOOD["flavor"], "memory_mb": "128"}},
     "memory_mb"),
    ("zero vcpus", {**GOOD, "flavor": {**GOOD["flavor"], "vcpus": 0}}, "vcpus"),
    ("name with slash", {**GOOD, "name": "a/b"}, "name"),
]


def test_good_payload_passes():
    schemas.validate("build_and_run_instance", GOOD)


@pytest.mark.parametrize("why,payload,field", BAD, ids=[b[0] for b in BAD])
def test_malformed_build_request_is_refused_naming_the_field(why, payload, field):
    with pytest.raises(InvalidRequest) as e:
        schemas.validate("build_and_run_instance", payload)
    assert field in str(e.value)


def test_every_method_refuses_unknown_fields():
    for method in schemas.SCHEMAS:
        with pytest.raises(InvalidRequest):
            schemas.validate(method, {"bogus": 1})


def test_unknown_method():
    with pytest.raises(InvalidRequest):
        schemas.validate("format_disk", {})


def test_resize_growth_rules():
    from compute.core import exception
    from compute.parts.resize import check_growth, full_flavor
    old = full_flavor({"vcpus": 1, "memory_mb": 128, "root_gb": 2, "ephemeral_gb": 1})
    check_growth(old, {**old, "root_gb": 3, "vcpus": 4})
    check_growth(old, old)
    for bad in ({"root_gb": 1}, {"root_gb": 0}, {"ephemeral_gb": 0}):
        with pytest.raises(exception.InvalidRequest, match="never shrink"):
            check_growth(old, {**old, **bad})
    check_growth({**old, "root_gb": 0}, {**old, "root_gb": 0})


def test_migration_payloads_are_bounded():
    mig = {"id": "6f1c1f8e-0c4d-44bd-b637-548d873c9205",
           "instance_uuid": "6f1c1f8e-0c4d-44bd-b637-548d873c9206",
           "migration_type": "resize", "source_host": "a", "dest_host": "b",
           "old_flavor": {"vcpus": 1, "memory_mb": 128, "root_gb": 1},
           "new_flavor": {"vcpus": 2, "memory_mb": 256, "root_gb": 2},
           "old_vm_state": "active", "old_disk_formats": {"disk": "qcow2"}}
    schemas.validate("finish_resize", {"migration_id": mig["id"]})
    for bad in ({"migration_id": "../x"}, {"migration_id": mig["id"], "extra": 1}):
        with pytest.raises(InvalidRequest):
            schemas.validate("finish_resize", bad)
    with pytest.raises(InvalidRequest):
        schemas.validate("migrate_instance", {"instance_uuid": mig["instance_uuid"],
                                              "dest_host": "../b"})
    with pytest.raises(InvalidRequest):
        schemas.validate("prep_resize", {"migration": {**mig, "old_vm_state": "error"},
                                         "instance": {}, "probe": ".shared-probe-" + "0" * 32})


def test_live_migration_check_payloads_are_bounded():
    u = "6f1c1f8e-0c4d-44bd-b637-548d873c9206"
    found = {"shared_storage": False, "block_migration": True, "disk_available": 2**30,
             "libvirt_uri": "qemu+tcp://hB/system", "migrate_uri": "tcp://hB"}
    schemas.validate("check_can_live_migrate_source",
                     {"instance_uuid": u, "dest_check_data": found})
    for bad in ({"libvirt_uri": "qemu+tcp://hB/system?x=1"},
                {"libvirt_uri": "qemu:///system"}, {"migrate_uri": "tcp://h B"},
                {"disk_available": -1}, {"extra": True}):
        with pytest.raises(InvalidRequest):
            schemas.validate("check_can_live_migrate_source",
                             {"instance_uuid": u, "dest_check_data": {**found, **bad}})
    cpu = schemas.SCHEMAS["check_can_live_migrate_destination"]["properties"]["cpu"]
    for good in (None, "<cpu mode='custom'><model>qemu64</model></cpu>"):
        jsonschema.validate(good, cpu)
    for bad in ("<domain/>", "<cpu>" + "x" * 65536, 3):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, cpu)


def test_local_copy_drops_the_remote_traceback():
    remote = type("InvalidRequest_Remote", (InvalidRequest,),
                  {"__str__": lambda self: "no room\nTraceback (most recent call last): ..."})
    e = exception.local_copy(remote("no room"))
    assert type(e) is InvalidRequest and str(e) == "no room"
    assert type(exception.local_copy(InvalidRequest("x"))) is InvalidRequest
