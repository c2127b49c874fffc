"""Cold and live migration between two whole services in one process: one
in-memory transport, each service its own database, instances directory
and libvirt test-driver hypervisor (a test:///FILE connection has its own
state).  The RPC sequences run for real, the disks travel over the real
disk transfer; only libvirt's own live migration, which the test driver
lacks, is stood in for by moving the domain between the two connections.
Then the restart decisions: a thread of the agent dies at a crash point
(compute.faults) and the agent's start-up reconcile runs, as after a
restart, deciding with its peer."""
import os
import time
import uuid

import pytest

from compute import faults, rpc
from compute.rpcapi import ComputeAPI
from compute.service import ComputeService
from tests.functional.conftest import make_conf

NODE = """<node><cpu><mhz>2000</mhz><model>i686</model><nodes>1</nodes><sockets>1</sockets>
<cores>8</cores><threads>1</threads><active>8</active></cpu><memory>8388608</memory></node>"""
FLAVOR = {"vcpus": 1, "memory_mb": 128, "root_gb": 1}


class Crash(BaseException):
    """A thread of the agent dying at a crash point (nothing catches it:
    what it left half-done stays as a SIGKILL would leave it)."""


@pytest.fixture(scope="module")
def hosts(tmp_module, image_service):
    node = tmp_module / "node.xml"
    node.write_text(NODE)
    transport, services = None, {}
    for name in ("fa", "fb"):
        conf = make_conf(str(tmp_module / name), image_service,
                         {(None, "migration_transfer_address"): "127.0.0.1",
                          (None, "rpc_peer_timeout"): 10},
                         uri=f"test://{node}")
        transport = transport or rpc.get_transport(conf)
        services[name] = ComputeService(conf, transport=transport)
        services[name].start()
    yield services
    for svc in services.values():
        svc.stop()


@pytest.fixture(scope="module")
def api(hosts):
    svc = hosts["fa"]
    return ComputeAPI(svc.conf, transport=svc.transport, timeout=20)


@pytest.fixture
def crash_at(monkeypatch):
    """crash_at(step): the next time a thread reaches step, it dies."""
    def arm(step):
        def point(name):
            if name == step:
                raise Crash(step)
        monkeypatch.setattr(faults, "point", point)
    return arm


def host(svc):
    return svc.conf.host


def settled(api, svc, u, timeout=30, vm_state=None):
    """The record once no task runs (and in vm_state, when given)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            rec = api.get_instance(host(svc), u)
            if rec["task_state"] is None and rec["vm_state"] != "building" and \
                    vm_state in (None, rec["vm_state"]):
                return rec
        except Exception:            # noqa: BLE001 - not recorded there yet
            pass
        time.sleep(0.05)
    raise AssertionError(f"{u} never settled on {host(svc)}")


def until(condition, timeout=10):
    """Wait for a condition another thread brings about (a crash point may hold it)."""
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)


def guests(svc):
    return set(svc.manager.driver.list_instance_uuids())


def boot(api, hosts, image):
    u = str(uuid.uuid4())
    api.build_and_run_instance(host(hosts["fa"]), u, "mig", FLAVOR, image)
    assert settled(api, hosts["fa"], u)["vm_state"] == "active"
    return u


def instance_dir(svc, u):
    return os.path.join(svc.conf.instances_path, u)


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


@pytest.fixture
def live(hosts, monkeypatch):
    """libvirt's live migration, which the test driver lacks: the domain
    moves from the source's connection to the destination's."""
    fa, fb = hosts["fa"], hosts["fb"]

    def migrate(instance, dest, src_paths, dest_paths, block, control, progress):
        guest = fa.manager.driver.host.lookup(instance.uuid)
        xml = guest.xml_desc()
        fb.manager.driver.host.define(xml).launch()
        guest.destroy()
        guest.undefine()
        return 0.01
    monkeypatch.setattr(fa.manager.driver, "live_migrate", migrate)


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
