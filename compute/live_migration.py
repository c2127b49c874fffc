"""Live migration between agents, Nova's RPC sequence:

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
    source             unplug, remove the directory (unless shared), the
                       record marks the instance as moved

Any failure before the guest runs on the destination calls
rollback_live_migration_at_destination and leaves the guest running here.
Each host keeps its own records, so the record moves with the guest.
A mixin of ComputeManager.
"""
import logging
import os
import shutil
import socket
import uuid as uuidlib

from compute import exception, states
from compute.db.models import utcnow
from virt import driver as virt_driver
from virt import errors as virt_errors

LOG = logging.getLogger(__name__)
RECORD_FIELDS = ("uuid", "display_name", "vm_state", "flavor", "image_ref", "image_meta",
                 "disk_formats", "networks")


class LiveMigrationMixin:
    def _peer_api(self):
        if getattr(self, "_peer", None) is None:
            from compute.rpcapi import ComputeAPI
            self._peer = ComputeAPI(self.conf, timeout=self.conf.rpc_peer_timeout)
        return self._peer

    @property
    def _migrations(self):
        """{uuid: Control} of the migrations this host runs as source."""
        if getattr(self, "_migration_controls", None) is None:
            self._migration_controls = {}
        return self._migration_controls

    def accept_live_migration(self, uuid, dest_host, networks=None):
        if dest_host == self.host:
            raise exception.InvalidRequest(f"instance {uuid} is already on {dest_host}")
        self._check_networks_view(self.db.instance_get(uuid), networks)
        self.take_task(uuid, "live-migrate", (states.ACTIVE, states.PAUSED), (None,),
                       states.MIGRATING)

    @staticmethod
    def _check_networks_view(inst, networks):
        """The destination's view of the networks must name exactly the
        instance's ports."""
        if networks is None:
            return
        mine = sorted(item["port"]["id"] for item in inst.networks or ())
        if sorted(item["port"]["id"] for item in networks) != mine:
            raise exception.InvalidRequest(
                f"networks: the destination's view must list the instance's ports {mine}")

    # -- source side ----------------------------------------------------------------

    def live_migrate(self, ctxt, uuid, dest_host, block, networks=None):
        api = self._peer_api()
        try:
            with self.ops.run(ctxt, uuid, "live_migration") as record:
                inst = self.db.instance_get(uuid)
                vi = self.virt_instance(inst)
                cpu = self.driver.migration_cpu(vi)
                probe = self._write_probe()
                try:
                    dest = api.check_can_live_migrate_destination(
                        dest_host, instance=self._record_payload(inst, networks),
                        block_migration=block, probe=probe, source_host=self.host, cpu=cpu)
                finally:
                    os.unlink(os.path.join(self.conf.instances_path, probe))
                record.event("destination_checked",
                             f"{dest}, cpu {'compared' if cpu else 'hypervisor default'}")
                try:
                    prep = api.pre_live_migration(
                        dest_host, instance=self._record_payload(inst, networks),
                        block_migration=block)
                    files = self._image_files(inst, inst.image_meta)
                    control = self._migrations[uuid] = virt_driver.MigrationControl()
                    seconds = self.driver.live_migrate(
                        vi, dest, self.driver.migration_paths(vi, files), prep["paths"], block,
                        control, self._progress_writer(uuid, 0, 100))
                except Exception:
                    LOG.exception("instance %s: live migration to %s failed; rolling back",
                                  uuid, dest_host)
                    api.rollback_live_migration_at_destination(
                        dest_host, instance_uuid=uuid, shared_storage=dest["shared_storage"])
                    raise
                record.event("migrated", f"to {dest_host} in {seconds:.3f} s")
                api.post_live_migration_at_destination(dest_host, instance_uuid=uuid)
                self._unplug_vifs(inst)
                if not dest["shared_storage"]:
                    shutil.rmtree(self.driver.instance_dir(vi), ignore_errors=True)
                self._migrations.pop(uuid, None)
                self.db.instance_update(uuid, expected_task_state=states.MIGRATING,
                                        task_state=None, host=dest_host, deleted=True,
                                        power_state=virt_driver.NOSTATE,
                                        terminated_at=utcnow())
        except Exception as e:
            LOG.error("instance %s: live migration failed: %s", uuid, e)
            self._migrations.pop(uuid, None)
            try:
                inst = self.db.instance_get(uuid)
                self.db.instance_update(uuid, expected_task_state=states.MIGRATING,
                                        task_state=None, power_state=self._power_state(inst))
            except exception.ComputeError as e2:
                LOG.warning("instance %s: not settled after failed migration: %s", uuid, e2)

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
            need = self.driver.instance_disk_bytes(self.virt_instance(inst))
            if need > dest["disk_available"]:
                raise exception.MigrationPreCheckError(
                    f"the destination has {dest['disk_available'] // 2**20} MiB free, the "
                    f"instance's disks hold {need // 2**20} MiB")
        return dest

    def live_migration_control(self, uuid, what):
        """abort or force_complete a running migration of uuid."""
        control = self._migrations.get(uuid)
        if control is None:
            raise exception.InstanceInvalidState(f"instance {uuid} is not live-migrating here")
        getattr(control, what).set()
        return {"instance_uuid": uuid, what: True}

    def _write_probe(self):
        name = f".shared-probe-{uuidlib.uuid4().hex}"
        with open(os.path.join(self.conf.instances_path, name), "w") as f:
            f.write(self.host)
        return name

    def _record_payload(self, inst, networks=None):
        """The record as the destination gets it (with its own view of the
        networks when the caller gave one)."""
        payload = {k: getattr(inst, k) for k in RECORD_FIELDS}
        if networks is not None:
            payload["networks"] = networks
        payload["metadata"] = inst.metadata_ or {}
        gids = {g for item in inst.networks or () for g in item["port"].get(
            "security_groups", ())}
        payload["security_groups"] = list(self.db.security_groups(gids).values())
        return payload

    # -- destination side -------------------------------------------------------------

    def check_can_live_migrate_destination(self, instance, block, probe, source_host, cpu):
        """Destination: the memory and the CPU here, the shared-storage
        probe and the addresses to migrate to; then, as in Nova, the
        source's own check with what this host found."""
        flavor = instance["flavor"]
        free_mb = self.driver.get_available_resource().memory_mb_free
        if free_mb < flavor["memory_mb"]:
            raise exception.MigrationPreCheckError(
                f"{self.host} has {free_mb} MiB free, the instance needs {flavor['memory_mb']}")
        if cpu is not None:
            try:
                self.driver.check_cpu(cpu)
            except virt_errors.CPUIncompatible as e:
                raise exception.MigrationPreCheckError(
                    f"{self.host} cannot provide the guest's CPU: {e}") from None
        st = os.statvfs(self.conf.instances_path)
        address = self.conf.libvirt.live_migration_inbound_addr or socket.gethostname()
        scheme = self.conf.libvirt.live_migration_scheme
        found = {"shared_storage": os.path.exists(os.path.join(self.conf.instances_path, probe)),
                 "block_migration": block, "disk_available": st.f_bavail * st.f_frsize,
                 "libvirt_uri": f"qemu+{scheme}://{address}/system",
                 "migrate_uri": f"tcp://{address}"}
        try:
            return self._peer_api().check_can_live_migrate_source(
                source_host, instance_uuid=instance["uuid"], dest_check_data=found)
        except exception.ComputeError as e:
            raise exception.local_copy(e) from None

    def pre_live_migration(self, ctxt, instance, block):
        uuid = instance["uuid"]
        self._record_incoming(instance, states.MIGRATING)
        with self.ops.run(ctxt, uuid, "live_migration_destination") as record:
            inst = self.db.instance_get(uuid)
            files = self._image_files(inst, inst.image_meta)
            vi = self.virt_instance(inst)
            formats = self.driver.pre_live_migration(vi, files, block)
            self.db.instance_update(uuid, disk_formats=formats)
            self._plug_vifs(inst)
            record.event("prepared", "block" if block else "shared storage")
            return {"paths": self.driver.migration_paths(vi, files)}

    def _record_incoming(self, instance, task_state, **overrides):
        """Destination: the record of an instance arriving from another host
        (the payload of _record_payload), with its security groups."""
        self.save_security_groups(instance["security_groups"])
        self.db.instance_purge(instance["uuid"], only_deleted=True)   # it lived here before
        values = dict(
            uuid=instance["uuid"], display_name=instance["display_name"], host=self.host,
            vm_state=instance["vm_state"], task_state=task_state,
            power_state=virt_driver.NOSTATE, flavor=instance["flavor"],
            image_ref=instance["image_ref"], image_meta=instance["image_meta"],
            disk_formats=instance["disk_formats"], networks=instance["networks"],
            metadata_=instance["metadata"], launched_at=utcnow())
        values.update(overrides)
        return self.db.instance_create(**values)

    def post_live_migration_at_destination(self, uuid):
        inst = self.db.instance_get(uuid)
        if inst.vm_state == states.ACTIVE and self._power_state(inst) == virt_driver.PAUSED:
            self.driver.unpause(self.virt_instance(inst))   # paused to force completion
        self.db.instance_update(uuid, expected_task_state=states.MIGRATING, task_state=None,
                                power_state=self._power_state(inst))
        return self.get_instance(uuid)

    def rollback_live_migration_at_destination(self, uuid, shared_storage):
        """Undo pre_live_migration; with shared storage the disks are the
        source's and stay."""
        try:
            inst = self.db.instance_get(uuid)
        except exception.InstanceNotFound:
            return {"instance_uuid": uuid}
        if inst.task_state != states.MIGRATING:
            raise exception.InstanceInvalidState(f"instance {uuid} is not migrating here")
        vi = self.virt_instance(inst)
        try:
            self.driver.destroy(vi, [], destroy_disks=False)
        except Exception:          # libvirtd may be what failed
            LOG.exception("instance %s: no guest to destroy on rollback", uuid)
        if not shared_storage:
            shutil.rmtree(self.driver.instance_dir(vi), ignore_errors=True)
        self._unplug_vifs(inst)
        self.db.instance_purge(uuid)
        return {"instance_uuid": uuid}
