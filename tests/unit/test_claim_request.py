"""The one claim rule (compute.core.resource_tracker.claim_request), pure: every
claim and the usage count the same resources for the same instance."""
import types

from compute.core.resource_tracker import Resources, claim_request, of_instance
from virt.driver import BOOT_DEVICE

FLAVOR = {"vcpus": 2, "memory_mb": 512, "root_gb": 10, "ephemeral_gb": 1}
BOOT = [{"volume_id": "v1", "device": BOOT_DEVICE}]
DATA = [{"volume_id": "v2", "device": "vdb"}]
FILES = {"disk": "qcow2", "disk.local": "qcow2"}


def test_the_disks_count_only_where_they_take_this_hosts_disk():
    assert claim_request(FLAVOR, [], FILES) == Resources(2, 512, 11)
    assert claim_request(FLAVOR, DATA, FILES) == Resources(2, 512, 11)
    assert claim_request(FLAVOR, [], FILES, disks_local=False) == Resources(2, 512, 0)
    assert claim_request(FLAVOR, [], {"disk": "rbd"}) == Resources(2, 512, 0)
    # a build: no disks yet, made where this host makes new disks
    assert claim_request(FLAVOR, [], {}) == Resources(2, 512, 11)
    assert claim_request(FLAVOR, [], {}, new_disks_shared=True) == Resources(2, 512, 0)


def test_a_boot_volume_claims_no_root_disk_wherever_it_is_claimed():
    assert claim_request(FLAVOR, BOOT, {"disk.local": "qcow2"}) == Resources(2, 512, 1)
    assert claim_request(FLAVOR, BOOT, {}) == Resources(2, 512, 1)


def test_a_boot_from_volume_live_migration_claims_what_the_usage_counts():
    """The destination's claim of an arriving instance (its payload) is what
    its record counts once it is there: before, a block migration of a
    guest booted from a volume claimed a root disk the usage never counted."""
    payload = {"flavor": FLAVOR, "volumes": BOOT, "disk_formats": {"disk.local": "qcow2"}}
    record = types.SimpleNamespace(flavor=FLAVOR, volumes=BOOT,
                                   disk_formats=payload["disk_formats"])
    from compute.parts.live_migration import LiveMigrations
    for block in (True, False):
        claimed = LiveMigrations._request(payload, block)
        assert claimed == of_instance(record, disk=block)
    assert LiveMigrations._request(payload, True).disk_gb == 1
