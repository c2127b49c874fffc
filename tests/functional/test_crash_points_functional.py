"""Every crash point of the moves between hosts and of the volume
operations, in one table: two whole services in one process (twohosts),
a thread of the agent dies at the step (nothing catches twohosts.Crash,
so what it left half-done stays), then the dying host's start-up work
runs (its at-start tasks and the reconcile of the instance), and the
same verdict is checked after each: nothing runs any more, the instance
has one owner whose guest is the only one, no other host's record holds
resources for it, every migration row is final.  The e2e chaos suite
kills real agents with real guests at the same steps; this covers every
step in seconds."""
# ruff: noqa: F811 - the fixtures imported from twohosts are test arguments
import contextlib
import os
import threading
import time

import pytest

from compute.core import faults
from compute.core import states as s
from compute.core.resource_tracker import holds_resources
from tests.functional.twohosts import (  # noqa: F401 - fixtures too
    api,
    arm,
    boot,
    client,
    guests,
    host,
    hosts,
    instance_dir,
    live,
    record,
    restart,
    settled,
)

TWO_HOSTS_CONF = {(None, "rpc_peer_timeout"): 1}     # a dead handler is heard at once
VOLUME = {"volume_id": "6c2e8b4f-3d5a-4f9b-8c7e-2a3f4e5d6c7b",
          "connection_info": {"driver_volume_type": "iscsi", "data": {
              "target_portal": "10.250.0.1:3260", "target_iqn": "iqn.2024-01.tb.storage:v2",
              "target_lun": 1}}}


def cold(api, fa, fb, u):
    api.migrate_instance(host(fa), u, host(fb))


def live_block(api, fa, fb, u):
    api.live_migrate_instance(host(fa), u, host(fb), block_migration=True)


def confirm(api, fa, fb, u):
    api.confirm_resize(host(fb), u)


def revert(api, fa, fb, u):
    api.revert_resize(host(fb), u)


def resized(api, fa, fb, u):
    cold(api, fa, fb, u)
    settled(api, fb, u, vm_state="resized")
    settled(api, fa, u, vm_state="resized")


def shelved(api, fa, fb, u):
    api.shelve_instance(host(fa), u)
    settled(api, fa, u, vm_state="shelved_offloaded")


def attached(api, fa, fb, u):
    api.attach_volume(host(fa), u, VOLUME["volume_id"], VOLUME["connection_info"])
    settled(api, fa, u)
    assert [v["volume_id"] for v in fa.db.instance_get(u).volumes] == [VOLUME["volume_id"]]


# step: (what is done first, the call the step is in, the host that dies)
CASES = {
    "live_migration.checked": (None, live_block, "fa"),
    "live_migration.prepared": (None, live_block, "fa"),
    "live_migration.migrated": (None, live_block, "fa"),
    "live_migration.posted": (None, live_block, "fa"),
    "live_migration_destination.recorded": (None, live_block, "fb"),
    "live_migration_destination.posted": (None, live_block, "fb"),
    "resize.prepared": (None, cold, "fa"),
    "resize.powered_off": (None, cold, "fa"),
    "resize.sent": (None, cold, "fa"),
    "resize.finished_remote": (None, cold, "fa"),
    "resize_destination.received": (None, cold, "fb"),
    "resize_destination.defined": (None, cold, "fb"),
    "confirm_resize.synced": (resized, confirm, "fb"),
    "confirm_resize.source_confirmed": (resized, confirm, "fa"),
    "revert_resize.dropped": (resized, revert, "fb"),
    "revert_resize.source_reverted": (resized, revert, "fa"),
    "shelve.powered_off": (None, shelved, "fa"),
    "shelve.image_created": (None, shelved, "fa"),
    "shelve_offload.destroyed": (None, shelved, "fa"),
    "unshelve.prepared": (shelved, lambda api, fa, fb, u: api.unshelve_instance(
        host(fa), u, host(fb)), "fb"),
    "unshelve.spawned": (shelved, lambda api, fa, fb, u: api.unshelve_instance(host(fa), u),
                         "fa"),
    "unshelve.handed_over": (shelved, lambda api, fa, fb, u: api.unshelve_instance(
        host(fa), u, host(fb)), "fa"),
    "attach_volume.attached": (None, lambda api, fa, fb, u: api.attach_volume(
        host(fa), u, VOLUME["volume_id"], VOLUME["connection_info"]), "fa"),
    "detach_volume.detached": (attached, lambda api, fa, fb, u: api.detach_volume(
        host(fa), u, VOLUME["volume_id"]), "fa"),
    "extend_volume.extended": (attached, lambda api, fa, fb, u: api.extend_volume(
        host(fa), u, VOLUME["volume_id"], 2 * 1024 ** 3), "fa"),
}


def test_the_table_has_every_step_of_the_moves_and_volumes():
    moves = ("live_migration", "resize", "confirm_resize", "revert_resize", "shelve",
             "unshelve", "attach_volume", "detach_volume", "extend_volume")
    assert set(CASES) == {st for st in faults.STEPS if st.split(".")[0].startswith(moves)}


