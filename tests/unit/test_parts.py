"""Each part of the manager built alone, as compute.agent.manager builds it, with
the shared fakes (tests/fakes.py) for the hypervisor and its neighbours and
a real database file: its sequences, failures and restarts, in
milliseconds.  Two fake hosts share one World, and their peer calls go
through LoopbackAPI (JSON on the way, as on the wire)."""
import json
import threading
import time
import uuid as uuidlib

import pytest
from oslo_config import cfg

from compute.agent import conf as compute_conf
from compute.core import exception, optable
from compute.core import states as s
from compute.core.instance import view
from compute.core.operation import Operations, Runner
from compute.core.resource_tracker import ResourceTracker
from compute.core.states import MigrationStatus as MS
from compute.db.api import Database
from compute.parts.builds import Builds
from compute.parts.lifecycle import Lifecycle
from compute.parts.live_migration import LiveMigrations
from compute.parts.peers import Peers
from compute.parts.reconcile import Reconciler
from compute.parts.resize import Resizes
from tests import fakes
from virt import driver as virt_driver
from virt import errors as virt_errors

FLAVOR = {"vcpus": 1, "memory_mb": 128, "root_gb": 1, "ephemeral_gb": 0, "swap_mb": 0,
          "name": ""}
BIGGER = dict(FLAVOR, vcpus=2, memory_mb=256, root_gb=2)


class Glance:
    def show(self, image_id):
        return {"id": image_id, "disk_format": "qcow2", "status": "active", "properties": {}}


class Host:
    """One fake host's parts, each given what it uses."""

    def __init__(self, world, api, name, tmp_path):
        self.name = name
        conf = cfg.ConfigOpts()
        compute_conf.register_opts(conf)
        conf([], project="compute-agent-parts")
        conf.set_override("host", name)
        conf.set_override("state_path", str(tmp_path / name))
        conf.set_override("live_migration_inbound_addr", name, group="libvirt")
        self.conf = conf
        self.db = Database(f"sqlite:///{tmp_path}/{name}.sqlite", owner=name)
        self.db.sync()
        self.driver = fakes.FakeDriver(world, name)
        self.ops = Operations(self.db, None, name)
        self.runner = Runner(self.db, self.ops, self.driver)
        self.networking, self.images = fakes.FakeNetworking(), fakes.FakeImages()
        self.tracker = ResourceTracker(conf, self.db, self.driver, name)
        self.peers = Peers(conf, self.db, self.driver, self.runner, self.networking, name)
        self.peers._api = api
        self.submitted = []
        self.lifecycle = Lifecycle(conf, self.db, self.driver, self.runner, self.networking,
                                   self.images)
        self.builds = Builds(self.db, self.driver, self.runner, self.networking, self.images,
                             Glance())
        self.resizes = Resizes(conf, self.db, self.driver, self.runner, self.networking,
                               self.images, self.peers, self.tracker, name)
        self.live_migrations = LiveMigrations(conf, self.db, self.driver, self.runner,
                                              self.networking, self.images, self.peers,
                                              self.tracker, name, self.submit)
        parts = {"lifecycle": self.lifecycle, "builds": self.builds,
                 "resizes": self.resizes, "live_migrations": self.live_migrations}
        restarts = {op.name: getattr(parts[op.restarts_with().split(".")[0]],
                                     op.restarts_with().split(".")[1])
                    for op in optable.ROWS if op.restart in (optable.RESUME, optable.ASK_PEER,
                                                             optable.CLEAN_UP)
                    and op.restarts_with().split(".")[0] in parts}
        self.reconciler = Reconciler(conf, self.db, self.driver, self.runner, self.networking,
                                     self.submit, restarts, at_start=(), host=name)

    def submit(self, fn, *args):
        """The worker pool, run at once (a test reads the outcome after)."""
        self.submitted.append(fn.__name__)
        return fn(*args)

    # what the endpoint hands a peer's call to (LoopbackAPI delivers here)
    def prep_resize(self, migration, instance, probe):
        return self.resizes.prep_resize({}, migration, instance, probe)

    def finish_resize(self, migration_id):
        return self.resizes.finish_resize({}, migration_id)

    def abort_resize_at_destination(self, migration_id):
        return self.resizes.abort_resize_at_destination({}, migration_id)

    def confirm_resize_at_source(self, migration_id):
        return self.resizes.confirm_resize_at_source({}, migration_id)

    def finish_revert_resize(self, migration_id):
        return self.resizes.finish_revert_resize({}, migration_id)

    def list_migrations(self, instance_uuid=None):
        return self.resizes.list_migrations(instance_uuid)

    def check_can_live_migrate_destination(self, instance, block_migration, probe,
                                           source_host, cpu=None):
        return self.live_migrations.check_can_live_migrate_destination(
            instance, block_migration, probe, source_host, cpu)

    def check_can_live_migrate_source(self, instance_uuid, dest_check_data):
        return self.live_migrations.check_can_live_migrate_source(instance_uuid,
                                                                  dest_check_data)

    def pre_live_migration(self, instance, block_migration, migration_id, source_host):
        return self.live_migrations.pre_live_migration({}, instance, block_migration,
                                                       migration_id, source_host)

    def post_live_migration_at_destination(self, instance_uuid):
        return self.live_migrations.post_live_migration_at_destination(instance_uuid)

    def rollback_live_migration_at_destination(self, instance_uuid, shared_storage):
        return self.live_migrations.rollback_live_migration_at_destination(instance_uuid,
                                                                           shared_storage)

    def get_instance(self, instance_uuid):
        return view(self.db.instance_get(instance_uuid, include_deleted=True))

    # -- helpers of the tests ---------------------------------------------------------

    def build(self, flavor=FLAVOR):
        """An ACTIVE instance, built as the endpoint records and submits it."""
        u = str(uuidlib.uuid4())
        self.runner.record("build", uuid=u, display_name="p", host=self.name,
                           vm_state=s.BUILDING, power_state=virt_driver.NOSTATE,
                           flavor=flavor, image_ref="img", networks=[], metadata_={},
                           guest_data={}, image_meta={}, disk_formats={}, volumes=[])
        self.builds.build_and_run_instance({}, u)
        return u

    def get(self, u):
        return self.db.instance_get(u)


