"""LiveMigrations: live migration between agents, Nova's RPC sequence:

    client -> source   live_migrate_instance (accepted: task MIGRATING)
    source -> dest     check_can_live_migrate_destination (RAM, the guest's
                       CPU via libvirt's compareHypervisorCPU, the
                       shared-storage probe; the addresses to migrate to)
    dest -> source     check_can_live_migrate_source (block or shared fits
                       the storage; the disks fit the destination's space)
    source -> dest     pre_live_migration (record, instance directory,
                       bases fetched, overlays for a block migration, VIFs
                       plugged and firewall applied)
    source             libvirt migrateToURI3 with the destination's XML
    source -> dest     post_live_migration_at_destination (record settled)
    source             unplug, remove the instance's files (unless shared),
                       the record marks the instance as moved

Any failure before the guest runs on the destination calls
rollback_live_migration_at_destination and leaves the guest running here.
Each host keeps its own records, so the record moves with the guest.
"""
import logging
import socket

from compute import exception, states
from compute.db.models import utcnow
from compute.instance import power_state, view, virt_instance
from compute.operation import progress_writer
from compute.resource_tracker import of_flavor
from virt import driver as virt_driver
from virt import errors as virt_errors

LOG = logging.getLogger(__name__)


class LiveMigrations:
    def __init__(self, conf, db, driver, runner, networking, images, peers, tracker, host):
        self.conf, self.db, self.driver, self.runner = conf, db, driver, runner
        self.networking, self.images, self.peers, self.host = networking, images, peers, host
        self.tracker = tracker
        self._controls = {}          # uuid -> MigrationControl of migrations run from here

    def accept(self, uuid, dest_host, networks=None):
        if dest_host == self.host:
            raise exception.InvalidRequest(f"instance {uuid} is already on {dest_host}")
        self.peers.check_networks_view(self.db.instance_get(uuid), networks)
        self.runner.accept("live_migration", uuid)

    # -- source side ----------------------------------------------------------------

    def live_migrate(self, ctxt, uuid, dest_host, block, networks=None):
        try:
            self.runner.run("live_migration", ctxt, uuid,
                            lambda inst, record: self._migrate(inst, record, dest_host, block,
                                                               networks))
        finally:
            self._controls.pop(uuid, None)

    def _migrate(self, inst, record, dest_host, block, networks):
        api, uuid, vi = self.peers.api, inst.uuid, virt_instance(inst)
        cpu = self.driver.migration_cpu(vi)
        with self.peers.probe() as probe:
            dest = api.check_can_live_migrate_destination(
                dest_host, instance=self.peers.record_payload(inst, networks),
                block_migration=block, probe=probe, source_host=self.host, cpu=cpu)
        record.event("destination_checked",
                     f"{dest}, cpu {'compared' if cpu else 'hypervisor default'}")
        try:
            prep = api.pre_live_migration(
                dest_host, instance=self.peers.record_payload(inst, networks),
                block_migration=block)
            files = self.images.files_for(inst, inst.image_meta)
            control = self._controls[uuid] = virt_driver.MigrationControl()
            seconds = self.driver.live_migrate(
                vi, dest, self.driver.migration_paths(vi, files), prep["paths"], block,
                control, progress_writer(self.db, uuid, 0, 100))
        except Exception:
            LOG.exception("instance %s: live migration to %s failed; rolling back",
                          uuid, dest_host)
            api.rollback_live_migration_at_destination(
                dest_host, instance_uuid=uuid, shared_storage=dest["shared_storage"])
            raise
        record.event("migrated", f"to {dest_host} in {seconds:.3f} s")
        api.post_live_migration_at_destination(dest_host, instance_uuid=uuid)
        self.networking.unplug_vifs(inst)
        if not dest["shared_storage"]:
            self.driver.remove_instance_files(vi)
        self.db.instance_update(uuid, expected_task_state=states.MIGRATING, task_state=None,
                                host=dest_host, deleted=True, power_state=virt_driver.NOSTATE,
                                terminated_at=utcnow())

    def check_can_live_migrate_source(self, uuid, dest):
        """Source, called back by the destination's check: the instance is
        migrating from here, the kind of migration fits the storage, and a
        block migration's data fits the destination's free disk."""
        inst = self.db.instance_get(uuid)
        if inst.host != self.host or inst.task_state != states.MIGRATING:
            raise exception.InstanceInvalidState(f"instance {uuid} is not migrating from "
                                                 f"{self.host}")
        if dest["shared_storage"] and dest["block_migration"]:
            raise exception.MigrationPreCheckError(
                "block migration asked, but the instances path is shared")
        if not dest["shared_storage"] and not dest["block_migration"]:
            raise exception.MigrationPreCheckError(
                "the destination does not share this host's instances path; "
                "use a block migration")
        if dest["block_migration"]:
            need = self.driver.instance_disk_bytes(virt_instance(inst))
            if need > dest["disk_available"]:
                raise exception.MigrationPreCheckError(
                    f"the destination has {dest['disk_available'] // 2**20} MiB free, the "
                    f"instance's disks hold {need // 2**20} MiB")
        return dest

    def control(self, uuid, what):
        """abort or force_complete a running migration of uuid."""
        control = self._controls.get(uuid)
        if control is None:
            raise exception.InstanceInvalidState(f"instance {uuid} is not live-migrating here")
        getattr(control, what).set()
        return {"instance_uuid": uuid, what: True}

    def recover(self, inst):
        """Agent start, either side: libvirt finishes or fails a
        peer-to-peer migration on its own; the record follows where the
        guest is now."""
        power = power_state(self.driver, inst)
        LOG.warning("instance %s: live migration interrupted by an agent restart; the guest "
                    "is %s here", inst.uuid, "present" if power else "not")
        self.db.instance_update(inst.uuid, task_state=None, power_state=power)

    # -- destination side -------------------------------------------------------------

    def check_can_live_migrate_destination(self, instance, block, probe, source_host, cpu):
        """Destination: the memory and the CPU here, the shared-storage
        probe and the addresses to migrate to; then, as in Nova, the
        source's own check with what this host found."""
        try:
            self.tracker.check(of_flavor(instance["flavor"], disk=block),
                               f"instance {instance['uuid']}")
        except exception.ResourcesUnavailable as e:
            raise exception.MigrationPreCheckError(str(e)) from None
        if cpu is not None:
            try:
                self.driver.check_cpu(cpu)
            except virt_errors.CPUIncompatible as e:
                raise exception.MigrationPreCheckError(
                    f"{self.host} cannot provide the guest's CPU: {e}") from None
        address = self.conf.libvirt.live_migration_inbound_addr or socket.gethostname()
        scheme = self.conf.libvirt.live_migration_scheme
        found = {"shared_storage": self.peers.sees_probe(probe),
                 "block_migration": block, "disk_available": self.driver.free_disk_bytes(),
                 "libvirt_uri": f"qemu+{scheme}://{address}/system",
                 "migrate_uri": f"tcp://{address}"}
        try:
            return self.peers.api.check_can_live_migrate_source(
                source_host, instance_uuid=instance["uuid"], dest_check_data=found)
        except exception.ComputeError as e:
            raise exception.local_copy(e) from None

    def pre_live_migration(self, ctxt, instance, block):
        """Destination: the claim (the check above held nothing) and the
        record, then the instance's files, bases and ports."""
        uuid = instance["uuid"]
        try:
            with self.tracker.claim(of_flavor(instance["flavor"], disk=block),
                                    f"instance {uuid}"):
                self.peers.record_incoming(instance, states.MIGRATING)
        except exception.ResourcesUnavailable as e:
            raise exception.MigrationPreCheckError(str(e)) from None
        with self.runner.ops.run(ctxt, uuid, "live_migration_destination") as record:
            inst = self.db.instance_get(uuid)
            files = self.images.files_for(inst, inst.image_meta)
            vi = virt_instance(inst)
            formats = self.driver.pre_live_migration(vi, files, block)
            self.db.instance_update(uuid, disk_formats=formats)
            self.networking.plug_vifs(inst)
            record.event("prepared", "block" if block else "shared storage")
            return {"paths": self.driver.migration_paths(vi, files)}

    def post_live_migration_at_destination(self, uuid):
        inst = self.db.instance_get(uuid)
        if inst.vm_state == states.ACTIVE and \
                power_state(self.driver, inst) == virt_driver.PAUSED:
            self.driver.unpause(virt_instance(inst))     # paused to force completion
        self.db.instance_update(uuid, expected_task_state=states.MIGRATING, task_state=None,
                                power_state=power_state(self.driver, inst))
        return view(self.db.instance_get(uuid))

    def rollback_live_migration_at_destination(self, uuid, shared_storage):
        """Undo pre_live_migration; with shared storage the disks are the
        source's and stay."""
        inst = self.peers.find(uuid)
        if inst is None:
            return {"instance_uuid": uuid}
        if inst.task_state != states.MIGRATING:
            raise exception.InstanceInvalidState(f"instance {uuid} is not migrating here")
        vi = virt_instance(inst)
        try:
            self.driver.destroy(vi, [], destroy_disks=False)
        except Exception:          # libvirtd may be what failed
            LOG.exception("instance %s: no guest to destroy on rollback", uuid)
        if not shared_storage:
            self.driver.remove_instance_files(vi)
        self.networking.unplug_vifs(inst)
        self.db.instance_purge(uuid)
        return {"instance_uuid": uuid}
