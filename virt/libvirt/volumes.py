"""Volumes on libvirt: a volume's credential as a libvirt secret (private,
kept across libvirtd restarts, its value set through the API and never
written where another user reads it), and the network disk attached to or
detached from a guest, found again by its serial (the volume id) so that
doing either twice is harmless."""
import time

from virt import errors
from virt.libvirt import builder
from virt.libvirt.xml.domain import Domain

SECRET_XML = """<secret ephemeral='no' private='yes'>
  <uuid>{uuid}</uuid>
  <description>compute-agent: volume {volume} of instance {instance}</description>
  <usage type='{type}'>{usage}</usage>
</secret>"""
# what names the secret's use, per secret type (libvirt's <usage> forms)
USAGE = {"iscsi": "<target>compute-agent/{instance}/{volume}</target>",
         "ceph": "<name>compute-agent/{instance}/{volume}</name>"}


def attached_serials(xml):
    """{serial: target dev} of the network disks in a domain XML."""
    return {d.serial: d.target_dev for d in Domain.parse(xml).devices.disks
            if d.type == "network" and d.serial}


class Volumes:
    def __init__(self, host):
        self.host = host

    def store_secret(self, instance_uuid, volume, value):
        xml = SECRET_XML.format(
            uuid=volume.secret_uuid, volume=volume.volume_id, instance=instance_uuid,
            type=volume.secret_type,
            usage=USAGE[volume.secret_type].format(instance=instance_uuid,
                                                   volume=volume.volume_id))
        self.host.define_secret(xml, value)

    def forget_secret(self, volume):
        if volume.secret_uuid:
            self.host.undefine_secret(volume.secret_uuid)

    def attach(self, guest, instance_uuid, volume, secret_value):
        if volume.volume_id in attached_serials(guest.inactive_xml()):
            return
        if volume.secret_uuid:
            self.store_secret(instance_uuid, volume, secret_value)
        try:
            guest.attach_device(builder.build_volume_disk(volume).to_xml(),
                                live=guest.is_active())
        except errors.VirtError as e:
            self.forget_secret(volume)
            raise errors.VolumeAttachFailed(
                f"volume {volume.volume_id} ({volume.protocol} {volume.name}): {e}") from None

    def detach(self, guest, volume, timeout):
        live = guest.is_active()
        disk = builder.build_volume_disk(volume).to_xml()
        in_config = volume.volume_id in attached_serials(guest.inactive_xml())
        in_live = live and volume.volume_id in attached_serials(guest.xml_desc())
        if in_config or in_live:
            guest.detach_device(disk, live=in_live, config=in_config)
        deadline = time.monotonic() + timeout
        while live and volume.volume_id in attached_serials(guest.xml_desc()):
            if time.monotonic() > deadline:
                raise errors.VirtError(
                    f"the guest did not release volume {volume.volume_id} within {timeout} s; "
                    "it is gone from the definition and leaves on the next hard reboot")
            time.sleep(0.1)
        self.forget_secret(volume)