class Wire(fakes.LoopbackAPI):
    """Peer calls as JSON, as oslo.messaging carries them."""

    def __getattr__(self, method):
        send = super().__getattr__(method)

        def over_the_wire(host, **payload):
            try:
                answer = send(host, **json.loads(json.dumps(payload)))
            except exception.ComputeError as e:
                raise exception.local_copy(e) from None
            return json.loads(json.dumps(answer))
        return over_the_wire


@pytest.fixture
def hosts(tmp_path):
    world, api = fakes.World(), Wire()
    a, b = (Host(world, api, name, tmp_path) for name in ("hosta", "hostb"))
    api.hosts.update(hosta=a, hostb=b)
    return a, b


# -- Builds and Lifecycle ---------------------------------------------------------------

def test_a_build_goes_through_its_rows_steps_and_a_failed_spawn_cleans_up(hosts):
    a, _ = hosts
    u = a.build()
    inst = a.get(u)
    assert (inst.vm_state, inst.task_state, inst.power_state) == (s.ACTIVE, None,
                                                                  virt_driver.RUNNING)
    assert inst.disk_formats == {"disk": "qcow2"} and inst.launched_at is not None
    a.driver.fail["spawn"] = virt_errors.VirtError("no room in the fake")
    bad = a.build()
    inst = a.get(bad)
    assert (inst.vm_state, inst.task_state) == (s.ERROR, None)
    assert "no room in the fake" in a.db.fault_latest(bad).message
    assert bad not in a.driver.guests and bad not in a.driver.files
    assert a.networking.unplugged == [bad]


def test_the_power_operations_follow_their_rows(hosts):
    a, _ = hosts
    u = a.build()
    for op, vm, power in (("pause", s.PAUSED, virt_driver.PAUSED),
                          ("unpause", s.ACTIVE, virt_driver.RUNNING),
                          ("stop", s.STOPPED, virt_driver.SHUTDOWN),
                          ("start", s.ACTIVE, virt_driver.RUNNING),
                          ("suspend", s.SUSPENDED, virt_driver.SUSPENDED),
                          ("resume", s.ACTIVE, virt_driver.RUNNING)):
        a.runner.accept(op, u)
        assert a.get(u).task_state == optable.TABLE[op].tasks[0]
        getattr(a.lifecycle, op)({}, u)
        inst = a.get(u)
        assert (inst.vm_state, inst.task_state, inst.power_state) == (vm, None, power), op
    with pytest.raises(exception.InstanceInvalidState, match="cannot start"):
        a.runner.accept("start", u)
    a.runner.accept("stop", u)
    a.driver.fail["shutdown"] = virt_errors.VirtError("stuck")
    a.lifecycle.stop({}, u)
    inst = a.get(u)                 # the row's settle: task cleared, vm_state kept
    assert (inst.vm_state, inst.task_state) == (s.ACTIVE, None)


