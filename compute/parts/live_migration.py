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
rollback_live_migration_at_destination and leaves the guest running here;
once libvirt has moved it, nothing brings the record back here.  Each host
keeps its own records, so the record moves with the guest, and both keep a
row of the migration (the same id), which is how an agent that restarts in
the middle knows its peer: it asks the peer where the guest runs, then
finishes the move or rolls it back (recover).
"""
import logging
import socket
import time
import uuid as uuidlib

from compute.core import exception, faults, states
from compute.core.instance import power_state, view, virt_instance
from compute.core.operation import progress_writer
from compute.core.resource_tracker import claim_request
from compute.core.states import MigrationStatus as MS
from compute.db.models import utcnow
from compute.parts import volume_attachments
from virt import driver as virt_driver
from virt import errors as virt_errors

LOG = logging.getLogger(__name__)
AWAIT_SOURCE_INTERVAL = 2.0     # seconds between questions to a source still deciding


class LiveMigrations:
    def __init__(self, conf, db, driver, runner, networking, images, peers, tracker, host,
                 submit):
        self.conf, self.db, self.driver, self.runner = conf, db, driver, runner
        self.networking, self.images, self.peers, self.host = networking, images, peers, host
        self.tracker, self.submit = tracker, submit
        self._controls = {}          # uuid -> MigrationControl of migrations run from here

    def accept(self, uuid, dest_host, networks=None):
        """The migration's row (its id is the move's name on both hosts)."""
        if dest_host == self.host:
            raise exception.InvalidRequest(f"instance {uuid} is already on {dest_host}")
        inst = self.db.instance_get(uuid)
        self.peers.check_networks_view(inst, networks)
        missing = self.driver.missing_migration_certificates() \
            if self.driver.live_migration_tls() else []
        if missing:
            raise exception.MigrationPreCheckError(
                f"live migration of {uuid} refused: live_migration_with_native_tls is on and "
                f"{self.conf.libvirt.live_migration_tls_cert_dir} lacks {', '.join(missing)} "
                "(or they are unreadable); nothing was changed")
        self.runner.accept("live_migration", uuid)
        return self.db.migration_create(
            id=str(uuidlib.uuid4()), instance_uuid=uuid, migration_type="live-migration",
            source_host=self.host, dest_host=dest_host, status=MS.PRE_MIGRATING,
            old_flavor=inst.flavor, new_flavor=inst.flavor, old_vm_state=inst.vm_state,
            old_disk_formats=dict(inst.disk_formats or {}))

    # -- source side ----------------------------------------------------------------

    def live_migrate(self, ctxt, uuid, migration_id, dest_host, block, networks=None):
        try:
            self.runner.run("live_migration", ctxt, uuid,
                            lambda inst, record: self._migrate(inst, record, migration_id,
                                                               dest_host, block, networks),
                            migration_id=migration_id)
        finally:
            self._controls.pop(uuid, None)

    def _migrate(self, inst, record, migration_id, dest_host, block, networks):
        api, uuid, vi = self.peers.api, inst.uuid, virt_instance(inst)
        cpu = self.driver.migration_cpu(vi)
        with self.peers.probe() as probe:
            dest = api.check_can_live_migrate_destination(
                dest_host, instance=self.peers.record_payload(inst, networks),
                block_migration=block, probe=probe, source_host=self.host, cpu=cpu)
        self.db.migration_update(migration_id, status=MS.MIGRATING,
                                 shared_storage=dest["shared_storage"])
        record.event("destination_checked",
                     f"{dest}, cpu {'compared' if cpu else 'hypervisor default'}")
        faults.point("live_migration.checked")
        try:
            prep = api.pre_live_migration(
                dest_host, instance=self.peers.record_payload(inst, networks),
                block_migration=block, migration_id=migration_id, source_host=self.host)
            faults.point("live_migration.prepared")
            files = self.images.files_for(inst, inst.image_meta)
            control = self._controls[uuid] = virt_driver.MigrationControl()
            seconds = self.driver.live_migrate(
                vi, {**dest, "serial": prep.get("serial"), "vnc_listen": prep.get("vnc_listen")},
                self.driver.migration_paths(vi, files), prep["paths"], block,
                control, progress_writer(self.db, uuid, 0, 100))
        except Exception:
            LOG.exception("instance %s: live migration to %s failed; rolling back",
                          uuid, dest_host)
            api.rollback_live_migration_at_destination(
                dest_host, instance_uuid=uuid, shared_storage=dest["shared_storage"])
            raise
        # the guest runs at the destination now: nothing below brings it back
        self.db.migration_update(migration_id, status=MS.POST_MIGRATING)
        faults.point("live_migration.migrated")
        record.event("migrated", f"to {dest_host} in {seconds:.3f} s"
                     + (" over TLS" if self.driver.live_migration_tls() else ""))
        self._moved(inst, self.db.migration_get(migration_id), settle_destination=True)

    def _moved(self, inst, mig, settle_destination):
        """Source, once the guest runs at the destination: the destination
        settles its record (if it is asked to and answers: otherwise it
        does so itself when it starts), this host lets go of the ports and
        the files, and the record here says where the instance went."""
        if settle_destination:
            try:
                self.peers.api.post_live_migration_at_destination(mig.dest_host,
                                                                  instance_uuid=inst.uuid)
            except Exception as e:       # noqa: BLE001 - it settles at its own start
                LOG.warning("instance %s: %s did not settle its record: %s", inst.uuid,
                            mig.dest_host, e)
        faults.point("live_migration.posted")
        self.networking.unplug_vifs(inst)
        volume_attachments.forget_all(self.driver, inst)   # the destination's QEMU has them
        if not mig.shared_storage:
            self.driver.remove_instance_files(virt_instance(inst))
        self.runner.finish("live_migration", inst.uuid, checked=False, host=mig.dest_host,
                           deleted=True, power_state=virt_driver.NOSTATE,
                           terminated_at=utcnow())
        self.db.migration_update(mig.id, status=MS.COMPLETED)

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
        if self.driver.live_migration_tls() and not dest.get("native_tls"):
            raise exception.MigrationPreCheckError(
                "this host sends live migrations over TLS and the destination has no "
                "migration TLS certificates (live_migration_tls_cert_dir)")
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

    # -- agent restart ------------------------------------------------------------------

    def recover(self, inst):
        """Agent start, either side of a live migration left in the middle:
        where the guest runs decides, and the peer is asked where it is."""
        rows = [m for m in self.db.migrations(inst.uuid)
                if m.migration_type == "live-migration"
                and m.status not in (MS.ERROR, MS.COMPLETED)]
        if not rows:           # from before migration rows: the record follows the guest
            self.runner.finish("live_migration", inst.uuid,
                               power_state=power_state(self.driver, inst))
            return
        mig = rows[0]
        if mig.source_host == self.host:
            self._recover_source(inst, mig)
        elif not self._recover_destination(inst, mig):
            self.submit(self._await_source, inst.uuid, mig)

    def _peer_record(self, host, uuid):
        """The peer's record of uuid (deleted ones too), None if it has
        none; raises if the peer does not answer."""
        try:
            return self.peers.api.get_instance(host, uuid)
        except exception.InstanceNotFound:
            return None

    def _recover_source(self, inst, mig):
        here = power_state(self.driver, inst)
        if here in (virt_driver.RUNNING, virt_driver.PAUSED):
            LOG.warning("instance %s: live migration interrupted; the guest still runs here, "
                        "rolling back %s", inst.uuid, mig.dest_host)
            try:
                self.peers.api.rollback_live_migration_at_destination(
                    mig.dest_host, instance_uuid=inst.uuid,
                    shared_storage=bool(mig.shared_storage))
            except Exception as e:       # noqa: BLE001 - it drops its half when it starts
                LOG.warning("instance %s: %s did not roll back: %s", inst.uuid,
                            mig.dest_host, e)
            self.db.migration_update(mig.id, status=MS.ERROR,
                                     message="interrupted by an agent restart; rolled back")
            self.runner.finish("live_migration", inst.uuid, power_state=here)
            return
        try:
            theirs = self._peer_record(mig.dest_host, inst.uuid)
            if theirs and theirs["host"] == mig.dest_host and \
                    theirs["task_state"] == states.MIGRATING:
                # its record settles with what its hypervisor says (a record
                # in a task state does not follow lifecycle events)
                theirs = self.peers.api.post_live_migration_at_destination(
                    mig.dest_host, instance_uuid=inst.uuid)
        except Exception as e:           # noqa: BLE001 - unknown: neither side may start it
            return self._lost(inst, mig, f"{mig.dest_host} did not say whether the guest "
                                         f"runs there ({e})")
        if theirs and theirs["host"] == mig.dest_host and \
                theirs["power_state"] in ("RUNNING", "PAUSED"):
            LOG.warning("instance %s: live migration interrupted after the guest moved to %s; "
                        "finishing the move", inst.uuid, mig.dest_host)
            self._moved(inst, mig, settle_destination=False)
        else:
            self._lost(inst, mig, f"the guest runs neither here nor on {mig.dest_host}")

    def _lost(self, inst, mig, why):
        """Where the guest is cannot be told: ERROR with the reason, so
        nothing starts it from disks that may be stale."""
        LOG.error("instance %s: live migration interrupted: %s", inst.uuid, why)
        self.db.fault_create(inst.uuid, f"LiveMigrationInterrupted: {why}")
        self.db.migration_update(mig.id, status=MS.ERROR, message=why[:1000])
        self.runner.finish("live_migration", inst.uuid, vm_state=states.ERROR,
                           power_state=power_state(self.driver, inst))

    def _await_source(self, uuid, mig):
        """Destination, after a restart, while the source still runs the
        migration: ask it again until it has decided (its own calls here may
        have been lost while this agent was down)."""
        deadline = time.monotonic() + 2 * self.conf.rpc_peer_timeout + 60
        while time.monotonic() < deadline:
            time.sleep(AWAIT_SOURCE_INTERVAL)
            inst = self.peers.find(uuid)
            if inst is None or inst.task_state != states.MIGRATING or \
                    self._recover_destination(inst, mig):
                return
        LOG.error("instance %s: %s never decided the live migration; left migrating",
                  uuid, mig.source_host)

    def _recover_destination(self, inst, mig):
        """Whether it is decided (False: the source still runs it)."""
        try:
            theirs = self._peer_record(mig.source_host, inst.uuid)
        except Exception as e:           # noqa: BLE001 - the source decides when it is back
            LOG.warning("instance %s: arriving by live migration, interrupted; %s did not "
                        "answer (%s)", inst.uuid, mig.source_host, e)
            return False
        if theirs is not None and theirs["host"] == mig.source_host and \
                theirs["task_state"] == states.MIGRATING:
            LOG.warning("instance %s: arriving by live migration, interrupted; %s still runs "
                        "it", inst.uuid, mig.source_host)
            return False
        if theirs is None or theirs["host"] == self.host:
            LOG.warning("instance %s: the live migration from %s finished; settling here",
                        inst.uuid, mig.source_host)
            self._settle_arrival(inst, mig)
        else:
            LOG.warning("instance %s: the live migration from %s did not finish; dropping "
                        "what arrived", inst.uuid, mig.source_host)
            self.rollback_live_migration_at_destination(inst.uuid, bool(mig.shared_storage))
        return True

    # -- destination side -------------------------------------------------------------

    def check_can_live_migrate_destination(self, instance, block, probe, source_host, cpu):
        """Destination: the memory and the CPU here, the shared-storage
        probe and the addresses to migrate to; then, as in Nova, the
        source's own check with what this host found."""
        try:
            self.tracker.check(self._request(instance, block), f"instance {instance['uuid']}")
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
                 "migrate_uri": f"tcp://{address}",
                 "native_tls": self.driver.has_migration_certificates()}
        try:
            return self.peers.api.check_can_live_migrate_source(
                source_host, instance_uuid=instance["uuid"], dest_check_data=found)
        except exception.ComputeError as e:
            raise exception.local_copy(e) from None

    @staticmethod
    def _request(instance, block):
        """What an arriving instance claims: its disks only when they are
        copied here (a block migration of disks that are files)."""
        return claim_request(instance["flavor"], instance.get("volumes"),
                             instance["disk_formats"], disks_local=block)

    def pre_live_migration(self, ctxt, instance, block, migration_id, source_host):
        """Destination: the claim (the check above held nothing), the record
        and the migration's row, then the instance's files, bases and
        ports."""
        uuid = instance["uuid"]
        try:
            with self.tracker.claim(self._request(instance, block), f"instance {uuid}"):
                self.peers.record_incoming(instance, "live_migration_destination")
        except exception.ResourcesUnavailable as e:
            raise exception.MigrationPreCheckError(str(e)) from None
        self.db.migration_create(
            id=migration_id, instance_uuid=uuid, migration_type="live-migration",
            source_host=source_host, dest_host=self.host, status=MS.MIGRATING,
            old_flavor=instance["flavor"], new_flavor=instance["flavor"],
            old_vm_state=instance["vm_state"], old_disk_formats=instance["disk_formats"],
            shared_storage=not block)
        faults.point("live_migration_destination.recorded")

        def work(inst, record):
            files = self.images.files_for(inst, inst.image_meta)
            vi = virt_instance(inst)
            volume_attachments.connect_all(self.driver, inst)
            formats = self.driver.pre_live_migration(vi, files, block)
            self.db.instance_update(uuid, disk_formats=formats)
            self.networking.plug_vifs(inst)
            record.event("prepared", "block" if block else "shared storage")
            return {"paths": self.driver.migration_paths(vi, files),
                    **self.driver.hold_console_ports(vi)}
        return self.runner.run("live_migration_destination", ctxt, uuid, work, reraise=True)

    def post_live_migration_at_destination(self, uuid):
        inst = self.db.instance_get(uuid)
        self.driver.release_serial_port(virt_instance(inst))     # defined here now
        faults.point("live_migration_destination.posted")
        self._settle_arrival(inst, self._row(uuid))
        return view(self.db.instance_get(uuid))

    def _row(self, uuid):
        rows = [m for m in self.db.migrations(uuid) if m.migration_type == "live-migration"]
        return rows[0] if rows else None

    def _settle_arrival(self, inst, mig):
        if inst.vm_state == states.ACTIVE and \
                power_state(self.driver, inst) == virt_driver.PAUSED:
            self.driver.unpause(virt_instance(inst))     # paused to force completion
        self.runner.finish("live_migration_destination", inst.uuid,
                           power_state=power_state(self.driver, inst))
        if mig is not None:
            self.db.migration_update(mig.id, status=MS.COMPLETED)

    def rollback_live_migration_at_destination(self, uuid, shared_storage):
        """Undo pre_live_migration; with shared storage the disks are the
        source's and stay."""
        inst = self.peers.find(uuid)
        if inst is None:
            return {"instance_uuid": uuid}
        if inst.task_state != states.MIGRATING:
            raise exception.InstanceInvalidState(f"instance {uuid} is not migrating here")
        vi = virt_instance(inst)
        self.driver.release_serial_port(vi)
        try:
            self.driver.destroy(vi, [], destroy_disks=False)
        except Exception:          # libvirtd may be what failed
            LOG.exception("instance %s: no guest to destroy on rollback", uuid)
        volume_attachments.forget_all(self.driver, inst)       # the source's guest keeps them open
        if not shared_storage:
            self.driver.remove_instance_files(vi)
        self.networking.unplug_vifs(inst)
        self.db.instance_purge(uuid)
        mig = self._row(uuid)
        if mig is not None:
            self.db.migration_update(mig.id, status=MS.ERROR, message="rolled back")
        return {"instance_uuid": uuid}
