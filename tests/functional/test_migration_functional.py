"""Cold and live migration between two whole services in one process: one
in-memory transport, each service its own database, instances directory
and libvirt test-driver hypervisor (a test:///FILE connection has its own
state).  The RPC sequences run for real, the disks travel over the real
disk transfer; only libvirt's own live migration, which the test driver
lacks, is stood in for by moving the domain between the two connections.
Then the restart decisions: a thread of the agent dies at a crash point
(compute.core.faults) and the agent's start-up reconcile runs, as after a
restart, deciding with its peer."""
# ruff: noqa: F811 - the fixtures imported from twohosts are test arguments
import os
import time

import pytest

from tests.functional.twohosts import (  # noqa: F401 - fixtures too
    api,
    boot,
    crash_at,
    guests,
    host,
    hosts,
    instance_dir,
    live,
    settled,
    until,
)


def test_cold_migration_moves_disks_and_record_and_confirm_lets_go(api, hosts, qcow2_image):
    fa, fb = hosts["fa"], hosts["fb"]
    u = boot(api, hosts, qcow2_image)
    mid = api.migrate_instance(host(fa), u, host(fb))["migration_id"]
    assert settled(api, fb, u)["vm_state"] == "resized"
    assert settled(api, fa, u)["vm_state"] == "resized"
    assert u in guests(fb) and u not in guests(fa)
    assert os.path.exists(os.path.join(instance_dir(fb, u), "disk"))       # sent over
    assert os.path.isdir(instance_dir(fa, u) + "_resize")                   # kept aside
    api.confirm_resize(host(fb), u)
    assert settled(api, fb, u)["vm_state"] == "active"
    assert api.get_instance(host(fa), u)["host"] == host(fb)          # its record moved on
    assert fa.manager.peers.find(u) is None
    assert not os.path.exists(instance_dir(fa, u) + "_resize")
    assert [m["status"] for m in api.list_migrations(host(fa), u) if m["id"] == mid] == [
        "confirmed"]
    api.terminate_instance(host(fb), u)


def test_a_source_dying_after_the_destination_finished_resizes_at_start(
        api, hosts, qcow2_image, crash_at):
    fa, fb = hosts["fa"], hosts["fb"]
    u = boot(api, hosts, qcow2_image)
    crash_at("resize.finished_remote")
    api.migrate_instance(host(fa), u, host(fb))
    assert settled(api, fb, u)["vm_state"] == "resized"
    time.sleep(0.3)
    assert fa.db.instance_get(u).task_state == "resize_migrated"        # left mid-way
    fa.manager.reconciler._reconcile(fa.db.instance_get(u))             # the restart
    assert settled(api, fa, u)["vm_state"] == "resized"                 # the peer said so
    api.revert_resize(host(fb), u)
    settled(api, fa, u, vm_state="active")
    assert u in guests(fa)
    api.terminate_instance(host(fa), u)


def test_a_source_dying_after_power_off_puts_the_instance_back_at_start(
        api, hosts, qcow2_image, crash_at):
    fa, fb = hosts["fa"], hosts["fb"]
    u = boot(api, hosts, qcow2_image)
    crash_at("resize.powered_off")
    api.migrate_instance(host(fa), u, host(fb))
    until(lambda: u not in guests(fa))
    fa.manager.reconciler._reconcile(fa.db.instance_get(u))
    rec = settled(api, fa, u)
    assert (rec["vm_state"], rec["power_state"]) == ("active", "RUNNING") and u in guests(fa)
    assert fb.db.instance_list(host=host(fb)) == [] or u not in {
        i.uuid for i in fb.db.instance_list(host=host(fb))}                 # dropped there
    assert u not in guests(fb) and not os.path.exists(instance_dir(fb, u))
    api.terminate_instance(host(fa), u)


def test_live_migration_sequence(api, hosts, qcow2_image, live):
    fa, fb = hosts["fa"], hosts["fb"]
    u = boot(api, hosts, qcow2_image)
    mid = api.live_migrate_instance(host(fa), u, host(fb), block_migration=True)[
        "migration_id"]
    rec = settled(api, fb, u)
    assert (rec["vm_state"], rec["power_state"]) == ("active", "RUNNING")
    until(lambda: fa.manager.peers.find(u) is None)
    assert api.get_instance(host(fa), u)["host"] == host(fb)
    assert u in guests(fb) and u not in guests(fa)
    assert not os.path.exists(instance_dir(fa, u))                          # block: gone here
    for svc in (fa, fb):
        assert [m["status"] for m in api.list_migrations(host(svc), u)
                if m["id"] == mid] == ["completed"]
    api.terminate_instance(host(fb), u)


def test_a_source_dying_after_libvirt_moved_the_guest_finishes_the_move_at_start(
        api, hosts, qcow2_image, live, crash_at):
    fa, fb = hosts["fa"], hosts["fb"]
    u = boot(api, hosts, qcow2_image)
    crash_at("live_migration.migrated")
    api.live_migrate_instance(host(fa), u, host(fb), block_migration=True)
    until(lambda: u in guests(fb))
    time.sleep(0.3)
    assert fb.db.instance_get(u).task_state == "migrating"             # nobody settled it
    fa.manager.reconciler._reconcile(fa.db.instance_get(u))            # the restart
    rec = settled(api, fb, u)
    assert (rec["vm_state"], rec["power_state"]) == ("active", "RUNNING")
    assert api.get_instance(host(fa), u)["host"] == host(fb)           # never started here
    assert fa.manager.peers.find(u) is None and u not in guests(fa)
    api.terminate_instance(host(fb), u)


def test_a_source_dying_before_libvirt_moved_it_rolls_back_at_start(
        api, hosts, qcow2_image, live, crash_at):
    fa, fb = hosts["fa"], hosts["fb"]
    u = boot(api, hosts, qcow2_image)
    crash_at("live_migration.prepared")
    api.live_migrate_instance(host(fa), u, host(fb), block_migration=True)
    until(lambda: fb.manager.peers.find(u))
    time.sleep(0.3)
    fa.manager.reconciler._reconcile(fa.db.instance_get(u))
    rec = settled(api, fa, u)
    assert (rec["vm_state"], rec["power_state"]) == ("active", "RUNNING") and u in guests(fa)
    assert fb.manager.peers.find(u) is None and not os.path.exists(instance_dir(fb, u))
    api.terminate_instance(host(fa), u)


def test_a_peers_confirm_or_revert_of_a_move_that_is_not_current_is_refused(api, hosts,
                                                                           qcow2_image):
    """A (compromised) peer asks the source to confirm, or revert, a move
    that failed: the source's own record says otherwise, so nothing is
    destroyed or put back."""
    from compute.core import exception
    fa, fb = hosts["fa"], hosts["fb"]
    u = boot(api, hosts, qcow2_image)
    fa.db.migration_create(id="dead0000-0000-4000-8000-000000000000", instance_uuid=u,
                           migration_type="migration", source_host=host(fa),
                           dest_host=host(fb), status="error", old_flavor={}, new_flavor={},
                           old_vm_state="active")
    for call in (api.confirm_resize_at_source, api.finish_revert_resize):
        with pytest.raises(exception.InvalidRequest, match="error, not finished"):
            call(host(fa), "dead0000-0000-4000-8000-000000000000")
    assert settled(api, fa, u)["vm_state"] == "active" and u in guests(fa)
    assert os.path.isdir(instance_dir(fa, u))
    api.terminate_instance(host(fa), u)
