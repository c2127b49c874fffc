"""An instance record as the other layers see it: the driver's view of it,
its guest's power state, and the JSON answer of get_instance.  Plain
functions, shared by every part of the manager."""
from compute.core import instance_data
from virt import driver as virt_driver
from virt import errors as virt_errors
from volume import base as volume_base


def config_drive(inst, admin_pass=None):
    """The files of an instance's config drive, from its record (None
    when it has none).  The admin password, never recorded, is only in the
    drive of the build that was given it."""
    guest = inst.guest_data or {}
    if not guest.get("config_drive"):
        return None
    return instance_data.drive_files(inst.uuid, inst.display_name, inst.metadata_, guest,
                                     inst.networks, admin_pass)


def virt_instance(inst, **changes):
    """The driver's view of an instance record (fields in changes
    replaced: a resize's new flavor, say)."""
    values = dict(
        uuid=inst.uuid, display_name=inst.display_name,
        flavor=virt_driver.Flavor(**inst.flavor), image_id=inst.image_ref,
        created_at=inst.created_at.strftime("%Y-%m-%d %H:%M:%S") if inst.created_at else "",
        disk_formats=dict(inst.disk_formats or {}), config_drive=config_drive(inst),
        volumes=tuple(volume_base.volume_disk(inst.uuid, v) for v in inst.volumes or ()))
    values.update(changes)
    return virt_driver.Instance(**values)


def power_state(driver, inst):
    """The guest's power state, NOSTATE when it has no guest here."""
    try:
        return driver.get_info(virt_instance(inst)).power_state
    except virt_errors.InstanceNotFound:
        return virt_driver.NOSTATE


def iso(ts):
    return ts.isoformat() + "Z" if ts else None


def view(inst, fault=None):
    """The JSON answer of get_instance/list_instances."""
    return {
        "uuid": inst.uuid, "name": inst.display_name, "host": inst.host,
        "vm_state": inst.vm_state, "task_state": inst.task_state, "progress": inst.progress,
        "power_state": virt_driver.POWER_STATE_NAMES.get(inst.power_state, "NOSTATE"),
        "flavor": inst.flavor, "image_id": inst.image_ref, "metadata": inst.metadata_,
        "config_drive": bool((inst.guest_data or {}).get("config_drive")),
        "created_at": iso(inst.created_at), "launched_at": iso(inst.launched_at),
        "updated_at": iso(inst.updated_at),
        "shelved_image_id": inst.shelved_image_id,
        "volumes": [v["volume_id"] for v in inst.volumes or ()],
        "fault": fault.message if fault is not None else None,
    }
