"""Shared fakes for unit tests of the manager's parts: a hypervisor driver
that keeps its guests and files in memory (several hosts share one World,
so a migration moves a guest from one to another), and the parts' own
neighbours (networking, the image files, the peer API) that record what
they were asked.  They stand in for daemons, never for the logic under
test: each part is built alone with them, as compute.agent.manager builds it."""
import threading
import types

from virt import driver as virt_driver
from virt import errors as virt_errors


class World:
    """What every fake host's hypervisor sees: {host: {uuid: power}} and
    the files of each host's instances."""

    def __init__(self):
        self.guests, self.files = {}, {}
        self.lock = threading.Lock()


class FakeDriver(virt_driver.ComputeDriver):
    """A ComputeDriver in memory.  fail[method] = exception raises it from
    that method (once); calls lists (method, uuid) in order; a live
    migration converges unless converges is False (then it waits for an
    abort or a force-complete)."""

    def __init__(self, world, host):
        self.world, self.host = world, host
        world.guests.setdefault(host, {})
        world.files.setdefault(host, set())
        self.fail, self.calls, self.converges = {}, [], True
        self.migration_started = threading.Event()

    # -- bookkeeping ------------------------------------------------------------------

    @property
    def guests(self):
        return self.world.guests[self.host]

    @property
    def files(self):
        return self.world.files[self.host]

    def _step(self, name, instance=None):
        self.calls.append((name, getattr(instance, "uuid", None)))
        error = self.fail.pop(name, None)
        if error is not None:
            raise error

    def _set(self, instance, power):
        self.guests[instance.uuid] = power

    # -- guests -----------------------------------------------------------------------

    def init_host(self, host):
        self._step("init_host")

    def spawn(self, instance, image_meta, image_files, network_info):
        self._step("spawn", instance)
        self.files.add(instance.uuid)
        self._set(instance, virt_driver.RUNNING)
        return {"disk": "qcow2"}

    rebuild = unshelve = lambda self, instance, *a: self.spawn(instance, None, None, None)

    def rescue(self, instance, *args):
        self._step("rescue", instance)
        self._set(instance, virt_driver.RUNNING)

    def power_on(self, instance, image_meta, image_files, network_info):
        self._step("power_on", instance)
        self._set(instance, virt_driver.RUNNING)

    def shutdown(self, instance, timeout, retry_interval=None):
        self._step("shutdown", instance)
        self._set(instance, virt_driver.SHUTDOWN)
        return True

    def power_off(self, instance):
        self._step("power_off", instance)
        if instance.uuid in self.guests:
            self._set(instance, virt_driver.SHUTDOWN)

    def suspend(self, instance):
        self._step("suspend", instance)
        self._set(instance, virt_driver.SUSPENDED)

    def pause(self, instance):
        self._step("pause", instance)
        self._set(instance, virt_driver.PAUSED)

    def resume(self, instance):
        self._step("resume", instance)
        self._set(instance, virt_driver.RUNNING)

    unpause = resume

    def destroy(self, instance, network_info, destroy_disks=True):
        self._step("destroy", instance)
        self.guests.pop(instance.uuid, None)
        if destroy_disks:
            self.files.discard(instance.uuid)

    def get_info(self, instance):
        if instance.uuid not in self.guests:
            raise virt_errors.InstanceNotFound(instance.uuid)
        return virt_driver.InstanceInfo(self.guests[instance.uuid])

    def list_instance_uuids(self):
        return list(self.guests)

    def has_instance_files(self, instance):
        return instance.uuid in self.files

    def remove_instance_files(self, instance):
        self._step("remove_instance_files", instance)
        self.files.discard(instance.uuid)

    # -- cold migration -----------------------------------------------------------------

    def migrate_disk_and_power_off(self, instance, timeout, retry_interval):
        self._step("migrate_disk_and_power_off", instance)
        self.guests.pop(instance.uuid, None)
        return {}                   # nothing to send: the fake's disks travel by name

    def finish_migration(self, instance, old_flavor, image_meta, image_files, network_info,
                         start):
        self._step("finish_migration", instance)
        self.files.add(instance.uuid)
        self._set(instance, virt_driver.RUNNING if start else virt_driver.SHUTDOWN)
        return {"disk": "qcow2"}

    def finish_revert_migration(self, instance, image_meta, image_files, network_info, start):
        self._step("finish_revert_migration", instance)
        self._set(instance, virt_driver.RUNNING if start else virt_driver.SHUTDOWN)

    def confirm_migration(self, instance):
        self._step("confirm_migration", instance)

    def copy_aside_disks(self, instance):
        self._step("copy_aside_disks", instance)

    # -- live migration -------------------------------------------------------------------

    def live_migrate(self, instance, dest, src_paths, dest_paths, block, control, progress):
        self._step("live_migrate", instance)
        self.migration_started.set()
        while not self.converges and not control.force_complete.is_set():
            if control.abort.wait(0.01):
                raise virt_errors.VirtError("migration aborted")
        target = dest["migrate_uri"].removeprefix("tcp://")
        with self.world.lock:
            self.world.guests[target][instance.uuid] = self.guests.pop(instance.uuid)
            self.world.files[target].add(instance.uuid)
        progress(100)
        return 0.01

    def pre_live_migration(self, instance, image_files, block):
        self._step("pre_live_migration", instance)
        return {"disk": "qcow2"}

    def migration_paths(self, instance, image_files):
        return {}

    def hold_console_ports(self, instance):
        return {}

    # -- the host ---------------------------------------------------------------------------

    def get_available_resource(self):
        return virt_driver.HostResources("fake", 1, self.host, 8, 8192, 8192, 100, 100)

    def free_disk_bytes(self):
        return 100 * 1024 ** 3

    def new_disks_shared(self):
        return False

    def in_ceph(self, instance):
        return False

    def saved_state_bytes(self):
        return 0

    def bases_in_use(self):
        return set()

    def live_migration_tls(self):
        return False

    def missing_migration_certificates(self):
        return []

    def has_migration_certificates(self):
        return False

    def write_shared_probe(self, host):
        return f"probe-{host}"

    def has_shared_probe(self, name):
        return True             # the fake hosts share their instances path

    def migration_disk_names(self):
        return ("disk",)

    def instance_disk_bytes(self, instance):
        return 0


