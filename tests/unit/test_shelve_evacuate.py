"""Shelving's and evacuation's pure decisions: which shelved instances are
due for offload, that an offloaded instance holds nothing on its host, and
when an evacuation may start."""
import datetime
import types

from compute.core import optable, states
from compute.core.operation import instance_facts
from compute.core.resource_tracker import holds_resources
from compute.parts.networking import Networking
from compute.parts.shelve import expired_shelves

NOW = datetime.datetime(2026, 11, 26, 12, 0, 0)


def rec(vm_state, task_state=None, age=0, launched=True, props=None):
    return types.SimpleNamespace(
        uuid=f"{vm_state}-{task_state}-{age}", vm_state=vm_state, task_state=task_state,
        updated_at=NOW - datetime.timedelta(seconds=age), created_at=NOW,
        launched_at=NOW if launched else None, image_meta={"properties": props or {}},
        volumes=[])


def test_only_idle_shelved_instances_older_than_the_limit_are_due():
    due = rec(states.SHELVED, age=120)
    young = rec(states.SHELVED, age=30)
    busy = rec(states.SHELVED, states.UNSHELVING, age=120)
    active = rec(states.ACTIVE, age=120)
    assert expired_shelves([due, young, busy, active], 60, NOW) == [due]
    assert expired_shelves([due], 0, NOW) == []         # 0: offloaded by the shelve itself
    assert expired_shelves([due], -1, NOW) == []        # -1: never


def test_an_offloaded_instance_holds_no_resources_and_no_ports_until_unshelved():
    offloaded = rec(states.SHELVED_OFFLOADED)
    unshelving = rec(states.SHELVED_OFFLOADED, states.UNSHELVING)
    offloading = rec(states.SHELVED, states.SHELVING_OFFLOADING)
    assert states.offloaded(offloaded.vm_state, offloaded.task_state)
    assert not holds_resources(offloaded) and not Networking.wired(offloaded)
    assert holds_resources(unshelving) and Networking.wired(unshelving)   # claimed, plugged
    assert holds_resources(offloading) and not Networking.wired(offloading)
    assert holds_resources(rec(states.SHELVED)) and Networking.wired(rec(states.SHELVED))


def test_a_vtpm_is_seen_in_the_image_properties():
    assert optable.VTPM in instance_facts(rec(states.ACTIVE, props={"hw_tpm_version": "2.0"}))
    assert not instance_facts(rec(states.ACTIVE))
    for name in ("shelve", "resize"):       # the rows that refuse it, and why
        assert "vTPM" in optable.refusal(optable.TABLE[name], {optable.VTPM})
    assert optable.refusal(optable.TABLE["live_migration"], {optable.VTPM}) is None


def test_evacuation_needs_a_down_service_and_an_idle_evacuable_record():
    from compute.parts.evacuate import record_refusal, service_refusal
    svc = types.SimpleNamespace(updated_at=NOW - datetime.timedelta(seconds=30),
                                created_at=NOW)
    assert "no service record" in service_refusal("ha", None, 60, NOW)
    assert "is up: its last heartbeat is 30 s old" in service_refusal("ha", svc, 60, NOW)
    assert service_refusal("ha", svc, 10, NOW) is None
    from compute.parts.evacuate import MIGRATION_TASKS
    assert MIGRATION_TASKS == {states.MIGRATING, states.RESIZE_PREP, states.RESIZE_MIGRATING,
                               states.RESIZE_MIGRATED, states.RESIZE_FINISH,
                               states.RESIZE_REVERTING, states.RESIZE_CONFIRMING,
                               states.UNSHELVING}          # from the table's peer rows
    assert record_refusal(rec(states.ACTIVE), None) is None
    assert record_refusal(rec(states.STOPPED, states.POWERING_OFF), None) is None
    assert "middle of migrating" in record_refusal(rec(states.ACTIVE, states.MIGRATING), None)
    assert "shelved_offloaded" in record_refusal(rec(states.SHELVED_OFFLOADED), None)
    assert "record on hb already" in record_refusal(rec(states.ACTIVE), "hb")
