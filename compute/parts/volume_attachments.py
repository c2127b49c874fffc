"""Volume attachments: attach and detach by their rows of compute.core.optable,
on running and stopped guests.  The record keeps each attached volume
({volume_id, device, connection_info}); every definition of the guest
from the record (hard reboot, start, rescue) carries its volumes, so they
are connected again wherever the guest is defined; every move (live
and cold migration, evacuate, unshelve) stores the credentials on the
host that takes the guest before it is defined there, and the host that
lets it go forgets them.

The attach's volume (its device chosen here, after the instance's disks
and its other volumes) is written to task_args by the accepting CAS, so
a restart attaches it again; both steps find the volume by its serial in
the definition and do nothing twice.  A detach removes the disk from the
guest and the definition, then its credential; a delete forgets every
credential and never touches the volume's data."""
from compute.core import exception, faults
from compute.core.instance import virt_instance
from compute.core.volume_rules import check, next_device
from virt.driver import BOOT_DEVICE
from volume import base as volume_base


def connect_all(driver, inst):
    """Store the credential of each of inst's volumes on this host."""
    vi = virt_instance(inst)          # its volumes in the record's order
    for v, disk in zip(inst.volumes or (), vi.volumes, strict=True):
        driver.connect_volume(vi, disk, volume_base.secret_value(v))


def forget_all(driver, inst):
    """Remove the credential of each of inst's volumes from this host (the
    volumes' data is never touched)."""
    vi = virt_instance(inst)
    for disk in vi.volumes:
        driver.forget_volume(vi, disk)


class VolumeAttachments:
    def __init__(self, conf, db, driver, runner):
        self.conf, self.db, self.driver, self.runner = conf, db, driver, runner

    def accept_attach(self, uuid, volume_id, connection_info):
        """Check the connection info with its driver and that the volume is
        not attached; take ATTACHING_VOLUME with the volume; its device."""
        check(volume_id, connection_info, self.conf.volume_allowed_networks)
        inst = self.db.instance_get(uuid)
        if any(v["volume_id"] == volume_id for v in inst.volumes or ()):
            raise exception.InvalidRequest(f"volume {volume_id} is attached to {uuid} already")
        volume = {"volume_id": volume_id, "device": next_device(inst.volumes or ()),
                  "connection_info": connection_info}
        self.runner.accept("attach_volume", uuid, task_args={"volume": volume})
        return volume["device"]

    def attach(self, ctxt, uuid):
        def work(inst, record):
            volume = inst.task_args["volume"]
            disk = volume_base.volume_disk(uuid, volume)
            self.driver.attach_volume(virt_instance(inst), disk,
                                      volume_base.secret_value(volume))
            faults.point("attach_volume.attached")
            if not any(v["volume_id"] == volume["volume_id"] for v in inst.volumes or ()):
                self.db.instance_update(uuid, volumes=[*(inst.volumes or ()), volume])
            record.event("attached", f"volume {volume['volume_id']} as {volume['device']} "
                                     f"({disk.protocol} {disk.name})")
        self.runner.run("attach_volume", ctxt, uuid, work)

    def _recorded(self, inst, volume_id):
        volume = next((v for v in inst.volumes or () if v["volume_id"] == volume_id), None)
        if volume is None:
            raise exception.InvalidRequest(f"volume {volume_id} is not attached to {inst.uuid}")
        return volume

    def accept_extend(self, uuid, volume_id, new_size):
        """The volume attached, and new_size (bytes) not below what the
        running guest sees (a shrink would cut the volume's data); take
        EXTENDING_VOLUME with both."""
        inst = self.db.instance_get(uuid)
        volume = self._recorded(inst, volume_id)
        seen = self.driver.volume_capacity(virt_instance(inst),
                                           volume_base.volume_disk(uuid, volume))
        if seen is not None and new_size < seen:
            raise exception.InvalidRequest(
                f"volume {volume_id} is {seen} bytes in the guest: {new_size} would shrink it")
        self.runner.accept("extend_volume", uuid,
                           task_args={"volume_id": volume_id, "new_size": new_size})

    def extend(self, ctxt, uuid):
        def work(inst, record):
            args = inst.task_args
            volume = self._recorded(inst, args["volume_id"])
            told = self.driver.extend_volume(virt_instance(inst),
                                             volume_base.volume_disk(uuid, volume),
                                             args["new_size"])
            faults.point("extend_volume.extended")
            record.event("extended", f"volume {args['volume_id']} to {args['new_size']} bytes"
                         + ("" if told else " (the guest sees it when it next starts)"))
        self.runner.run("extend_volume", ctxt, uuid, work)

    def accept_detach(self, uuid, volume_id):
        volume = self._recorded(self.db.instance_get(uuid), volume_id)
        if volume["device"] == BOOT_DEVICE:
            raise exception.InvalidRequest(f"volume {volume_id} is the root disk of {uuid}: "
                                           "a boot volume is not detached")
        self.runner.accept("detach_volume", uuid, task_args={"volume_id": volume_id})

    def detach(self, ctxt, uuid):
        def work(inst, record):
            volume_id = inst.task_args["volume_id"]
            volume = next((v for v in inst.volumes or () if v["volume_id"] == volume_id), None)
            if volume is not None:
                self.driver.detach_volume(virt_instance(inst),
                                          volume_base.volume_disk(uuid, volume),
                                          self.conf.volume_detach_timeout)
                faults.point("detach_volume.detached")
                self.db.instance_update(uuid, volumes=[v for v in inst.volumes
                                                       if v["volume_id"] != volume_id])
            record.event("detached", f"volume {volume_id}")
        self.runner.run("detach_volume", ctxt, uuid, work)