def _recorder(name):
    def step(self, instance=None, *args, **kwargs):
        self._step(name, instance)
    step.__name__ = name
    return step


# the rest of the interface: recorded, nothing else (volumes, consoles, probes)
for _name in sorted(FakeDriver.__abstractmethods__ - set(vars(FakeDriver))):
    setattr(FakeDriver, _name, _recorder(_name))
FakeDriver.__abstractmethods__ = frozenset()


class FakeNetworking:
    """The parts' networking neighbour: plug and unplug recorded."""

    def __init__(self):
        self.plugged, self.unplugged = [], []

    def plug_vifs(self, inst):
        self.plugged.append(inst.uuid)
        return []

    def unplug_vifs(self, inst, *args, **kwargs):
        self.unplugged.append(inst.uuid)

    def add_peer_security_groups(self, groups):
        pass

    def restore(self):
        pass


class FakeImages:
    """The parts' image files: no bases (the fake driver boots nothing)."""

    def files_for(self, inst, image_meta, image_id=None):
        return virt_driver.ImageFiles(types.SimpleNamespace(virtual_size=1024 ** 3))


class LoopbackAPI:
    """The peer RPC client, delivered to the parts of other fake hosts:
    api.method(host, **payload) -> hosts[host].<part>.method(...) as the
    endpoint would hand it over."""

    def __init__(self):
        self.hosts = {}                 # host name -> object with the parts

    def __getattr__(self, method):
        def send(host, **payload):
            target = self.hosts[host]
            return getattr(target, method)(**payload)
        return send
