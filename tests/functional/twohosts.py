"""Two whole services in one process for the functional tests of
operations between hosts: one in-memory transport, each service its own
database, instances directory and libvirt test-driver hypervisor (a
test:///FILE connection has its own state); a thread of an agent dying at
a crash point (compute.core.faults) as a SIGKILL would leave it; waits.

A test module imports the fixtures hosts, api and crash_at from here; it
may set TWO_HOSTS_CONF = {(group, name): value} for both services
({tmp_module} in a value is the module's temporary directory)."""
import contextlib
import os
import threading
import time
import uuid

import pytest

from compute.agent.service import ComputeService
from compute.core import exception, faults
from compute.rpc import transport as rpc
from compute.rpc.client import ComputeAPI
from tests.functional.conftest import make_conf
from virt.libvirt import migration

NODE = """<node><cpu><mhz>2000</mhz><model>i686</model><nodes>1</nodes><sockets>1</sockets>
<cores>8</cores><threads>1</threads><active>8</active></cpu><memory>8388608</memory></node>"""
FLAVOR = {"vcpus": 1, "memory_mb": 128, "root_gb": 1}


class Crash(BaseException):
    """A thread of the agent dying at a crash point (nothing catches it:
    what it left half-done stays as a SIGKILL would leave it)."""


def start_two(tmp_module, image_service, overrides=None):
    """fa and fb, started (with config overrides, as make_conf takes
    them); stopped when the generator is closed."""
    node = tmp_module / "node.xml"
    node.write_text(NODE)
    transport, services = None, {}
    for name in ("fa", "fb"):
        conf = make_conf(str(tmp_module / name), image_service,
                         {(None, "migration_transfer_address"): "127.0.0.1",
                          (None, "rpc_peer_timeout"): 10, **(overrides or {})},
                         uri=f"test://{node}")
        transport = transport or rpc.get_transport(conf)
        services[name] = ComputeService(conf, transport=transport)
        services[name].start()
    yield services
    for svc in services.values():
        svc.stop()


def client(hosts, timeout=20):
    svc = hosts["fa"]
    return ComputeAPI(svc.conf, transport=svc.transport, timeout=timeout)


def crash_arm(monkeypatch):
    """arm(step): the next time a thread reaches step, it dies."""
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



@pytest.fixture(scope="module")
def hosts(request, tmp_module, image_service):
    conf = {k: v.format(tmp_module=tmp_module) if isinstance(v, str) else v
            for k, v in getattr(request.module, "TWO_HOSTS_CONF", {}).items()}
    yield from start_two(tmp_module, image_service, conf)


@pytest.fixture(scope="module")
def api(hosts):
    return client(hosts)


@pytest.fixture
def crash_at(monkeypatch):
    return crash_arm(monkeypatch)


@pytest.fixture
def live(hosts, monkeypatch):
    """libvirt's live migration, which the test driver lacks: the domain
    moves from the source's connection to the destination's."""
    fa, fb = hosts["fa"], hosts["fb"]

    def migrate(instance, dest, src_paths, dest_paths, block, control, progress):
        guest = fa.manager.driver.host.lookup(instance.uuid)
        mapping = {src_paths[k]: dest_paths[k] for k in src_paths if k in dest_paths}
        xml = migration.rewrite_for_destination(guest.xml_desc(), mapping)
        fb.manager.driver.host.define(xml).launch()
        guest.destroy()
        guest.undefine()
        return 0.01
    monkeypatch.setattr(fa.manager.driver, "live_migrate", migrate)


def record(svc, u):
    with contextlib.suppress(exception.InstanceNotFound):
        return svc.db.instance_get(u, include_deleted=True)
    return None


def restart(svc, u):
    """What the agent's start does for u: its at-start tasks, then the
    reconcile of its record when it is this host's."""
    for finish in svc.manager.reconciler.at_start:
        finish()
    rec = record(svc, u)
    if rec is not None and rec.host == host(svc):
        svc.manager.reconciler._reconcile(rec)


def arm(monkeypatch, step):
    """The next thread to reach step dies there; the event is set then."""
    died = threading.Event()

    def point(name):
        if name == step:
            died.set()
            raise Crash(step)
    monkeypatch.setattr(faults, "point", point)
    return died
