"""Power-state sync and guests the record does not know, on libvirt's test
hypervisor: a guest that went off makes its instance STOPPED, nothing is
ever started, and unknown guests are handled per policy."""
import uuid

import libvirt
import pytest

from tests.functional.conftest import wait_settled

UNKNOWN_XML = """<domain type='test'><name>instance-{u}</name><uuid>{u}</uuid>
<memory>131072</memory><vcpu>1</vcpu><os><type>hvm</type></os></domain>"""


def conn():
    return libvirt.open("test:///default")


def test_guest_off_behind_the_agents_back_becomes_stopped(api, service, active_instance):
    conn().lookupByUUIDString(active_instance).destroy()
    service.manager.reconciler.sync_power_states()
    rec = wait_settled(api, service.conf.host, active_instance)
    assert (rec["vm_state"], rec["power_state"]) == ("stopped", "SHUTDOWN")
    service.manager.reconciler.sync_power_states()                 # never starts it again
    assert not conn().lookupByUUIDString(active_instance).isActive()


def test_sync_leaves_instances_with_an_operation_in_progress(service, active_instance):
    service.db.instance_update(active_instance, task_state="pausing")
    conn().lookupByUUIDString(active_instance).destroy()
    service.manager.reconciler.sync_power_states()
    inst = service.db.instance_get(active_instance)
    assert (inst.vm_state, inst.task_state) == ("active", "pausing")
    service.db.instance_update(active_instance, task_state=None)


@pytest.mark.parametrize("policy", ["noop", "log", "shutdown", "reap"])
def test_a_guest_no_record_names_is_reported_and_left_running_whatever_the_policy(
        api, service, policy):
    u = str(uuid.uuid4())
    c = conn()
    c.defineXML(UNKNOWN_XML.format(u=u)).create()
    service.conf.set_override("running_deleted_instance_action", policy)
    try:
        service.manager.reconciler.sync_power_states()
    finally:
        service.conf.clear_override("running_deleted_instance_action")
    dom = c.lookupByUUIDString(u)
    try:
        assert dom.isActive()
        assert u in api.get_host_status(service.conf.host)["unknown_guests"]
        assert service.manager.metrics_state()["unknown_guests"] >= 1
    finally:
        dom.destroy()
        dom.undefine()
    service.manager.reconciler.sync_power_states()
    assert u not in api.get_host_status(service.conf.host)["unknown_guests"]


@pytest.mark.parametrize("policy,exists,active", [("noop", True, True), ("log", True, True),
                                                   ("shutdown", True, False),
                                                   ("reap", False, False)])
def test_guest_of_an_instance_deleted_here_handled_per_policy(service, active_instance,
                                                             policy, exists, active):
    """A record marked deleted while its guest survived (say, the delete was
    done by hand in the database)."""
    service.db.instance_update(active_instance, deleted=True, vm_state="deleted")
    service.conf.set_override("running_deleted_instance_action", policy)
    try:
        service.manager.reconciler.sync_power_states()
    finally:
        service.conf.clear_override("running_deleted_instance_action")
    try:
        dom = conn().lookupByUUIDString(active_instance)
    except libvirt.libvirtError:
        dom = None
    assert (dom is not None) == exists
    if dom is not None:
        assert bool(dom.isActive()) == active
        if dom.isActive():
            dom.destroy()
        dom.undefine()


def test_guest_of_an_instance_deleted_after_it_moved_away_is_left_alone(service,
                                                                       active_instance):
    """The record says deleted, but on another host (an evacuation's
    pointer): not this host's word for it, so it stays."""
    service.db.instance_update(active_instance, deleted=True, vm_state="deleted",
                               host="elsewhere")
    service.conf.set_override("running_deleted_instance_action", "reap")
    try:
        service.manager.reconciler.sync_power_states()
    finally:
        service.conf.clear_override("running_deleted_instance_action")
    dom = conn().lookupByUUIDString(active_instance)
    assert dom.isActive()
    dom.destroy()
    dom.undefine()


@pytest.mark.parametrize("resume,vm_state,power", [(True, "active", "RUNNING"),
                                                   (False, "stopped", "SHUTDOWN")])
def test_agent_start_after_host_reboot(api, service, active_instance, resume, vm_state, power):
    """The guest of an ACTIVE instance is gone (the host rebooted): started
    again only when resume_guests_state_on_host_boot is set."""
    conn().lookupByUUIDString(active_instance).destroy()
    service.conf.set_override("resume_guests_state_on_host_boot", resume)
    try:
        service.manager.reconciler._reconcile(service.db.instance_get(active_instance))
    finally:
        service.conf.clear_override("resume_guests_state_on_host_boot")
    rec = wait_settled(api, service.conf.host, active_instance)
    assert (rec["vm_state"], rec["power_state"]) == (vm_state, power)


