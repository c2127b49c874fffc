"""Volume drivers: how a Cinder-style connection_info ({driver_volume_type,
data}) becomes a disk QEMU opens with its own initiator (libiscsi,
librbd), so no device ever appears on the host.  A driver checks the data
(everything in it came over RPC), describes the disk, and names the
credential the disk needs; drivers are found by driver_volume_type
through the entry points compute.volume_drivers, like the VIF plugins."""
import abc
import functools
import uuid as uuidlib

from stevedore import driver as stevedore_driver

from virt.driver import VolumeDisk

NAMESPACE = uuidlib.UUID("6f0c4d43-7d0a-4b1c-9d7e-2b6a5f3e9c11")


class VolumeDriver(abc.ABC):
    secret_type = None          # libvirt's secret usage type, when it takes a credential

    @abc.abstractmethod
    def check(self, data):
        """Raise ValueError naming what is wrong with connection_info's data."""

    @abc.abstractmethod
    def source(self, data):
        """(protocol, name, ((address, port), ...)) of the network disk."""

    def credential(self, data):
        """(username, the secret's value as bytes) the disk logs in with,
        or None."""
        return None


@functools.cache
def load(driver_volume_type):
    """The driver of that type; ValueError when no driver is installed for it."""
    try:
        return stevedore_driver.DriverManager("compute.volume_drivers", driver_volume_type,
                                              invoke_on_load=True).driver
    except Exception:      # noqa: BLE001 - stevedore's NoMatches and load errors alike
        raise ValueError(f"no volume driver for driver_volume_type {driver_volume_type!r}"
                         ) from None


def check(connection_info):
    """Raise ValueError unless a driver takes this connection_info."""
    load(connection_info["driver_volume_type"]).check(connection_info["data"])


def servers(connection_info):
    """((address, port), ...) the volume's disk connects to (checked)."""
    return tuple(load(connection_info["driver_volume_type"]).source(
        connection_info["data"])[2])


def volume_disk(instance_uuid, volume):
    """The VolumeDisk of a recorded volume ({volume_id, device,
    connection_info}); its secret's uuid is derived from the instance and
    the volume, so every definition names the same secret."""
    info = volume["connection_info"]
    drv = load(info["driver_volume_type"])
    protocol, name, hosts = drv.source(info["data"])
    cred = drv.credential(info["data"])
    return VolumeDisk(
        volume_id=volume["volume_id"], device=volume["device"], protocol=protocol, name=name,
        hosts=tuple(hosts), username=cred[0] if cred else None,
        secret_type=drv.secret_type if cred else None,
        secret_uuid=str(uuidlib.uuid5(NAMESPACE, f"{instance_uuid}/{volume['volume_id']}"))
        if cred else None)


def secret_value(volume):
    """The credential's value (bytes) of a recorded volume, or None."""
    info = volume["connection_info"]
    cred = load(info["driver_volume_type"]).credential(info["data"])
    return cred[1] if cred else None
