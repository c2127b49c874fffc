"""Shelving: shelve (the guest off, its root disk uploaded as an image),
shelve-offload (guest, disks, ports, rules, floating addresses and claim
gone from the host; the record stays, SHELVED_OFFLOADED) and unshelve,
by their rows of compute.core.optable.

- Unshelve of a SHELVED instance powers its guest on again.  Unshelve of
  an offloaded one claims the host and spawns from the shelve's image with
  the same ports; its root disk is rebased onto the instance's own image,
  so the shelve's image is deleted once the guest runs.
- Unshelve on another host hands the record over: this host accepts
  (UNSHELVING, task_args {"dest": host}); the destination claims, records
  and spawns (take_shelved); then this host drops its record.  A restart
  in between asks the destination whether it took it.
- The shelve's image id is recorded before the image is made, so an
  interrupted shelve keeps an image that is active and makes it anew
  otherwise.
"""
import datetime
import logging
import uuid as uuidlib

from compute.core import exception, faults, optable, states
from compute.core.instance import power_state, virt_instance
from compute.core.resource_tracker import claim_request
from compute.db.models import utcnow
from compute.parts import volume_attachments
from imagecache import errors as image_errors
from imagecache.glance import split_properties
from virt import driver as virt_driver

LOG = logging.getLogger(__name__)
GiB = 1024 ** 3


def expired_shelves(instances, offload_after, now):
    """The SHELVED, idle instances shelved more than offload_after seconds
    ago (pure); none when offload_after is not positive."""
    if offload_after <= 0:
        return []
    limit = datetime.timedelta(seconds=offload_after)
    return [i for i in instances if i.vm_state == states.SHELVED and i.task_state is None
            and now - (i.updated_at or i.created_at) > limit]


