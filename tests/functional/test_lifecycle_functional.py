"""Power operations through RPC on libvirt's test hypervisor: the legal
ones reach their state, the illegal ones are refused with a typed error
and change nothing."""
import pytest

from compute.core import exception
from tests.functional.conftest import wait_settled

# (how to get there, the operation that must be refused there)
SETUPS = {
    "active": [],
    "paused": ["pause_instance"],
    "suspended": ["suspend_instance"],
    "stopped": ["stop_instance"],
}
ILLEGAL = [
    ("active", "resume_instance"), ("active", "unpause_instance"),
    ("active", "start_instance"),
    ("paused", "pause_instance"), ("paused", "suspend_instance"),
    ("paused", "resume_instance"), ("paused", "start_instance"),
    ("suspended", "suspend_instance"), ("suspended", "pause_instance"),
    ("suspended", "unpause_instance"), ("suspended", "start_instance"),
    ("stopped", "stop_instance"), ("stopped", "pause_instance"),
    ("stopped", "suspend_instance"), ("stopped", "resume_instance"),
    ("stopped", "unpause_instance"), ("stopped", "reboot_soft"),
    ("paused", "reboot_soft"), ("suspended", "reboot_soft"),
]


def call(api, host, method, uuid_):
    if method.startswith("reboot_"):
        return api.reboot_instance(host, uuid_, method.split("_")[1].upper())
    return getattr(api, method)(host, uuid_)


def bring_to(api, host, uuid_, state):
    for method in SETUPS[state]:
        call(api, host, method, uuid_)
        rec = wait_settled(api, host, uuid_)
    rec = wait_settled(api, host, uuid_)
    assert rec["vm_state"] == state, rec
    return rec


@pytest.mark.parametrize("state,method", ILLEGAL, ids=[f"{m}-when-{s}" for s, m in ILLEGAL])
def test_illegal_transition_is_refused_and_changes_nothing(api, service, active_instance,
                                                           state, method):
    host = service.conf.host
    before = bring_to(api, host, active_instance, state)
    actions_before = api.list_instance_actions(host, active_instance)
    with pytest.raises(exception.InstanceInvalidState) as e:
        call(api, host, method, active_instance)
    assert f"vm_state={state}" in str(e.value)
    after = api.get_instance(host, active_instance)
    assert (after["vm_state"], after["task_state"]) == (before["vm_state"], None)
    assert api.list_instance_actions(host, active_instance) == actions_before


def test_every_operation_reaches_its_state(api, service, active_instance):
    host, u = service.conf.host, active_instance
    steps = [("pause_instance", "paused", "PAUSED"), ("unpause_instance", "active", "RUNNING"),
             ("suspend_instance", "suspended", "SHUTDOWN"),
             ("resume_instance", "active", "RUNNING"),
             ("stop_instance", "stopped", "SHUTDOWN"), ("start_instance", "active", "RUNNING"),
             ("reboot_hard", "active", "RUNNING"), ("reboot_soft", "active", "RUNNING")]
    for method, vm_state, power in steps:
        accepted = call(api, host, method, u)
        assert accepted["instance_uuid"] == u
        rec = wait_settled(api, host, u)
        assert (rec["vm_state"], rec["power_state"]) == (vm_state, power), (method, rec)
    actions = [a["action"] for a in api.list_instance_actions(host, u)]
    assert actions == ["create", "pause", "unpause", "suspend", "resume", "stop", "start",
                       "reboot", "reboot"]
    assert all(a["message"] is None for a in api.list_instance_actions(host, u))


@pytest.mark.parametrize("state", ["active", "paused", "suspended", "stopped"])
def test_hard_reboot_works_from_every_settled_state(api, service, active_instance, state):
    host = service.conf.host
    bring_to(api, host, active_instance, state)
    api.reboot_instance(host, active_instance, "HARD")
    rec = wait_settled(api, host, active_instance)
    assert (rec["vm_state"], rec["power_state"]) == ("active", "RUNNING")


def test_reset_state_then_hard_reboot(api, service, active_instance):
    host = service.conf.host
    assert api.reset_state(host, active_instance, "error")["vm_state"] == "error"
    with pytest.raises(exception.InstanceInvalidState):
        api.pause_instance(host, active_instance)
    api.reboot_instance(host, active_instance, "HARD")
    api.reboot_instance(host, active_instance, "HARD")      # twice in a row is fine
    rec = wait_settled(api, host, active_instance)
    assert (rec["vm_state"], rec["power_state"]) == ("active", "RUNNING")
    actions = api.list_instance_actions(host, active_instance)
    assert [a["action"] for a in actions][-3:] == ["reset_state", "reboot", "reboot"]


def test_operations_on_unknown_instance_are_typed_errors(api, service):
    with pytest.raises(exception.InstanceNotFound):
        api.pause_instance(service.conf.host, "0d3e4c0a-8c1b-4d3e-9a49-2f0c1b7a6e55")
    with pytest.raises(exception.InvalidRequest):
        api.reboot_instance(service.conf.host, "0d3e4c0a-8c1b-4d3e-9a49-2f0c1b7a6e55", "WARM")


def test_an_operation_is_its_row_its_part_method_its_schema_and_its_declaration(
        api, service, active_instance, monkeypatch):
    """A new operation ("hibernate": an instance to a new task state and
    back to ACTIVE) added the way the code says: a row (compute.core.optable), a
    method on a part, a schema and a declaration line (compute.rpc.contract).
    Nothing else is written: the endpoint serves it, the client sends it,
    the Runner accepts, runs and settles it, a restart would resume it."""
    from compute.core import optable, states
    from compute.parts.lifecycle import Lifecycle
    from compute.rpc import contract, schemas
    row = optable.Op("hibernate", "hibernate", frozenset({states.ACTIVE}), (None,),
                     ("hibernating",), states.ACTIVE, None, optable.RESUME,
                     runs="lifecycle.hibernate")
    ran = []

    def hibernate(self, ctxt, uuid):                       # the part method
        self.runner.run("hibernate", ctxt, uuid, lambda inst, record: ran.append(
            (inst.uuid, inst.task_state)))
    monkeypatch.setattr(optable, "ROWS", (*optable.ROWS, row))
    monkeypatch.setitem(optable.TABLE, "hibernate", row)
    monkeypatch.setattr(Lifecycle, "hibernate", hibernate, raising=False)
    monkeypatch.setitem(schemas.SCHEMAS, "hibernate_instance",
                        schemas.SCHEMAS["stop_instance"])
    monkeypatch.setitem(contract.METHODS, "hibernate_instance",
                        contract.Method("hibernate_instance", contract.CALL,
                                        starts="hibernate", since="1.0"))
    host, u = service.conf.host, active_instance
    assert api.hibernate_instance(host, u) == {"instance_uuid": u, "accepted": "hibernate"}
    rec = wait_settled(api, host, u)
    assert (rec["vm_state"], rec["task_state"]) == ("active", None)
    assert ran == [(u, "hibernating")]
    assert api.list_instance_actions(host, u)[-1]["action"] == "hibernate"
    api.stop_instance(host, u)
    wait_settled(api, host, u)
    with pytest.raises(exception.InstanceInvalidState, match="cannot hibernate"):
        api.hibernate_instance(host, u)                     # the row's accepted states
    with pytest.raises(exception.InvalidRequest):
        api.hibernate_instance(host, "not-a-uuid")          # the schema
    api.start_instance(host, u)
    wait_settled(api, host, u)
