"""Evacuations: an instance of a host whose service is down rebuilt on this
host, and the clean-up its old host does when it comes back.  Both need
the database the hosts share: the dead host's heartbeat and its record of
the instance are read from it, and the evacuation's migration row (owned
by this host) is what the returning host finds.

- Accept (in the call): the source's service must be down (its heartbeat
  older than service_down_time).  This host then opens the evacuation's
  migration row (accepting): on a shared PostgreSQL database that row is
  what lets it read the source's record and groups, and the database
  itself refuses it while the source's heartbeat is fresh.  The record
  must be live, not in a migration, and this host must not have the
  instance; a refusal deletes the opened row.  This host's record (the
  source's copy, REBUILD_SPAWNING) and the migration row (accepted) are
  written in one transaction, with the claim held.
- Rebuild (worker pool): from the disks the source left when this host
  sees them (shared instances storage), otherwise anew from the image;
  the same ports, MACs and addresses; a stopped instance ends stopped.
  The row says done.
- The source, at its next start and before it looks at its guests:
  every evacuation away from it that is accepted or done, and whose facts
  agree (evacuation_refusal: the row was written after this host had
  been silent for service_down_time, the destination holds a record of
  the instance, the row is the instance's newest migration), has its guest
  destroyed there (never started), its files removed unless the storage
  is shared, its ports unplugged, its record kept (deleted) as a pointer
  to the new host, and the row completed.
"""
import dataclasses
import logging
import uuid as uuidlib

from compute.core import exception, faults, optable, sealing, states
from compute.core.instance import power_state, virt_instance
from compute.core.resource_tracker import claim_request
from compute.core.states import MigrationStatus as MS
from compute.db.api import service_is_up, unreachable
from compute.db.models import utcnow
from compute.parts import volume_attachments
from compute.rpc import transport
from imagecache import errors as image_errors
from imagecache.glance import split_properties
from virt import driver as virt_driver
from virt import errors as virt_errors

LOG = logging.getLogger(__name__)
EVACUABLE = optable.TABLE["evacuate"].vm_from
MIGRATION_TASKS = optable.peer_tasks()      # another host may have the guest meanwhile


def service_refusal(source, service, down_time, now):
    """Why source's instances cannot be evacuated, or None (pure): source
    must have a service row here (a shared database) that is down."""
    if service is None:
        return (f"host {source} has no service record in this database: evacuation needs "
                "the database the hosts share")
    if service_is_up(service, down_time, now):
        age = (now - (service.updated_at or service.created_at)).total_seconds()
        return (f"host {source} is up: its last heartbeat is {age:.0f} s old "
                f"(service_down_time {down_time} s)")
    return None


def record_refusal(record, here):
    """Why this live record of the source cannot be evacuated, or None
    (pure); here: the host that has a record of it already, if any."""
    if record.vm_state not in EVACUABLE:
        return f"the instance is {record.vm_state}; evacuable: {sorted(EVACUABLE)}"
    if record.task_state in MIGRATION_TASKS:
        return f"the instance is in the middle of {record.task_state}"
    if here:
        return f"the instance has a record on {here} already"
    return None


def evacuation_refusal(mig, last_beat, dest_record, newer, down_time):
    """Why this host (the source) must not destroy its copy on the word of
    evacuation row mig, or None (pure).  last_beat: this host's last
    heartbeat before this start; dest_record: the destination's record of
    the instance (None if it has none); newer: migrations of the instance
    written after mig."""
    if last_beat is None:
        return "this host has no heartbeat on record, so nothing shows it was ever down"
    silent = (mig.created_at - last_beat).total_seconds()
    if silent < down_time:
        return (f"the row was written {silent:.0f} s after this host's last heartbeat "
                f"(service_down_time {down_time} s): this host was not down")
    if dest_record is None or dest_record.owner != mig.dest_host \
            or dest_record.host != mig.dest_host:
        return f"{mig.dest_host} holds no record of the instance"
    if newer:
        return (f"it is not the instance's current migration ({newer[0].migration_type} "
                f"{newer[0].id} is newer)")
    return None


