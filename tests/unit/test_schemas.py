"""Every RPC payload is checked against its schema; each malformed request
names what is wrong."""
import pytest

from compute import schemas
from compute.exception import InvalidRequest

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
