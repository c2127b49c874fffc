"""Live migration: the destination's domain XML (a pure rewrite of the
source's) and the libvirt call.

The running domain's XML is the only safe starting point (device
addresses, aliases and the CPU must match what the guest already sees), so
the destination definition is that XML with every host path swapped for
the destination's: disk sources, kernel and initrd, and the console log;
the serial console server moves to the port the destination holds for it,
and the VNC server to the destination's console address.
The guest's CPU, as the destination must provide it, is taken from the
same XML (cpu_to_compare); what a source sends is re-serialized before
libvirt compares it (clean_cpu_xml).
"""
import logging
import os
import threading
import time

import libvirt
from lxml import etree

from virt import errors
from virt.libvirt.xml.domain import Domain

LOG = logging.getLogger(__name__)
FLAGS = (libvirt.VIR_MIGRATE_LIVE | libvirt.VIR_MIGRATE_PEER2PEER
         | libvirt.VIR_MIGRATE_PERSIST_DEST | libvirt.VIR_MIGRATE_UNDEFINE_SOURCE)


def _swap(path, mapping):
    if path is None:
        return None
    for old, new in mapping.items():
        if path == old or path.startswith(old.rstrip("/") + "/"):
            return new + path[len(old):]
    return path


def _serial_for_destination(serial, listen):
    """A TCP serial console server moved to the destination's (host, port);
    with no listen (consoles off there), the console becomes its log file."""
    if serial.type != "tcp" or serial.source_mode != "bind":
        return
    if listen is not None:
        serial.source_host, serial.source_service = listen[0], str(listen[1])
        return
    log = serial.log_file
    serial.source_mode = serial.source_host = serial.source_service = None
    serial.source_tls = serial.protocol = serial.log_file = serial.log_append = None
    serial.type, serial.source_path, serial.source_append = "file", log, True


def _vnc_for_destination(graphics, address):
    if graphics.type != "vnc" or address is None:
        return
    graphics.listen = address
    if graphics.listen_address is not None:
        graphics.listen_address = address


def rewrite_for_destination(xml, mapping, serial_listen=None, vnc_listen=None):
    """xml with each path (or path prefix) in mapping replaced by its value,
    the serial console server moved to serial_listen (host, port) and the
    VNC server to the destination's vnc_listen address (None: kept).
    mapping: {source path or directory: destination path or directory}."""
    dom = Domain.parse(xml)
    if dom.os is not None:
        dom.os.kernel = _swap(dom.os.kernel, mapping)
        dom.os.initrd = _swap(dom.os.initrd, mapping)
    # every file a device names: disks and their backing chains, serial
    # ports and the <console> libvirt mirrors from them, their logs
    devices = dom.node.find("devices")
    for el in devices.iter("source", "log") if devices is not None else ():
        for attr in ("file", "path"):
            if el.get(attr) is not None:
                el.set(attr, _swap(el.get(attr), mapping))
    for serial in dom.devices.serials:
        _serial_for_destination(serial, serial_listen)
    for graphics in dom.devices.graphics:
        _vnc_for_destination(graphics, vnc_listen)
    return dom.to_xml()


def cpu_to_compare(live_xml, host_cpu):
    """The CPU a destination must provide for the running guest whose
    domain XML is live_xml: its <cpu> when that names a model (custom, or
    host-model as libvirt expanded it at start); the source host's CPU
    (host_cpu(), called only then) for host-passthrough; None when the
    guest runs the hypervisor's default CPU, which every host provides."""
    cpu = Domain.parse(live_xml).cpu
    if cpu is None:
        return None
    if cpu.mode == "host-passthrough":
        return host_cpu()
    return cpu.to_xml(pretty=False) if cpu.model else None


def clean_cpu_xml(text):
    """text (from another host, so untrusted) re-serialized as one <cpu>
    element; raises CPUIncompatible for anything else (a DOCTYPE, entities,
    another root element, unreadable XML)."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    try:
        root = etree.fromstring(text.encode(), parser)
    except etree.XMLSyntaxError as e:
        raise errors.CPUIncompatible(f"unreadable CPU description: {e}") from None
    if root.tag != "cpu" or root.getroottree().docinfo.doctype:
        raise errors.CPUIncompatible("the CPU description must be one <cpu> element")
    return etree.tostring(root, encoding="unicode")


TLS_FILES = ("ca-cert.pem", "server-cert.pem", "server-key.pem", "client-cert.pem",
             "client-key.pem")


def missing_tls_files(cert_dir):
    """The files QEMU's migration TLS needs that cert_dir lacks, or whose
    certificates this agent cannot read (the keys are QEMU's: they must
    exist); [] when all are there."""
    if not cert_dir:
        return list(TLS_FILES)
    missing = []
    for name in TLS_FILES:
        path = os.path.join(cert_dir, name)
        mode = os.F_OK if name.endswith("-key.pem") else os.R_OK
        if not os.access(path, mode):
            missing.append(name)
    return missing


def has_tls_files(cert_dir):
    """Whether cert_dir holds every file QEMU's migration TLS needs."""
    return not missing_tls_files(cert_dir)