def test_only_an_offloaded_instance_is_handed_over_to_another_host(hosts):
    """The hand-over's accepted states are its row's (before, a check of
    its own in the part)."""
    a, _ = hosts
    u = a.build()
    for vm_state in (s.ACTIVE, s.SHELVED):
        a.db.instance_update(u, vm_state=vm_state)
        with pytest.raises(exception.InstanceInvalidState, match="vm_state=" + vm_state):
            a.runner.accept("unshelve_hand_over", u)
    a.db.instance_update(u, vm_state=s.SHELVED_OFFLOADED)
    a.runner.accept("unshelve_hand_over", u)
    assert a.get(u).task_state == s.UNSHELVING


def test_a_deleted_instance_is_gone_from_the_hypervisor_and_the_record(hosts):
    a, _ = hosts
    u = a.build()
    a.builds.terminate_instance({}, u)
    assert u not in a.driver.guests and u not in a.driver.files
    inst = a.db.instance_get(u, include_deleted=True)
    assert inst.deleted and inst.vm_state == s.DELETED and inst.task_state is None
    a.builds.terminate_instance({}, u)         # twice is fine


# -- Reconciler -------------------------------------------------------------------------

def test_agent_start_resumes_cleans_up_and_settles_by_the_rows(hosts):
    a, _ = hosts
    stopping, building, snapping = a.build(), a.build(), a.build()
    a.runner.accept("stop", stopping)                       # interrupted before the work
    a.db.instance_update(building, vm_state=s.BUILDING, task_state=s.SPAWNING)
    a.runner.accept("snapshot", snapping)
    a.reconciler.init_host()
    assert "stop" in a.submitted
    assert (a.get(stopping).vm_state, a.get(stopping).task_state) == (s.STOPPED, None)
    inst = a.get(building)
    assert (inst.vm_state, inst.task_state) == (s.ERROR, None)
    assert building not in a.driver.guests
    assert "BuildInterrupted" in a.db.fault_latest(building).message
    assert a.get(snapping).task_state is None and a.get(snapping).vm_state == s.ACTIVE


def test_a_guest_that_went_off_by_itself_is_recorded_stopped_never_started(hosts):
    a, _ = hosts
    u = a.build()
    a.driver.guests[u] = virt_driver.SHUTDOWN
    a.reconciler.sync_power_states()
    assert a.get(u).vm_state == s.STOPPED
    assert a.driver.guests[u] == virt_driver.SHUTDOWN


# -- Resizes ----------------------------------------------------------------------------

def migrate(src, dest, u, flavor=None):
    mig = src.resizes.accept_resize(u, dest.name, flavor)
    src.resizes.resize_instance({}, u, mig.id)
    return mig.id


def test_a_resize_moves_the_instance_and_confirm_drops_the_source(hosts):
    a, b = hosts
    u = a.build()
    mid = migrate(a, b, u, BIGGER)
    there = b.get(u)
    assert (there.vm_state, there.task_state, there.flavor["vcpus"]) == (s.RESIZED, None, 2)
    assert a.get(u).vm_state == s.RESIZED
    assert b.tracker.used().vcpus == 2 and a.tracker.used().vcpus == 1   # both held
    b.resizes.accept_decision(u, "confirm_resize")
    b.resizes.confirm_resize({}, u, mid)
    assert (b.get(u).vm_state, b.get(u).task_state) == (s.ACTIVE, None)
    with pytest.raises(exception.InstanceNotFound):
        a.get(u)
    assert a.tracker.used().vcpus == 0
    assert {m["status"] for m in a.resizes.list_migrations(u)} == {MS.CONFIRMED}


def test_deleting_a_resized_instance_closes_its_migration(hosts):
    """Found by the chaos invariant "every migration row final": a resized
    instance deleted on both hosts left its migration `finished` there."""
    a, b = hosts
    u = a.build()
    migrate(a, b, u, BIGGER)
    for host in (b, a):
        host.builds.terminate_instance({}, u)
        assert [m["status"] for m in host.resizes.list_migrations(u)] == [MS.ERROR]


def test_a_delete_leaves_an_evacuations_row_to_the_down_host(hosts):
    """An evacuation's row tells its source, when it is back, to remove its
    own copy: a delete here does not close it."""
    a, _ = hosts
    u = a.build()
    a.db.migration_create(id=str(uuidlib.uuid4()), instance_uuid=u,
                          migration_type="evacuation", source_host="down", dest_host=a.name,
                          status=MS.ACCEPTED, old_flavor=FLAVOR, new_flavor=FLAVOR,
                          old_vm_state=s.ACTIVE, old_disk_formats={})
    a.builds.terminate_instance({}, u)
    assert [m["status"] for m in a.resizes.list_migrations(u)] == [MS.ACCEPTED]


