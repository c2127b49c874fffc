"""Evacuation between two whole services in one process that share one
database (each keeps its own rows in it): refused while the source is up
or without a shared database, rebuilt on the destination once the
source's heartbeat is stale, and cleaned up by the source when it comes
back (its copy destroyed, its files gone, its record a pointer)."""
# ruff: noqa: F811 - the fixtures imported from twohosts are test arguments
import contextlib
import datetime
import os
import threading
import time
import uuid

import pytest
from sqlalchemy import text, update

from compute.core import exception, faults
from compute.db import models
from tests.functional.twohosts import (  # noqa: F401 - fixtures too
    FLAVOR,
    Crash,
    api,
    arm,
    boot,
    client,
    crash_at,
    guests,
    host,
    hosts,
    instance_dir,
    record,
    restart,
    settled,
    until,
)

USER_DATA = "I2Nsb3VkLWNvbmZpZwpldmFjdWF0ZWQ6IHllcwo="
TWO_HOSTS_CONF = {("database", "connection"): "sqlite:///{tmp_module}/shared.sqlite",
                  (None, "service_down_time"): 5}


def go_down(svc):
    """svc stops its heartbeat (its periodic threads end), and its last
    one is made older than service_down_time."""
    svc._stop.set()
    time.sleep(0.2)
    with svc.db.session() as s:
        s.execute(update(models.Service).where(models.Service.host == host(svc))
                  .values(updated_at=models.utcnow() - datetime.timedelta(seconds=60)))


def test_evacuate_rebuilds_on_the_destination_and_the_source_cleans_up_on_return(
        api, hosts, qcow2_image):
    fa, fb = hosts["fa"], hosts["fb"]
    u = boot(api, hosts, qcow2_image)
    with pytest.raises(exception.InvalidRequest, match=f"host {host(fa)} is up"):
        api.evacuate_instance(host(fb), u, host(fa))
    with pytest.raises(exception.InvalidRequest, match="no service record"):
        api.evacuate_instance(host(fb), u, "nosuchhost")
    go_down(fa)
    with pytest.raises(exception.InvalidRequest, match="its own host"):
        api.evacuate_instance(host(fa), u, host(fa))
    answer = api.evacuate_instance(host(fb), u, host(fa))
    assert answer["shared_storage"] is False
    rec = settled(api, fb, u, vm_state="active")
    assert rec["host"] == host(fb) and u in guests(fb)
    assert os.path.exists(os.path.join(instance_dir(fb, u), "disk"))
    with pytest.raises(exception.InvalidRequest, match="record on"):
        api.evacuate_instance(host(fb), u, host(fa))           # once only
    rows = [m for m in fb.db.migrations(u) if m.migration_type == "evacuation"]
    assert [(m.status, m.source_host) for m in rows] == [("done", host(fa))]
    # the source comes back: its copy goes before anything could start it
    assert u in guests(fa) and os.path.isdir(instance_dir(fa, u))
    fa.manager.evacuations.clean_up_evacuated()
    assert u not in guests(fa) and not os.path.exists(instance_dir(fa, u))
    assert fa.manager.peers.find(u) is None
    assert fa.db.instance_get(u, include_deleted=True).host == host(fb)
    assert fb.db.migration_get(rows[0].id).status == "completed"
    assert fb.db.evacuations_from(host(fa)) == []
    api.terminate_instance(host(fb), u)
    settled(api, fb, u, vm_state="deleted")


def test_an_interrupted_evacuation_is_taken_up_again(api, hosts, qcow2_image, crash_at):
    fa, fb = hosts["fa"], hosts["fb"]
    fa.db.service_heartbeat(host(fa), "compute-agent", "compute")    # up, to boot there
    u = boot(api, hosts, qcow2_image)
    go_down(fa)
    crash_at("evacuate.prepared")
    api.evacuate_instance(host(fb), u, host(fa))
    until(lambda: fb.db.instance_get(u).task_state == "rebuild_spawning")
    time.sleep(0.3)
    assert fb.db.instance_get(u).task_state == "rebuild_spawning"
    crash_at("no-such-step")
    fb.manager.reconciler._reconcile(fb.db.instance_get(u))         # the restart
    assert settled(api, fb, u, vm_state="active")["host"] == host(fb)
    fa.manager.evacuations.clean_up_evacuated()
    assert u not in guests(fa)
    api.terminate_instance(host(fb), u)