class Shelving:
    def __init__(self, conf, db, driver, runner, networking, images, glance, snapshots, peers,
                 tracker, host, submit, power_on):
        self.conf, self.db, self.driver, self.runner = conf, db, driver, runner
        self.networking, self.images, self.glance = networking, images, glance
        self.snapshots, self.peers, self.tracker = snapshots, peers, tracker
        self.host, self.submit = host, submit
        self.power_on = power_on            # Lifecycle.power_on: a shelved guest again

    def _request(self, flavor, volumes):
        """What an unshelve claims: its new disks where this host makes them."""
        return claim_request(flavor, volumes, new_disks_shared=self.driver.new_disks_shared())

    # -- shelve -----------------------------------------------------------------

    def accept_shelve(self, uuid):
        self.runner.accept("shelve", uuid)

    def shelve(self, ctxt, uuid):
        """The guest off and its root disk an image; then, when
        shelved_offload_time is 0, the offload at once."""
        tasks = optable.TABLE["shelve"].tasks

        def work(inst, record):
            if inst.task_state != tasks[0]:          # a resumed shelve starts over
                self.runner.advance("shelve", uuid, tasks[0], after=tasks)
            self._power_off(inst, record)
            faults.point("shelve.powered_off")
            image_id = self._kept_image(inst)
            if image_id is None:
                self.snapshots.check_space(inst)
                image_id = str(uuidlib.uuid4())
                self.db.instance_update(uuid, shelved_image_id=image_id)
                self.snapshots.create_image(inst, image_id, f"{inst.display_name}-shelved")
                faults.point("shelve.image_created")
                self.snapshots.make_image(inst, image_id, record, "shelve")
            record.event("shelved", f"root disk in image {image_id}")
            return True
        at_once = self.conf.shelved_offload_time == 0
        if self.runner.run("shelve", ctxt, uuid, work,
                           then="shelve_offload" if at_once else None) and at_once:
            self.shelve_offload(ctxt, uuid)

    def _power_off(self, inst, record):
        vi, power = virt_instance(inst), power_state(self.driver, inst)
        if power == virt_driver.RUNNING:
            timeout = self.conf.shutdown_timeout
            if timeout and not self.driver.shutdown(vi, timeout,
                                                    self.conf.shutdown_retry_interval):
                record.event("forced_power_off", f"guest still running after {timeout}s")
        self.driver.power_off(vi)

    def _kept_image(self, inst):
        """The image of an earlier, interrupted attempt when it is complete;
        otherwise that image deleted and None."""
        image_id = inst.shelved_image_id
        if not image_id:
            return None
        try:
            if self.glance.show(image_id).get("status") == "active":
                return image_id
        except image_errors.ImageNotFound:
            return None
        self.snapshots.forget_image(image_id)
        return None

    # -- offload ----------------------------------------------------------------

    def offload_now(self, ctxt, uuid):
        try:
            self.runner.accept("shelve_offload", uuid)
        except exception.ComputeError as e:
            LOG.warning("instance %s: not offloaded: %s", uuid, e)
            return
        self.shelve_offload(ctxt, uuid)

    def shelve_offload(self, ctxt, uuid):
        def work(inst, record):
            self.driver.destroy(virt_instance(inst), [], destroy_disks=True)
            self.driver.remove_shared_disks(virt_instance(inst))     # the image holds the root
            volume_attachments.forget_all(self.driver, inst)   # still attached in the record
            faults.point("shelve_offload.destroyed")
            released = [f.address for f in self.db.floating_ips(self.host)
                        if f.instance_uuid == uuid]
            self.db.floating_ip_remove(instance_uuid=uuid)
            self.networking.unplug_vifs(inst)
            record.event("offloaded", "guest, disks and ports removed"
                         + (f"; floating addresses {released} released" if released else ""))
        self.runner.run("shelve_offload", ctxt, uuid, work)

    def offload_expired(self):
        """Periodic: offload what stayed shelved past shelved_offload_time."""
        for inst in expired_shelves(self.db.instance_list(host=self.host),
                                    self.conf.shelved_offload_time, utcnow()):
            self.offload_now({}, inst.uuid)

    # -- unshelve ---------------------------------------------------------------

    def accept_unshelve(self, uuid, dest_host=None, networks=None):
        """Here: claim (for an offloaded instance) and accept; the caller
        submits unshelve (True).  Elsewhere: accept and hand the record
        over now, with the destination's view of the networks when given
        (the call fails, nothing changes, when the destination refuses)."""
        inst = self.db.instance_get(uuid)
        if dest_host in (None, self.host):
            if inst.vm_state == states.SHELVED_OFFLOADED:
                with self.tracker.claim(self._request(inst.flavor, inst.volumes),
                                        f"instance {uuid}"):
                    self.runner.accept("unshelve", uuid, task_args={})
            else:
                self.runner.accept("unshelve", uuid, task_args={})
            return True
        self.peers.check_networks_view(inst, networks)
        self.runner.accept("unshelve_hand_over", uuid, task_args={"dest": dest_host})
        self._hand_over({}, uuid, dest_host, networks)
        return False

    def _hand_over(self, ctxt, uuid, dest, networks):
        def work(inst, record):
            self.peers.api.take_shelved_instance(
                dest, self.peers.record_payload(inst, networks), inst.shelved_image_id,
                self.host)
            faults.point("unshelve.handed_over")
            record.event("handed_over", f"to {dest}")
            self.db.instance_purge(uuid)
        self.runner.run("unshelve_hand_over", ctxt, uuid, work, reraise=True)

    def take_shelved(self, ctxt, instance, shelved_image_id, source_host):
        """Destination: claim, record (offloaded, UNSHELVING), spawn in the
        worker pool."""
        uuid = instance["uuid"]
        if self.peers.find(uuid) is not None:
            raise exception.InvalidRequest(f"instance {uuid} is on {self.host} already")
        if self.driver.has_instance_files(virt_driver.Instance.ref(uuid)):
            raise exception.InvalidRequest(
                f"instance {uuid} has files on {self.host} without an instance: a leftover")
        with self.tracker.claim(self._request(instance["flavor"], instance.get("volumes")),
                                f"instance {uuid}"):
            self.peers.record_incoming(instance, "unshelve",
                                       vm_state=states.SHELVED_OFFLOADED,
                                       shelved_image_id=shelved_image_id,
                                       task_args={"source": source_host})
        self.submit(self.unshelve, ctxt, uuid)
        return {"instance_uuid": uuid}

    def unshelve(self, ctxt, uuid):
        def work(inst, record):
            if inst.vm_state == states.SHELVED:
                self.power_on(inst)
                record.event("powered_on", "the shelved guest again")
            else:
                self._spawn(inst, record)
            if inst.shelved_image_id:
                self.snapshots.forget_image(inst.shelved_image_id)
                self.db.instance_update(uuid, shelved_image_id=None)
        self.runner.run("unshelve", ctxt, uuid, work)

    def _spawn(self, inst, record):
        image_id = inst.shelved_image_id
        if not image_id:
            raise exception.InvalidRequest(f"instance {inst.uuid} has no shelved image")
        meta = split_properties(self.glance.show(image_id))
        root_gb = inst.flavor.get("root_gb", 0)
        shelved = self.images.fetch(image_id, meta, root_gb * GiB if root_gb else None)
        files = self.images.files_for(inst, inst.image_meta)
        network_info = self.networking.plug_vifs(inst)
        try:
            volume_attachments.connect_all(self.driver, inst)
            faults.point("unshelve.prepared")
            formats = self.driver.unshelve(virt_instance(inst), inst.image_meta, files, shelved,
                                           network_info)
            faults.point("unshelve.spawned")
        except Exception:
            self._undo_spawn(inst)
            raise
        self.db.instance_update(inst.uuid, disk_formats=formats, launched_at=utcnow())
        record.event("spawned", f"from image {image_id}, rebased onto {inst.image_ref}")

    def _undo_spawn(self, inst):
        try:
            self.driver.destroy(virt_instance(inst), [], destroy_disks=True)
            self.driver.remove_shared_disks(virt_instance(inst))
            volume_attachments.forget_all(self.driver, inst)
            self.networking.unplug_vifs(inst)
        except Exception:
            LOG.exception("instance %s: cleanup after a failed unshelve failed", inst.uuid)

    def resume_unshelve(self, ctxt, uuid):
        """Agent start: an unshelve here is issued again; a hand-over asks
        the destination whether it took the instance."""
        inst = self.db.instance_get(uuid)
        dest = (inst.task_args or {}).get("dest")
        if dest in (None, self.host):
            return self.unshelve(ctxt, uuid)
        try:
            self.peers.api.get_instance(dest, uuid)
        except exception.InstanceNotFound:
            LOG.warning("instance %s: %s did not take it; it stays offloaded here", uuid, dest)
            self.runner.settle(optable.TABLE["unshelve"], uuid,
                               exception.ComputeError(f"{dest} did not take the instance"))
            return
        except Exception as e:         # noqa: BLE001 - asked again at the next start
            LOG.warning("instance %s: unshelve on %s: no answer (%s); left unshelving",
                        uuid, dest, e)
            return
        LOG.info("instance %s: %s took it before the restart; record dropped", uuid, dest)
        self.db.instance_purge(uuid)
