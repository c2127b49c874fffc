"""Cold migration and resize between agents.  The source drives it; the
destination prepares, receives and finishes:

    client -> source  migrate_instance (accepted: task resize_prep and a
                      migration row; a smaller disk is refused here)
    source -> dest    prep_resize: room for the new flavor, the
                      shared-storage probe, the record (task resize_prep:
                      it counts in the destination's usage from now on), the
                      bases fetched, a disk Receiver (compute.parts.disk_transfer)
    source            guest shut down and undefined, its directory moved to
                      <uuid>_resize, VIFs unplugged, the disk files sent
                      (with shared storage nothing is sent: the destination
                      copies from _resize on the same filesystem)
    source -> dest    finish_resize: disks adopted (rebased on this host's
                      bases, grown), VIFs plugged, the guest defined with the
                      new flavor and started if it was running; vm_state
                      resized on both hosts
    client -> dest    confirm_resize -> source confirm_resize_at_source
                      (_resize removed, the source's record marked moved)
    client -> dest    revert_resize: the destination's guest, disks and
                      record go -> source finish_revert_resize (_resize
                      moved back, old flavor, started if it was running)

Any failure before finish_resize succeeded calls abort_resize_at_destination
and puts the instance back on the source as it was; but once finish_resize
was called, only an abort the destination confirmed lets the source start
the guest again: otherwise the source settles in ERROR, since the guest may
run there.  The abort takes the instance's lock at the destination, so it
waits for a finish_resize in progress there.  An agent restarting in the
middle asks its peer (recover).  A resize on one host
(allow_resize_same_host) takes the same steps on one record; the agent
then calls itself, so the destination half does not take the instance
lock the source half holds.
"""
import logging
import socket
import time
import uuid as uuidlib

from compute.core import exception, faults, optable, states
from compute.core.instance import power_state, view, virt_instance
from compute.core.operation import progress_writer
from compute.core.resource_tracker import claim_request
from compute.core.states import MigrationStatus as MS
from compute.db.models import utcnow
from compute.parts import disk_transfer, volume_attachments
from imagecache import errors as image_errors
from virt import driver as virt_driver

LOG = logging.getLogger(__name__)
SOURCE_TASKS = optable.TABLE["resize"].tasks
MIGRATION_FIELDS = ("id", "instance_uuid", "migration_type", "source_host", "dest_host",
                    "old_flavor", "new_flavor", "old_vm_state", "old_disk_formats")


def full_flavor(flavor):
    return {"ephemeral_gb": 0, "swap_mb": 0, "name": "", **flavor}


def check_growth(old, new):
    """Refuse a flavor whose disks are smaller: disks never shrink (root_gb
    0 means the image's own size, which a sized root may be below)."""
    if new["root_gb"] < old["root_gb"] or (old["root_gb"] and not new["root_gb"]):
        raise exception.InvalidRequest(
            f"cannot resize the root disk from {old['root_gb']} GiB to "
            f"{new['root_gb'] or 'the image size'} GiB: disks never shrink")
    if new["ephemeral_gb"] < old["ephemeral_gb"]:
        raise exception.InvalidRequest(
            f"cannot resize the ephemeral disk from {old['ephemeral_gb']} GiB to "
            f"{new['ephemeral_gb']} GiB: disks never shrink")


def disk_bytes_bound(flavor, root_virtual_size):
    """The most data the disks of flavor can hold, with room for qcow2's
    own tables: what a transfer of them may send at most."""
    data = (flavor["root_gb"] * 1024 ** 3 or root_virtual_size) \
        + flavor.get("ephemeral_gb", 0) * 1024 ** 3 + flavor.get("swap_mb", 0) * 1024 ** 2
    return data + data // 64 + 64 * 1024 ** 2


def migration_view(mig):
    out = {c: getattr(mig, c) for c in mig.__table__.columns.keys()}
    for k in ("created_at", "updated_at"):
        out[k] = out[k].isoformat() + "Z" if out[k] else None
    return out


def settle_refusal(mig, own_migrations, inst):
    """Why this host, the source, must not confirm or revert mig on a
    peer's word, or None (pure): the move must be finished here, be the
    instance's newest migration of this host, and the record here (if it
    is still live) must await the confirm or revert."""
    if mig.status != MS.FINISHED:
        return f"it is {mig.status}, not finished"
    newest = own_migrations[0] if own_migrations else None
    if newest is not None and newest.id != mig.id:
        return f"it is not the instance's current migration ({newest.id} is newer)"
    if inst is not None and inst.vm_state != states.RESIZED:
        return f"the instance here is {inst.vm_state}, not resized"
    return None