@pytest.mark.parametrize("step", ["evacuate.opened", "evacuate.prepared", "evacuate.spawned",
                                  "evacuate_source.destroyed"])
def test_an_agent_dying_at_any_step_of_an_evacuation_ends_on_the_destination_once(
        api, hosts, qcow2_image, monkeypatch, step):
    """The destination dies accepting, preparing or after spawning (its
    start takes the evacuation up again), or the source dies removing its
    copy when it is back (its next start removes it): the instance runs
    on the destination only, its row done, the source's record gone."""
    fa, fb = hosts["fa"], hosts["fb"]
    fa.db.service_heartbeat(host(fa), "compute-agent", "compute")    # up, to boot there
    u = boot(api, hosts, qcow2_image)
    go_down(fa)
    on_source = step.startswith("evacuate_source")
    died = arm(monkeypatch, step) if not on_source else None

    def evacuate():                 # a call whose handler may die: not waited for
        with contextlib.suppress(Exception):
            client(hosts, timeout=5).evacuate_instance(host(fb), u, host(fa))
    threading.Thread(target=evacuate, daemon=True).start()
    if died is not None:
        assert died.wait(30), f"{step} was never reached"
        time.sleep(0.3)
        monkeypatch.setattr(faults, "point", lambda name: None)
        restart(fb, u)
    else:
        until(lambda: record(fb, u) is not None)
    if record(fb, u) is None:       # it died before it took the instance: asked again
        assert step == "evacuate.opened"
        api.evacuate_instance(host(fb), u, host(fa))
    rec = settled(api, fb, u, vm_state="active")
    assert rec["host"] == host(fb) and u in guests(fb)
    if on_source:                   # the source is back and dies removing its copy
        arm(monkeypatch, step)
        with pytest.raises(Crash):
            fa.manager.evacuations.clean_up_evacuated()
        monkeypatch.setattr(faults, "point", lambda name: None)
    fa.manager.evacuations.clean_up_evacuated()              # (its next) start
    assert u not in guests(fa) and not os.path.exists(instance_dir(fa, u))
    assert fa.db.instance_get(u, include_deleted=True).host == host(fb)
    assert [m.status for m in fb.db.migrations(u) if m.migration_type == "evacuation"] == [
        "completed"]
    api.terminate_instance(host(fb), u)
    settled(api, fb, u, vm_state="deleted")


def test_a_forged_evacuation_row_destroys_nothing(api, hosts, qcow2_image):
    """A row of an evacuation that never happened (written while the source
    was up, naming a destination with no record of the instance): the
    source's start keeps its guest and files and records why."""
    fa, fb = hosts["fa"], hosts["fb"]
    fa.db.service_heartbeat(host(fa), "compute-agent", "compute")    # up
    u = boot(api, hosts, qcow2_image)
    fb.db.migration_create(id="f0f0f0f0-0000-4000-8000-000000000000", owner=host(fb),
                           instance_uuid=u, migration_type="evacuation",
                           source_host=host(fa), dest_host=host(fb), status="done",
                           old_flavor={}, new_flavor={}, old_vm_state="active")
    fa.manager.evacuations.clean_up_evacuated()
    assert u in guests(fa) and os.path.exists(os.path.join(instance_dir(fa, u), "disk"))
    assert fa.db.instance_get(u).host == host(fa)
    fault = fa.db.fault_latest(u)
    assert "EvacuationRefused" in fault.message and "was not down" in fault.message
    api.terminate_instance(host(fa), u)
    settled(api, fa, u, vm_state="deleted")


def test_an_instance_another_host_holds_is_not_evacuated(api, hosts, qcow2_image):
    """The down host's record is stale: a third host's live record says it
    holds the instance (it moved there): the evacuation is refused and
    leaves no row."""
    fa, fb = hosts["fa"], hosts["fb"]
    fa.db.service_heartbeat(host(fa), "compute-agent", "compute")    # up, to boot there
    u = boot(api, hosts, qcow2_image)
    go_down(fa)
    third = fa.db.instance_get(u)
    fb.db.instance_create(owner="fc", host="fc", uuid=u, display_name="moved",
                          vm_state="active", power_state=1, flavor=third.flavor,
                          image_ref=third.image_ref, image_meta={}, disk_formats={},
                          networks=[], metadata_={})
    with pytest.raises(exception.InvalidRequest, match=r"fc holds it \(active, power RUNNING\)"):
        api.evacuate_instance(host(fb), u, host(fa))
    assert [m for m in fb.db.migrations_of(u) if m.migration_type == "evacuation"
            and m.status == "accepting"] == []
    assert fb.manager.peers.find(u) is None


