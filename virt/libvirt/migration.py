"""Live migration: the destination's domain XML (a pure rewrite of the
source's) and the libvirt call.

The running domain's XML is the only safe starting point (device
addresses, aliases and the CPU must match what the guest already sees), so
the destination definition is that XML with every host path swapped for
the destination's: disk sources, kernel and initrd, and the console log.
"""
import libvirt

from virt.libvirt.xml.domain import Domain

FLAGS = (libvirt.VIR_MIGRATE_LIVE | libvirt.VIR_MIGRATE_PEER2PEER
         | libvirt.VIR_MIGRATE_PERSIST_DEST | libvirt.VIR_MIGRATE_UNDEFINE_SOURCE)


def _swap(path, mapping):
    if path is None:
        return None
    for old, new in mapping.items():
        if path == old or path.startswith(old.rstrip("/") + "/"):
            return new + path[len(old):]
    return path


def rewrite_for_destination(xml, mapping):
    """xml with each path (or path prefix) in mapping replaced by its value.
    mapping: {source path or directory: destination path or directory}."""
    dom = Domain.parse(xml)
    if dom.os is not None:
        dom.os.kernel = _swap(dom.os.kernel, mapping)
        dom.os.initrd = _swap(dom.os.initrd, mapping)
    for disk in dom.devices.disks:
        disk.source_file = _swap(disk.source_file, mapping)
    for serial in dom.devices.serials:
        serial.source_path = _swap(serial.source_path, mapping)
        serial.log_file = _swap(serial.log_file, mapping)
    return dom.to_xml()


def flags(block, auto_converge=False, post_copy=False, unsafe=False):
    f = FLAGS
    if block:
        f |= libvirt.VIR_MIGRATE_NON_SHARED_INC
    if auto_converge:
        f |= libvirt.VIR_MIGRATE_AUTO_CONVERGE
    if post_copy:
        f |= libvirt.VIR_MIGRATE_POSTCOPY
    if unsafe:
        f |= libvirt.VIR_MIGRATE_UNSAFE
    return f