class Resizes:
    def __init__(self, conf, db, driver, runner, networking, images, peers, tracker, host):
        self.conf, self.db, self.driver, self.runner = conf, db, driver, runner
        self.networking, self.images, self.peers, self.host = networking, images, peers, host
        self.tracker = tracker
        self._receivers = {}                  # migration id -> disk_transfer.Receiver

    # -- client -> source -------------------------------------------------------------

    def accept_resize(self, uuid, dest_host, flavor=None, networks=None):
        inst = self.db.instance_get(uuid)
        old = full_flavor(inst.flavor)
        new = full_flavor(flavor) if flavor else old
        if dest_host == self.host and not self.conf.allow_resize_same_host:
            raise exception.InvalidRequest(
                f"instance {uuid} is on {dest_host} already (allow_resize_same_host is off)")
        if flavor and new == old:
            raise exception.InvalidRequest(f"instance {uuid} has this flavor already")
        check_growth(old, new)
        self.peers.check_networks_view(inst, networks)
        self.runner.accept("resize", uuid)
        return self.db.migration_create(
            id=str(uuidlib.uuid4()), instance_uuid=uuid,
            migration_type="resize" if flavor else "migration", source_host=self.host,
            dest_host=dest_host, status=MS.PRE_MIGRATING, old_flavor=old, new_flavor=new,
            old_vm_state=inst.vm_state, old_disk_formats=dict(inst.disk_formats or {}))

    # -- source side --------------------------------------------------------------------

    def resize_instance(self, ctxt, uuid, migration_id, networks=None):
        mig = self.db.migration_get(migration_id)

        def work(inst, record):
            self._move_out(inst, mig, networks, record)
            record.event("finished", f"on {mig.dest_host}")
            self.db.migration_update(migration_id, status=MS.FINISHED)
            if mig.dest_host != self.host:
                self.runner.finish("resize", uuid, vm_state=states.RESIZED,
                                   power_state=virt_driver.NOSTATE, progress=None)
        self.runner.run("resize", ctxt, uuid, work, migration_id=migration_id)

    def _move_out(self, inst, mig, networks, record):
        """Prepare the destination, power off and move aside, send the
        disks, have the destination finish; on any failure the destination
        is told to abort and the instance is put back here."""
        uuid, api, moved, finishing = inst.uuid, self.peers.api, False, False
        try:
            prep = self._prepare_destination(api, inst, mig, networks)
            record.event("destination_prepared", "shared storage"
                         if prep["shared_storage"] else "disks to transfer")
            faults.point("resize.prepared")
            self.runner.advance("resize", uuid, states.RESIZE_MIGRATING)
            files = self.driver.migrate_disk_and_power_off(
                virt_instance(inst), self.conf.shutdown_timeout,
                self.conf.shutdown_retry_interval)
            moved = True
            faults.point("resize.powered_off")
            self.networking.unplug_vifs(inst)
            if not prep["shared_storage"]:
                self._send_disks(uuid, prep["transfer"], files, record)
            faults.point("resize.sent")
            self.db.migration_update(mig.id, status=MS.POST_MIGRATING)
            self.runner.advance("resize", uuid, states.RESIZE_MIGRATED)
            finishing = True
            api.finish_resize(mig.dest_host, migration_id=mig.id)
            faults.point("resize.finished_remote")
        except Exception:
            LOG.exception("instance %s: %s to %s failed; putting it back",
                          uuid, mig.migration_type, mig.dest_host)
            aborted = self._abort_at_destination(api, mig)
            if moved and (aborted or not finishing):
                self._restore_here(uuid, mig)
            elif moved:
                self._stranded(uuid, mig)
            raise

    def _prepare_destination(self, api, inst, mig, networks):
        with self.peers.probe() as probe:
            prep = api.prep_resize(
                mig.dest_host, migration={k: getattr(mig, k) for k in MIGRATION_FIELDS},
                instance=self.peers.record_payload(inst, networks), probe=probe)
        self.db.migration_update(mig.id, status=MS.MIGRATING,
                                 shared_storage=prep["shared_storage"])
        return prep

    def _send_disks(self, uuid, offer, files, record):
        progress = progress_writer(self.db, uuid, 0, 100)
        started = time.monotonic()
        sent = disk_transfer.send(offer["address"], offer["port"], offer["token"],
                                  sorted(files.items()),
                                  lambda done, total: progress(done * 100 // max(total, 1)),
                                  timeout=self.conf.migration_transfer_timeout)
        seconds = time.monotonic() - started
        record.event("disks_sent", f"{sent} bytes in {seconds:.3f} s "
                                   f"({sent / max(seconds, 1e-6) / 2 ** 20:.1f} MiB/s)")

    def _abort_at_destination(self, api, mig):
        """Whether the destination confirmed it dropped its half."""
        if mig.dest_host == self.host:
            return True             # one host: the source's own steps put it back
        try:
            api.abort_resize_at_destination(mig.dest_host, migration_id=mig.id)
            return True
        except Exception:
            LOG.exception("instance %s: the destination %s did not clean up",
                          mig.instance_uuid, mig.dest_host)
            return False

    def _stranded(self, uuid, mig):
        """finish_resize was called and the abort not confirmed: the guest
        may run on the destination, so it is not started here (ERROR)."""
        why = (f"the {mig.migration_type} to {mig.dest_host} failed after the destination "
               "was asked to finish it, and it did not confirm dropping its copy: the guest "
               "is not restarted here, as it may run there")
        LOG.error("instance %s: %s", uuid, why)
        self.db.fault_create(uuid, f"MigrationStranded: {why}")
        self.db.instance_update(uuid, vm_state=states.ERROR)

    def _restore_here(self, uuid, mig):
        """The instance back on this host as before the move: directory,
        old flavor and disks, VIFs, guest (started if it was running)."""
        self.db.instance_update(uuid, flavor=mig.old_flavor, disk_formats=mig.old_disk_formats)
        inst = self.db.instance_get(uuid)
        network_info = self.networking.plug_vifs(inst)
        volume_attachments.connect_all(self.driver, inst)
        files = self.images.files_for(inst, inst.image_meta)
        self.driver.finish_revert_migration(virt_instance(inst), inst.image_meta, files,
                                            network_info, mig.old_vm_state == states.ACTIVE)

    def _check_settle(self, mig, what):
        """A peer's word to confirm or revert mig is taken only when this
        host's own record agrees (settle_refusal); InvalidRequest if not."""
        try:
            inst = self.db.instance_get(mig.instance_uuid)
        except exception.InstanceNotFound:
            inst = None
        why = settle_refusal(mig, self.db.migrations(mig.instance_uuid), inst)
        if why:
            LOG.warning("instance %s: %s of migration %s refused: %s", mig.instance_uuid, what,
                        mig.id, why)
            raise exception.InvalidRequest(f"{what} of migration {mig.id} refused: {why}")

    def confirm_resize_at_source(self, ctxt, migration_id):
        """Idempotent: a destination may ask again after a restart."""
        mig = self.db.migration_get(migration_id)
        same, uuid = mig.dest_host == self.host, mig.instance_uuid
        if mig.status == MS.CONFIRMED:
            return {"migration_id": migration_id}
        self._check_settle(mig, "confirm")

        def work(inst, record):
            self.driver.confirm_migration(virt_instance(inst))
            faults.point("confirm_resize.source_confirmed")
            if not same:
                volume_attachments.forget_all(self.driver, inst)     # the destination's now
                self.db.instance_update(uuid, expected_vm_state=states.RESIZED,
                                        expected_task_state=None, host=mig.dest_host,
                                        deleted=True, terminated_at=utcnow())
            self.db.migration_update(migration_id, status=MS.CONFIRMED)
        self.runner.run("resize_confirm_source", ctxt, uuid, work, lock=not same, reraise=True)
        return {"migration_id": migration_id}

    def finish_revert_resize(self, ctxt, migration_id):
        """Idempotent: a destination may ask again after a restart."""
        mig = self.db.migration_get(migration_id)
        same, uuid = mig.dest_host == self.host, mig.instance_uuid
        if mig.status == MS.REVERTED:
            return {"migration_id": migration_id}
        self._check_settle(mig, "revert")

        def work(inst, record):
            self._restore_here(uuid, mig)
            faults.point("revert_resize.source_reverted")
            # on one host the record is the destination's too, in revert_resize
            self.runner.finish("resize_revert_source", uuid, expected_vm_state=states.RESIZED,
                               vm_state=mig.old_vm_state,
                               power_state=power_state(self.driver, inst))
            self.db.migration_update(migration_id, status=MS.REVERTED)
        self.runner.run("resize_revert_source", ctxt, uuid, work, lock=not same, reraise=True)
        return {"migration_id": migration_id}

    # -- destination side ---------------------------------------------------------------

    def prep_resize(self, ctxt, migration, instance, probe):
        uuid, same = migration["instance_uuid"], migration["source_host"] == self.host
        shared = self.peers.sees_probe(probe)
        ref = virt_driver.Instance.ref(uuid)
        new, old = migration["new_flavor"], migration["old_flavor"]
        vols, formats = instance.get("volumes"), instance["disk_formats"]
        request = claim_request(new, vols, formats, disks_local=not shared)
        if same:                                  # on one host only the growth counts
            request -= claim_request(old, vols, formats, disks_local=not shared)
        with self.tracker.claim(request, f"instance {uuid} ({migration['migration_type']})"):
            if not same:
                if self.peers.find(uuid) is not None:
                    raise exception.InvalidRequest(f"instance {uuid} is on {self.host} already")
                if not shared and self.driver.has_instance_files(ref):
                    raise exception.InvalidRequest(
                        f"instance {uuid} has files on {self.host} without an instance: "
                        "a leftover")
            if not same:
                self.peers.record_incoming(instance, "resize_destination",
                                           flavor=migration["new_flavor"])
        try:
            self.db.migration_create(**migration, status=MS.PRE_MIGRATING,
                                     shared_storage=shared)
            inst = self.db.instance_get(uuid)
            files = self.images.files_for(inst, inst.image_meta)   # the bases, fetched now
            answer = {"shared_storage": shared}
            if not shared:
                bound = min(self.driver.free_disk_bytes(),
                            disk_bytes_bound(migration["old_flavor"], files.root.virtual_size))
                receiver = disk_transfer.Receiver(
                    self.driver.receive_dir(ref), self.driver.migration_disk_names(), bound,
                    self._transfer_address(),
                    timeout=self.conf.migration_transfer_timeout)
                self._receivers[migration["id"]] = receiver
                answer["transfer"] = receiver.offer()
            return answer
        except Exception:
            if not same:
                self.db.instance_purge(uuid)
            raise

    def _find_live(self, uuid):
        try:
            return self.db.instance_get(uuid)
        except exception.InstanceNotFound:
            return None

    def _transfer_address(self):
        return (self.conf.migration_transfer_address
                or self.conf.libvirt.live_migration_inbound_addr or socket.gethostname())

    def finish_resize(self, ctxt, migration_id):
        mig = self.db.migration_get(migration_id)
        uuid, same = mig.instance_uuid, mig.source_host == self.host
        def work(inst, record):
            # on one host the record is the source's, which took resize_migrated
            self.runner.advance("resize_destination", uuid, states.RESIZE_FINISH,
                                after=(states.RESIZE_PREP, states.RESIZE_MIGRATED))
            vi = virt_instance(inst, flavor=virt_driver.Flavor(**mig.new_flavor),
                               disk_formats=mig.old_disk_formats)
            if mig.shared_storage:
                self.driver.copy_aside_disks(vi)
            else:
                receiver = self._receivers.pop(migration_id, None)
                if receiver is None:
                    raise exception.ComputeError(f"no disk transfer for migration "
                                                 f"{migration_id} on {self.host}")
                receiver.wait(self.conf.migration_transfer_timeout)
            files = self.images.files_for(inst, inst.image_meta)
            try:        # another host's bytes: inspected before anything opens them
                self.driver.check_arrived_disks(vi, virt_driver.Flavor(**mig.old_flavor), files)
            except image_errors.UnsafeImage as e:
                raise exception.UnsafeImage(str(e)) from None
            record.event("disks_ready")
            faults.point("resize_destination.received")
            network_info = self.networking.plug_vifs(inst)
            volume_attachments.connect_all(self.driver, inst)
            formats = self.driver.finish_migration(
                vi, virt_driver.Flavor(**mig.old_flavor), inst.image_meta, files,
                network_info, mig.old_vm_state == states.ACTIVE)
            faults.point("resize_destination.defined")
            record.finish_with(flavor=mig.new_flavor, disk_formats=formats)
        self.runner.run("resize_destination", ctxt, uuid, work, lock=not same, reraise=True)
        self.db.migration_update(migration_id, status=MS.FINISHED)
        return view(self.db.instance_get(uuid))

    def abort_resize_at_destination(self, ctxt, migration_id):
        """Undo prep_resize and finish_resize (the source puts the instance
        back), under the instance's lock: a finish_resize in progress here
        ends first.  Disks on shared storage are left to the source, which
        may still be using them."""
        try:
            mig = self.db.migration_get(migration_id)
        except exception.MigrationNotFound:
            return {"migration_id": migration_id}
        receiver = self._receivers.pop(migration_id, None)
        if receiver is not None:
            receiver.close()
        if mig.source_host != self.host:
            def work(inst, record):
                self._drop_incoming(inst, mig)
                self.db.instance_purge(inst.uuid)
            if self.peers.find(mig.instance_uuid) is not None:
                try:
                    self.runner.run("resize_abort", ctxt, mig.instance_uuid, work,
                                    reraise=True)
                except exception.InstanceNotFound:
                    pass                # dropped while the abort waited for the lock
        self.db.migration_update(migration_id, status=MS.ERROR)
        return {"migration_id": migration_id}

    def _drop_incoming(self, inst, mig):
        """The destination's guest, its disks (unless shared: the source
        moves its own back over them) and its VIFs."""
        self.driver.destroy(virt_instance(inst), [], destroy_disks=not mig.shared_storage)
        if mig.source_host != self.host:     # a resize here: the source's guest needs them
            volume_attachments.forget_all(self.driver, inst)
        self.networking.unplug_vifs(inst)

    # -- client -> destination: confirm or revert ---------------------------------------

    def accept_decision(self, uuid, op_name):
        """The finished migration of uuid that ends here; the instance takes
        confirm_resize's or revert_resize's task state by compare-and-swap."""
        finished = [m for m in self.db.migrations(uuid, status=(MS.FINISHED,))
                    if m.dest_host == self.host]
        if not finished:
            raise exception.InstanceInvalidState(
                f"instance {uuid} has no resize to confirm or revert on {self.host}")
        self.runner.accept(op_name, uuid)
        return finished[0]

    def resume_confirm(self, ctxt, uuid):
        """For a restart: a confirm of an instance already in its task
        state, taken again."""
        self._resume_decision(ctxt, uuid, "confirm_resize")

    def resume_revert(self, ctxt, uuid):
        self._resume_decision(ctxt, uuid, "revert_resize")

    def _resume_decision(self, ctxt, uuid, op_name):
        finished = [m for m in self.db.migrations(uuid, status=(MS.FINISHED,))
                    if m.dest_host == self.host]
        if not finished:
            self.runner.settle(optable.TABLE[op_name], uuid)
            return
        getattr(self, op_name)(ctxt, uuid, finished[0].id)

    def confirm_resize(self, ctxt, uuid, migration_id):
        """A failure leaves the instance resized (its row), to ask again."""
        mig = self.db.migration_get(migration_id)

        def work(inst, record):
            # durable here before the source drops its copy (the transfer
            # does not fsync: until now the source's copy was the safe one)
            self.driver.sync_disks(virt_instance(inst))
            faults.point("confirm_resize.synced")
            self.peers.api.confirm_resize_at_source(mig.source_host, migration_id=migration_id)
            self.runner.finish("confirm_resize", uuid, vm_state=mig.old_vm_state,
                               power_state=power_state(self.driver, inst))
            self.db.migration_update(migration_id, status=MS.CONFIRMED)
        self.runner.run("confirm_resize", ctxt, uuid, work)

    def revert_resize(self, ctxt, uuid, migration_id):
        mig = self.db.migration_get(migration_id)

        def work(inst, record):
            self._drop_incoming(inst, mig)
            faults.point("revert_resize.dropped")
            self.peers.api.finish_revert_resize(mig.source_host, migration_id=migration_id)
            self.db.migration_update(migration_id, status=MS.REVERTED)
            if mig.source_host != self.host:
                self.db.instance_purge(uuid)
        self.runner.run("revert_resize", ctxt, uuid, work)

    # -- agent restart ------------------------------------------------------------------

    def recover(self, inst):
        """init_host: a resize this agent was in the middle of.  As its
        source: if the destination says it finished the move, the instance
        is resized there; otherwise the destination is told to drop its
        part and the instance is put back here as it was.  As the
        destination: an unfinished arrival waits for its source, which
        aborts it when its calls fail; a confirm or revert in flight is
        cleared so the client may ask again."""
        uuid, task = inst.uuid, inst.task_state
        migs = [m for m in self.db.migrations(uuid) if m.status not in
                (MS.ERROR, MS.CONFIRMED, MS.REVERTED)]
        mig = migs[0] if migs else None
        if task in SOURCE_TASKS and mig is not None and mig.source_host == self.host:
            if task == states.RESIZE_MIGRATED and self._finished_at_destination(mig):
                LOG.warning("instance %s: %s finished on %s while this agent was down",
                            uuid, mig.migration_type, mig.dest_host)
                self.db.migration_update(mig.id, status=MS.FINISHED)
                self.runner.finish("resize", uuid, checked=False, vm_state=states.RESIZED,
                                   progress=None, power_state=virt_driver.NOSTATE)
                return
            LOG.warning("instance %s: %s interrupted by an agent restart; putting it back",
                        uuid, mig.migration_type)
            aborted = self._abort_at_destination(self.peers.api, mig)
            self.db.migration_update(mig.id, status=MS.ERROR,
                                     message="interrupted by an agent restart")
            if task == states.RESIZE_MIGRATED and not aborted:
                self._stranded(uuid, mig)
                self.runner.finish("resize", uuid, checked=False, progress=None)
                return
            if task != states.RESIZE_PREP:        # shut down, maybe moved aside: back up
                self._restore_here(uuid, mig)
            inst = self.db.instance_get(uuid)
            self.runner.finish("resize", uuid, checked=False, vm_state=mig.old_vm_state,
                               progress=None, power_state=power_state(self.driver, inst))
        elif mig is not None and mig.dest_host == self.host:
            self._recover_arrival(inst, mig)
        else:
            LOG.warning("instance %s: %s interrupted with no migration to resume; settled",
                        uuid, task)
            self.runner.finish("resize", uuid, checked=False, progress=None)

    def _recover_arrival(self, inst, mig):
        """Destination, at start, with an arrival left half-made: the source
        says who owns the guest.  Finished there: it is resized here.
        Otherwise (still waiting on this host, aborted, or failed) what
        arrived is dropped: the source puts the instance back when its call
        fails, and no guest runs on two hosts."""
        try:
            theirs = self.peers.api.list_migrations(mig.source_host,
                                                    instance_uuid=inst.uuid)
        except Exception as e:       # noqa: BLE001 - the source aborts it when it is back
            LOG.warning("instance %s: arriving by %s, interrupted; %s did not answer (%s)",
                        inst.uuid, mig.migration_type, mig.source_host, e)
            return
        status = next((m["status"] for m in theirs if m["id"] == mig.id), None)
        if status == MS.FINISHED and power_state(self.driver, inst) != virt_driver.NOSTATE:
            LOG.warning("instance %s: %s finished; settling here", inst.uuid, mig.migration_type)
            self.runner.finish("resize_destination", inst.uuid, checked=False,
                               vm_state=states.RESIZED, progress=None, flavor=mig.new_flavor,
                               power_state=power_state(self.driver, inst))
            return
        LOG.warning("instance %s: arriving by %s, interrupted (the source says %s); dropping "
                    "what arrived", inst.uuid, mig.migration_type, status)
        self._drop_incoming(inst, mig)
        self.db.instance_purge(inst.uuid)
        self.db.migration_update(mig.id, status=MS.ERROR,
                                 message="interrupted by an agent restart")

    def _finished_at_destination(self, mig):
        """The destination says it finished mig (the source died waiting)."""
        if mig.dest_host == self.host:
            return False
        try:
            theirs = self.peers.api.list_migrations(mig.dest_host,
                                                      instance_uuid=mig.instance_uuid)
        except Exception as e:       # noqa: BLE001 - unknown: put it back here
            LOG.warning("migration %s: %s did not answer: %s", mig.id, mig.dest_host, e)
            return False
        return any(m["id"] == mig.id and m["status"] == MS.FINISHED for m in theirs)

    def list_migrations(self, uuid=None):
        return [migration_view(m) for m in self.db.migrations(uuid)]