def test_agent_start_never_touches_a_running_guest(api, service, active_instance):
    dom = conn().lookupByUUIDString(active_instance)
    dom_id = dom.ID()
    service.manager.reconciler._reconcile(service.db.instance_get(active_instance))
    assert conn().lookupByUUIDString(active_instance).ID() == dom_id   # same run, not restarted
    rec = api.get_instance(service.conf.host, active_instance)
    assert (rec["vm_state"], rec["task_state"], rec["power_state"]) == ("active", None,
                                                                         "RUNNING")
    assert [a["action"] for a in api.list_instance_actions(service.conf.host,
                                                           active_instance)] == ["create"]


def test_stale_event_does_not_stop_a_running_instance(api, service, active_instance):
    """A STOPPED event raised earlier (say, before the spawn finished) but
    handled once the guest runs must not stop the instance: the handler
    judges the record by the state the guest has now.  The same event for a
    guest that is really off does stop it, so the first check is no
    vacuous one."""
    import time
    driver = service.manager.driver
    driver.events(active_instance, libvirt.VIR_DOMAIN_EVENT_STOPPED, 0)   # stale
    time.sleep(1.5)                                              # past the 0.5 s delay
    rec = api.get_instance(service.conf.host, active_instance)
    assert (rec["vm_state"], rec["power_state"]) == ("active", "RUNNING")
    conn().lookupByUUIDString(active_instance).destroy()
    driver.events(active_instance, libvirt.VIR_DOMAIN_EVENT_STOPPED, 0)   # true
    deadline = time.monotonic() + 10
    while rec["vm_state"] != "stopped" and time.monotonic() < deadline:
        time.sleep(0.1)
        rec = api.get_instance(service.conf.host, active_instance)
    assert (rec["vm_state"], rec["power_state"]) == ("stopped", "SHUTDOWN")


def events_drained(driver):
    """Wait until the agent has handled every lifecycle event so far: the
    spawn's own events may still be on their way on a loaded machine, and
    one handled after a destroy reads the guest as off."""
    assert driver.host.wait_events_quiet(0.5, 15), "lifecycle events kept coming"


def test_stopped_then_started_within_the_delay_is_not_a_stop(api, service, active_instance):
    """A reboot outside the agent (STOPPED then STARTED within
    lifecycle_event_delay, 6 s here so a loaded machine cannot stretch the
    reboot past it) leaves the instance ACTIVE: the STOPPED event is held
    back and dropped when STARTED follows, so it is never reported."""
    import time
    driver = service.manager.driver
    delayed, emit_held = [], driver.events._emit_held
    driver.events._emit_held = lambda uuid: (delayed.append(uuid), emit_held(uuid))
    service.conf.set_override("lifecycle_event_delay", 6, group="libvirt")
    events_drained(driver)
    try:
        dom = conn().lookupByUUIDString(active_instance)
        dom.destroy()
        deadline = time.monotonic() + 3
        while active_instance not in driver.events.timers:      # the STOPPED event, held back
            assert time.monotonic() < deadline, "no STOPPED event"
            time.sleep(0.01)
        dom.create()
        time.sleep(7)                       # well past the delay
    finally:
        driver.events._emit_held = emit_held
        service.conf.clear_override("lifecycle_event_delay", group="libvirt")
    assert active_instance not in delayed                 # dropped, never reported
    rec = api.get_instance(service.conf.host, active_instance)
    assert (rec["vm_state"], rec["power_state"]) == ("active", "RUNNING")


def test_stopped_alone_is_reported_after_the_delay(api, service, active_instance):
    """The STOPPED event is held back for the delay (4 s here, so a loaded
    machine cannot make the check below late), then reported."""
    import time
    service.conf.set_override("lifecycle_event_delay", 4, group="libvirt")
    events_drained(service.manager.driver)
    try:
        conn().lookupByUUIDString(active_instance).destroy()
        time.sleep(0.2)
        assert api.get_instance(service.conf.host, active_instance)["vm_state"] == "active"
    finally:
        service.conf.set_override("lifecycle_event_delay", 0.5, group="libvirt")
    rec = wait_settled(api, service.conf.host, active_instance)
    deadline = time.monotonic() + 15
    while rec["vm_state"] != "stopped" and time.monotonic() < deadline:
        time.sleep(0.1)
        rec = api.get_instance(service.conf.host, active_instance)
    assert (rec["vm_state"], rec["power_state"]) == ("stopped", "SHUTDOWN")