def test_a_revert_puts_it_back_running_with_its_old_flavor(hosts):
    a, b = hosts
    u = a.build()
    mid = migrate(a, b, u, BIGGER)
    b.resizes.accept_decision(u, "revert_resize")
    b.resizes.revert_resize({}, u, mid)
    inst = a.get(u)
    assert (inst.vm_state, inst.task_state, inst.flavor["vcpus"]) == (s.ACTIVE, None, 1)
    assert a.driver.guests[u] == virt_driver.RUNNING
    with pytest.raises(exception.InstanceNotFound):
        b.get(u)


def test_a_failed_finish_puts_the_instance_back_on_the_source(hosts):
    a, b = hosts
    u = a.build()
    b.driver.fail["finish_migration"] = virt_errors.VirtError("cannot define")
    migrate(a, b, u)
    inst = a.get(u)
    assert (inst.vm_state, inst.task_state) == (s.ACTIVE, None)
    assert a.driver.guests[u] == virt_driver.RUNNING
    with pytest.raises(exception.InstanceNotFound):
        b.get(u)                                # aborted: dropped there
    assert [m["status"] for m in a.resizes.list_migrations(u)] == [MS.ERROR]
    assert b.tracker.used().vcpus == 0


def test_a_resize_interrupted_at_the_source_is_put_back_at_start(hosts):
    a, b = hosts
    u = a.build()
    a.resizes.accept_resize(u, b.name)
    a.reconciler.init_host()                    # died before the destination was asked
    inst = a.get(u)
    assert (inst.vm_state, inst.task_state) == (s.ACTIVE, None)
    assert [m["status"] for m in a.resizes.list_migrations(u)] == [MS.ERROR]


# -- LiveMigrations ---------------------------------------------------------------------

def live_migrate(src, dest, u):
    mig = src.live_migrations.accept(u, dest.name)
    src.live_migrations.live_migrate({}, u, mig.id, dest.name, False)
    return mig.id


def test_a_live_migration_moves_the_guest_and_the_record(hosts):
    a, b = hosts
    u = a.build()
    live_migrate(a, b, u)
    inst = b.get(u)
    assert (inst.vm_state, inst.task_state, inst.host) == (s.ACTIVE, None, "hostb")
    assert u in b.driver.guests and u not in a.driver.guests
    with pytest.raises(exception.InstanceNotFound):
        a.get(u)
    assert [m["status"] for m in b.resizes.list_migrations(u)] == [MS.COMPLETED]
    assert a.tracker.used().vcpus == 0 and b.tracker.used().vcpus == 1


def run_stuck_migration(a, b, u):
    a.driver.converges = False
    mig = a.live_migrations.accept(u, b.name)
    t = threading.Thread(target=a.live_migrations.live_migrate,
                         args=({}, u, mig.id, b.name, False))
    t.start()
    assert a.driver.migration_started.wait(10)
    deadline = time.monotonic() + 10
    while u not in a.live_migrations._controls and time.monotonic() < deadline:
        time.sleep(0.01)
    return t


def test_force_complete_finishes_a_migration_that_does_not_converge(hosts):
    a, b = hosts
    u = a.build()
    t = run_stuck_migration(a, b, u)
    assert a.get(u).task_state == s.MIGRATING
    assert a.live_migrations.control(u, "force_complete") == {"instance_uuid": u,
                                                              "force_complete": True}
    t.join(10)
    assert not t.is_alive()
    assert u in b.driver.guests and b.get(u).task_state is None
    with pytest.raises(exception.InstanceInvalidState, match="not live-migrating"):
        a.live_migrations.control(u, "force_complete")


def test_abort_leaves_the_guest_where_it_was_and_drops_the_destination(hosts):
    a, b = hosts
    u = a.build()
    t = run_stuck_migration(a, b, u)
    a.live_migrations.control(u, "abort")
    t.join(10)
    inst = a.get(u)
    assert (inst.vm_state, inst.task_state) == (s.ACTIVE, None)
    assert a.driver.guests[u] == virt_driver.RUNNING and u not in b.driver.guests
    with pytest.raises(exception.InstanceNotFound):
        b.get(u)
    assert [m["status"] for m in a.resizes.list_migrations(u)] == [MS.ERROR]