def quiet(hosts, u, timeout=30):
    """{name: record} once no host runs anything on u."""
    deadline = time.monotonic() + timeout
    while True:
        recs = {n: record(svc, u) for n, svc in hosts.items()}
        if all(r is None or r.task_state is None for r in recs.values()):
            return recs
        if time.monotonic() > deadline:
            raise AssertionError(f"{u} never settled: " + ", ".join(
                f"{n}: {r.vm_state}/{r.task_state} on {r.host}" for n, r in recs.items() if r))
        time.sleep(0.05)


def verdict(hosts, u, decide):
    """The invariants once all is quiet; an instance left resized is
    decided first (decide(api, destination): the confirm or revert that
    was interrupted is asked again, as a client would; a finished move is
    confirmed).  The owner's name and its record."""
    recs = quiet(hosts, u)
    finished = {m.dest_host for svc in hosts.values() for m in svc.db.migrations_of(u)
                if m.status == "finished"}
    if any(r is not None and r.vm_state == s.RESIZED and not r.deleted for r in recs.values()):
        assert len(finished) == 1, (finished, {n: r and r.vm_state for n, r in recs.items()})
        decide(client(hosts), finished.pop())
        recs = quiet(hosts, u)
    owners = [n for n, r in recs.items() if r is not None and r.host == host(hosts[n])
              and not r.deleted and r.vm_state != s.DELETED]
    assert len(owners) == 1, {n: (r.vm_state, r.host) for n, r in recs.items() if r}
    owner = owners[0]
    rec = recs[owner]
    running = rec.vm_state in (s.ACTIVE, s.STOPPED, s.ERROR)
    for n, svc in hosts.items():
        assert (u in guests(svc)) == (n == owner and running and u in guests(svc)), (
            f"a guest of {u} on {n} (owner {owner}, {rec.vm_state})")
        other = recs[n]
        if n != owner and other is not None and other.host == host(svc) and not other.deleted:
            assert not holds_resources(other), (n, other.vm_state)
        for m in svc.db.migrations_of(u):
            assert m.status in s.FINAL_MIGRATION, (n, m.migration_type, m.status)
    if rec.vm_state == s.ACTIVE:
        assert u in guests(hosts[owner])
    for n, svc in hosts.items():        # no file outside the live instance
        left = [d for d in (instance_dir(svc, u), instance_dir(svc, u) + "_resize")
                if os.path.exists(d)]
        kept = [instance_dir(svc, u)] if n == owner and rec.vm_state not in (
            s.SHELVED_OFFLOADED,) else []
        if n == owner and rec.vm_state == s.ERROR:
            kept = left[:1] if left == [instance_dir(svc, u)] else kept
        assert left == kept, (n, left, rec.vm_state)
    return owner, rec


@pytest.fixture
def volumes_here(hosts, monkeypatch):
    """The volumes fa's guests have, as a stand-in for the driver's volume
    calls, which libvirt's test driver lacks: {uuid: {volume_id: size}}.
    Attach and detach do nothing twice, as the driver's do."""
    fa, have = hosts["fa"], {}

    def attach(instance, volume, secret_value):
        have.setdefault(instance.uuid, {}).setdefault(volume.volume_id, 1)

    def detach(instance, volume, timeout):
        have.get(instance.uuid, {}).pop(volume.volume_id, None)

    def extend(instance, volume, new_size):
        have[instance.uuid][volume.volume_id] = new_size
        return True
    for name, fn in (("attach_volume", attach), ("detach_volume", detach),
                     ("extend_volume", extend), ("volume_capacity", lambda i, v: None)):
        monkeypatch.setattr(fa.manager.driver, name, fn)
    return have


def hosts_named(hosts, name):
    return next(svc for svc in hosts.values() if host(svc) == name)


@pytest.mark.parametrize("step", sorted(CASES))
def test_a_thread_dying_at_the_step_leaves_one_owner_after_the_restart(
        api, hosts, qcow2_image, live, volumes_here, monkeypatch, step):
    before, call, dies = CASES[step]
    fa, fb = hosts["fa"], hosts["fb"]
    u = boot(api, hosts, qcow2_image)
    if before:
        before(api, fa, fb, u)
    died = arm(monkeypatch, step)

    def act():                      # a call whose handler may die: not waited for
        with contextlib.suppress(Exception):
            call(client(hosts, timeout=5), fa, fb, u)
    threading.Thread(target=act, daemon=True).start()
    assert died.wait(30), f"{step} was never reached"
    time.sleep(0.5)                 # what the peer does when it hears nothing
    monkeypatch.setattr(faults, "point", lambda name: None)
    restart(hosts[dies], u)
    again = call if call in (confirm, revert) else confirm
    owner, rec = verdict(hosts, u, lambda api, dest: again(api, fa, hosts_named(hosts, dest), u))
    print(step, "->", owner, rec.vm_state)
    if step.split(".")[0].endswith("_volume"):          # the record says what the guest has
        assert {v["volume_id"] for v in rec.volumes or ()} == set(volumes_here.get(u, {}))
        if step.startswith("extend"):
            assert volumes_here[u][VOLUME["volume_id"]] == 2 * 1024 ** 3
    if rec.vm_state in (s.SHELVED_OFFLOADED, s.SHELVED):
        api.unshelve_instance(host(hosts[owner]), u)
        rec = settled(api, hosts[owner], u, vm_state="active")
    api.terminate_instance(host(hosts[owner]), u)
    settled(api, hosts[owner], u, vm_state="deleted")