def test_an_evacuation_opened_and_never_accepted_is_closed_at_start(api, hosts):
    """The destination died between opening the row and accepting it."""
    fb = hosts["fb"]
    fb.db.migration_create(id="acce0000-0000-4000-8000-000000000000", owner=host(fb),
                           instance_uuid="acce0000-0000-4000-8000-00000000000a",
                           migration_type="evacuation", source_host="gone",
                           dest_host=host(fb), status="accepting", old_flavor={},
                           new_flavor={}, old_vm_state="")
    fb.manager.evacuations.clean_up_evacuated()
    assert fb.db.migrations(status=("accepting",)) == []


def test_what_the_down_host_sealed_is_given_again_or_the_evacuation_is_refused(
        api, hosts, qcow2_image):
    """The down host's record seals its user data with fa's key: fb cannot
    open it, so the evacuation needs it again, and then seals it with its
    own key."""
    fa, fb = hosts["fa"], hosts["fb"]
    fa.db.service_heartbeat(host(fa), "compute-agent", "compute")    # up, to boot there
    u = str(uuid.uuid4())
    api.build_and_run_instance(host(fa), u, "sealed", FLAVOR, qcow2_image,
                               user_data=USER_DATA)
    assert settled(api, fa, u)["vm_state"] == "active"
    go_down(fa)
    with pytest.raises(exception.InvalidRequest, match="sealed the credentials of user data"):
        api.evacuate_instance(host(fb), u, host(fa))
    assert fb.manager.peers.find(u) is None
    api.evacuate_instance(host(fb), u, host(fa), user_data=USER_DATA)
    assert settled(api, fb, u, vm_state="active")["host"] == host(fb)
    assert fb.db.instance_get(u).guest_data["user_data"] == USER_DATA
    with fb.db.session() as s:
        stored = [str(v) for v in s.execute(text(
            "SELECT guest_data FROM instances WHERE uuid = :u"), {"u": u}).scalars()]
    assert stored and all(USER_DATA not in v for v in stored)
    fa.manager.evacuations.clean_up_evacuated()
    api.terminate_instance(host(fb), u)
    settled(api, fb, u, vm_state="deleted")


VOLUME = {"volume_id": "5b1d7a3e-2c4f-4e8a-9b6d-1f2e3d4c5b6b", "device": "vdd",
          "connection_info": {"driver_volume_type": "iscsi", "data": {
              "target_portal": "10.250.0.1:3260", "target_iqn": "iqn.2024-01.tb.storage:v9",
              "target_lun": 1}}}


def test_a_volume_the_down_host_sealed_is_given_again_by_the_operator(api, hosts,
                                                                      qcow2_image):
    fa, fb = hosts["fa"], hosts["fb"]
    fa.db.service_heartbeat(host(fa), "compute-agent", "compute")    # up, to boot there
    u = boot(api, hosts, qcow2_image)
    fa.db.instance_update(u, volumes=[VOLUME])
    go_down(fa)
    with pytest.raises(exception.InvalidRequest,
                       match=f"sealed the credentials of volume {VOLUME['volume_id']}"):
        api.evacuate_instance(host(fb), u, host(fa))
    with pytest.raises(exception.InvalidRequest, match="has no volume"):
        api.evacuate_instance(host(fb), u, host(fa), connections={
            "00000000-0000-4000-8000-000000000000": VOLUME["connection_info"]})
    api.evacuate_instance(host(fb), u, host(fa),
                          connections={VOLUME["volume_id"]: VOLUME["connection_info"]})
    rec = settled(api, fb, u, vm_state="active")
    assert rec["volumes"] == [VOLUME["volume_id"]]
    assert fb.db.instance_get(u).volumes == [VOLUME]
    fa.manager.evacuations.clean_up_evacuated()
    api.terminate_instance(host(fb), u)
    settled(api, fb, u, vm_state="deleted")