TLS_FAILURE_WORDS = ("certificate", "tls handshake", "gnutls", "x509")


def is_tls_failure(message):
    """Whether a failed migration's error is its TLS handshake's."""
    text = message.lower()
    return any(word in text for word in TLS_FAILURE_WORDS)


def copied_disks(xml):
    """Target devs a block migration copies: the guest's local, writable
    disks with a source.  Network disks (volumes) are never copied: the
    destination's QEMU opens the same volume, and copying would write it
    onto itself; a read-only config drive is made anew there."""
    return [d.target_dev for d in Domain.parse(xml).devices.disks
            if d.type == "file" and d.source_file is not None
            and not d.readonly and d.device == "disk"]


def flags(block, auto_converge=False, post_copy=False, unsafe=False, tls=False):
    f = FLAGS
    if block:
        f |= libvirt.VIR_MIGRATE_NON_SHARED_INC
    if auto_converge:
        f |= libvirt.VIR_MIGRATE_AUTO_CONVERGE
    if post_copy:
        f |= libvirt.VIR_MIGRATE_POSTCOPY
    if unsafe:
        f |= libvirt.VIR_MIGRATE_UNSAFE
    if tls:
        f |= libvirt.VIR_MIGRATE_TLS
    return f


def flag_names(value):
    """The VIR_MIGRATE_* names set in value, sorted (pure; for the log)."""
    return sorted(name for name in dir(libvirt) if name.startswith("VIR_MIGRATE_")
                  and not name.startswith("VIR_MIGRATE_PARAM_")
                  and isinstance(getattr(libvirt, name), int)
                  and getattr(libvirt, name) and value & getattr(libvirt, name)
                  == getattr(libvirt, name) and bin(getattr(libvirt, name)).count("1") == 1)


def downtime_steps(max_downtime_ms, steps, delay_s, memory_gib):
    """[(seconds after start, max downtime ms)]: Nova's schedule, raising
    the allowed downtime in `steps` steps from max/steps to max, one step
    every delay_s seconds per GiB of guest memory (at least one GiB)."""
    delay = delay_s * max(memory_gib, 1.0)
    base = max_downtime_ms / steps
    offset = (max_downtime_ms - base) / steps
    return [(delay * i, int(base + offset * i)) for i in range(steps + 1)]


def run_and_monitor(guest, dest_uri, params, flags, schedule, completion_timeout, control,
                    progress, post_copy=False, poll=0.2):
    """Run the migration on a thread and watch it: raise the allowed
    downtime per schedule, abort at completion_timeout or on request,
    force completion on request (post-copy if allowed, else pause the
    guest so memory converges), report progress(percent).  Raises what
    the migration raised (the guest then still runs here)."""
    failure = []

    def migrate():
        try:
            guest.migrate(dest_uri, params, flags)
        except Exception as e:       # noqa: BLE001 - re-raised below
            failure.append(e)
    thread = threading.Thread(target=migrate, name="live-migration", daemon=True)
    start = time.monotonic()
    thread.start()
    schedule, aborted, forced = list(schedule), None, False
    while thread.is_alive():
        thread.join(poll)
        if not thread.is_alive():
            break
        elapsed = time.monotonic() - start
        try:
            while schedule and elapsed >= schedule[0][0]:
                guest.set_max_downtime(schedule.pop(0)[1])
            if aborted is None and (control.abort.is_set() or elapsed > completion_timeout):
                aborted = "aborted on request" if control.abort.is_set() else \
                    f"not complete after {completion_timeout:.0f} s"
                LOG.warning("live migration %s; aborting", aborted)
                guest.abort_job()
            if control.force_complete.is_set() and not forced:
                forced = True
                if post_copy:
                    guest.start_post_copy()
                else:
                    guest.pause()
            info = guest.job_info()
            total = info.get("data_total") or info.get("memory_total") or 0
            remaining = info.get("data_remaining", info.get("memory_remaining", 0))
            if total:
                progress(max(0, min(100, 100 - remaining * 100 // total)))
        except errors.VirtError as e:
            LOG.debug("migration monitor: %s", e)     # the job may have just ended
    if failure:
        if aborted:
            raise errors.VirtError(f"live migration {aborted}: {failure[0]}")
        raise failure[0]
    return time.monotonic() - start
