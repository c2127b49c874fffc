"""The libvirt domainsnapshot XML the agent builds: an external disk-only
snapshot of one disk, every other disk left out."""
from virt.libvirt.xml.base import Children, Element, Prop


class SnapshotDisk(Element):
    TAG = "disk"
    name = Prop("@name")
    snapshot = Prop("@snapshot")
    driver_type = Prop("driver/@type")
    source_file = Prop("source/@file")


class DomainSnapshot(Element):
    TAG = "domainsnapshot"
    disks = Children(SnapshotDisk, "disks/disk")