class Evacuations:
    def __init__(self, conf, db, driver, runner, networking, images, glance, peers, tracker,
                 host):
        self.conf, self.db, self.driver, self.runner = conf, db, driver, runner
        self.networking, self.images, self.glance = networking, images, glance
        self.peers, self.tracker, self.host = peers, tracker, host

    def open(self, uuid, source):
        """The evacuation's migration row, opened once the source is down
        (the id); InvalidRequest saying why not."""
        if source == self.host:
            raise exception.InvalidRequest(f"instance {uuid}: evacuate to its own host")
        why = service_refusal(source, self.db.service_get(source, transport.BINARY),
                              self.conf.service_down_time, utcnow())
        if why:
            raise exception.InvalidRequest(f"cannot evacuate instance {uuid}: {why}")
        migration_id = str(uuidlib.uuid4())
        try:
            self.db.migration_create(
                id=migration_id, owner=self.host, instance_uuid=uuid,
                migration_type="evacuation", source_host=source, dest_host=self.host,
                status=MS.ACCEPTING, old_flavor={}, new_flavor={}, old_vm_state="")
        except Exception as e:
            if unreachable(e):
                raise
            raise exception.InvalidRequest(
                f"cannot evacuate instance {uuid}: the database refused the evacuation's "
                f"row ({str(e).splitlines()[0]})") from None
        return migration_id

    def abandon(self, migration_id):
        self.db.migration_delete(migration_id)

    def source_record(self, uuid, source):
        """The source's live record of uuid, once the evacuation is allowed
        (its row opened); InvalidRequest (or InstanceNotFound) saying why
        not."""
        try:
            record = self.db.instance_get(uuid, owner=source)
        except exception.InstanceNotFound:
            record = None
        if record is None or record.host != source:
            raise exception.InstanceNotFound(f"instance {uuid} is not on {source}")
        elsewhere = [h for h in self.db.instance_holders(uuid) if h[0] != source]
        if elsewhere:
            holder, vm_state, power = elsewhere[0]
            raise exception.InvalidRequest(
                f"cannot evacuate instance {uuid}: {holder} holds it ({vm_state}, power "
                f"{virt_driver.POWER_STATE_NAMES.get(power, power)}), not only {source}")
        why = record_refusal(record, self.host if self.peers.find(uuid) else None)
        if why:
            raise exception.InvalidRequest(f"cannot evacuate instance {uuid}: {why}")
        return record

    @staticmethod
    def given_credentials(body, payload):
        """The source's record (as record_payload gives it) with what its
        host sealed replaced by what the request gives again (the
        operator's copy: connections, user_data); InvalidRequest naming
        what is still missing, or given for a volume the record lacks."""
        given = payload.get("connections") or {}
        vols = body.get("volumes") or []
        extra = sorted(set(given) - {v["volume_id"] for v in vols})
        if extra:
            raise exception.InvalidRequest(f"evacuate_instance: connections: the instance "
                                           f"has no volume {', '.join(extra)}")
        body = dict(body, volumes=[
            {**v, "connection_info": given.get(v["volume_id"], v["connection_info"])}
            for v in vols])
        if "user_data" in payload and body.get("guest_data"):
            body["guest_data"] = {**body["guest_data"], "user_data": payload["user_data"]}
        missing = sealing.still_sealed(body)
        if missing:
            raise exception.InvalidRequest(
                f"evacuate_instance: the down host sealed the credentials of "
                f"{', '.join(missing)} with its own key: give them again (computectl "
                f"evacuate --connection VOLUME=FILE, --user-data FILE)")
        return body

    def accept(self, record, payload, migration_id):
        """Claim, then this host's record and the evacuation's row in one
        transaction; (the row, whether the rebuild keeps the disks: the
        instance's files are visible here (shared storage), or its disks
        are in the Ceph pool)."""
        uuid = record.uuid
        shared = self.driver.has_instance_files(virt_driver.Instance.ref(uuid))
        # disks in the Ceph pool outlive the host: defined again from them,
        # while the source's directory is still its own to remove
        try:
            in_pool = self.driver.in_ceph(dataclasses.replace(
                virt_driver.Instance.ref(uuid), disk_formats=record.disk_formats or {}))
        except virt_errors.DiskMissing as e:
            raise exception.InvalidRequest(f"cannot evacuate instance {uuid} here: {e}") \
                from None
        migration = dict(id=migration_id, instance_uuid=uuid,
                         migration_type="evacuation", source_host=record.host,
                         dest_host=self.host, status=MS.ACCEPTED, old_flavor=record.flavor,
                         new_flavor=record.flavor, old_vm_state=record.vm_state,
                         old_disk_formats=record.disk_formats or {}, shared_storage=shared)
        request = claim_request(record.flavor, record.volumes, disks_local=not in_pool,
                                new_disks_shared=self.driver.new_disks_shared())
        with self.tracker.claim(request, f"instance {uuid}"):
            self.peers.record_incoming(
                payload, "evacuate", migration=migration,
                disk_formats=record.disk_formats if shared or in_pool else {},
                task_args={"migration_id": migration["id"],
                           "shared_storage": shared or in_pool, "files_shared": shared,
                           "stopped": record.vm_state == states.STOPPED})
        return migration, shared or in_pool

    def evacuate(self, ctxt, uuid):
        """Rebuild the accepted instance here (worker pool; issued again
        after a restart)."""
        def work(inst, record):
            args = inst.task_args or {}
            vi = virt_instance(inst)
            files = self.images.files_for(inst, inst.image_meta)
            network_info = self.networking.plug_vifs(inst)
            volume_attachments.connect_all(self.driver, inst)
            faults.point("evacuate.prepared")
            if args.get("shared_storage"):
                if args.get("files_shared"):
                    # the down host's files: untrusted, inspected before QEMU opens them
                    try:
                        self.driver.check_arrived_disks(vi, virt_driver.Flavor(**inst.flavor),
                                                        files, left_behind=True)
                    except image_errors.UnsafeImage as e:
                        raise exception.UnsafeImage(str(e)) from None
                self.driver.power_on(vi, inst.image_meta, files, network_info)
                formats = inst.disk_formats
                how = "from its disks on the shared storage"
            else:
                self.driver.destroy(vi, [], destroy_disks=True)     # an earlier attempt's
                meta = split_properties(self.glance.show(inst.image_ref))
                formats = self.driver.spawn(vi, meta, files, network_info)
                how = f"anew from image {inst.image_ref}"
            faults.point("evacuate.spawned")
            if args.get("stopped"):
                self.driver.power_off(vi)
            record.event("evacuated", f"rebuilt {how}")
            self.runner.finish(
                "evacuate", uuid,
                vm_state=states.STOPPED if args.get("stopped") else states.ACTIVE,
                disk_formats=formats, launched_at=utcnow(),
                power_state=power_state(self.driver, inst))
            self.db.migration_update(args["migration_id"], status=MS.DONE)
        inst = self.db.instance_get(uuid)
        self.runner.run("evacuate", ctxt, uuid, work,
                        migration_id=(inst.task_args or {}).get("migration_id"))

    def clean_up_evacuated(self):
        """Agent start, before anything looks at the guests: what was
        evacuated away from this host while it was down goes; an evacuation
        this host opened and never accepted (it died in between) is closed:
        its row would go on letting it read the other host's record."""
        for mig in self.db.migrations(status=(MS.ACCEPTING,)):
            LOG.warning("evacuation %s of %s from %s was opened but never accepted: closed",
                        mig.id, mig.instance_uuid, mig.source_host)
            self.abandon(mig.id)
        service = self.db.service_get(self.host, transport.BINARY)
        last_beat = service and (service.updated_at or service.created_at)
        for mig in self.db.evacuations_from(self.host):
            uuid = mig.instance_uuid
            try:
                inst = self.db.instance_get(uuid)
            except exception.InstanceNotFound:
                inst = None
            if inst is not None and inst.host == self.host:
                why = evacuation_refusal(
                    mig, last_beat, self._record_of(uuid, mig.dest_host),
                    [m for m in self.db.migrations_of(uuid)
                     if m.id != mig.id and m.created_at > mig.created_at],
                    self.conf.service_down_time)
                if why:
                    LOG.error("instance %s: evacuation %s to %s is not acted on, the guest "
                              "here is kept: %s", uuid, mig.id, mig.dest_host, why)
                    self.db.fault_create(uuid, f"EvacuationRefused: evacuation {mig.id} to "
                                               f"{mig.dest_host} was not acted on: {why}")
                    continue
                LOG.warning("instance %s was evacuated to %s while this host was down: "
                            "destroying the copy here%s", uuid, mig.dest_host,
                            "" if mig.shared_storage else " and its files")
                try:
                    self.driver.destroy(virt_instance(inst), [],
                                        destroy_disks=not mig.shared_storage)
                    volume_attachments.forget_all(self.driver, inst)
                    faults.point("evacuate_source.destroyed")
                    self.db.floating_ip_remove(instance_uuid=uuid)
                    self.networking.unplug_vifs(inst)
                except Exception:
                    LOG.exception("instance %s: the evacuated copy was not cleaned up; "
                                  "tried again at the next start", uuid)
                    continue
                self.runner.finish("evacuate", uuid, checked=False, host=mig.dest_host,
                                   vm_state=states.DELETED, deleted=True,
                                        power_state=virt_driver.NOSTATE,
                                        terminated_at=utcnow())
            self.db.migration_update(mig.id, owner=mig.owner, status=MS.COMPLETED)

    def _record_of(self, uuid, host):
        try:
            return self.db.instance_get(uuid, include_deleted=True, owner=host)
        except exception.InstanceNotFound:
            return None
