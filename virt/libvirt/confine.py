"""What the agent may ever ask libvirt to run, checked on the XML itself
just before it goes to libvirt (Host.define, Guest.attach_device, a live
migration's destination XML): pure functions over the XML text.

libvirt's socket is root-equivalent (a domain can pass the host's `/`
through, take the host's disk as a block device, or run any QEMU
argument), so the agent holds itself to a closed set, whatever a payload,
an image property or a bug could make the builder write:

- devices only of a known kind (disks, NICs, serial and console ports,
  the guest agent's channel, input, one VNC server, video, balloon, RNG,
  vTPM, watchdog, controllers); never a <filesystem>, <hostdev>,
  <redirdev>, <smartcard>, <shmem>, <parallel> or anything unknown;
- disks only as files under instances_path (their backing chains too) or
  network volumes over iSCSI or RBD; never type block, dir, volume, nvme
  or vhost-user;
- NICs only on the agent's bridges (brca*); never type ethernet or a
  script; serial ports only pty, tcp or a file under instances_path;
  channels only unix sockets libvirt makes; a vTPM only emulated; an RNG
  only /dev/urandom;
- kernel, initrd and UEFI variable store under instances_path, firmware
  from the configured files, the emulator one of QEMU's own binaries;
- no qemu:commandline or any element of QEMU's namespace, no static
  security label (which could name root), no host SMBIOS.

A refusal is errors.UnsafeDomain naming what was found; nothing reaches
libvirt."""
import dataclasses
import os
import re

from lxml import etree

from virt import errors

QEMU_NS = "http://libvirt.org/schemas/domain/qemu/1.0"
DEVICES = {"emulator", "disk", "controller", "interface", "serial", "console", "channel",
           "input", "graphics", "video", "memballoon", "rng", "tpm", "watchdog", "audio",
           "sound", "panic"}
DISK_TYPES = {"file", "network"}
VOLUME_PROTOCOLS = {"iscsi", "rbd"}
CHAR_TYPES = {"pty", "tcp", "file", "unix", "spicevmc"}
EMULATOR = re.compile(r"/usr/(s?bin|libexec)/(qemu-system-[a-z0-9_]+|kvm|qemu-kvm)\Z")
BRIDGE = re.compile(r"brca[A-Za-z0-9_-]{1,11}\Z")


@dataclasses.dataclass(frozen=True)
class Allowed:
    instances_path: str
    firmware: frozenset = frozenset()      # UEFI code files and variable templates
    channel_dirs: tuple = ("/var/lib/libvirt/qemu/",)


def _under(path, root):
    if not path or "\0" in path or not os.path.isabs(path):
        return False
    path, root = os.path.normpath(path), os.path.normpath(root)
    return os.path.commonpath([path, root]) == root and path != root


def _disk(disk, allowed, found):
    kind = disk.get("type", "file")
    if kind not in DISK_TYPES:
        found.append(f"a disk of type {kind!r}")
        return
    if kind == "network":
        for source in disk.iter("source"):
            if source.get("protocol") not in VOLUME_PROTOCOLS:
                found.append(f"a network disk over {source.get('protocol')!r}")
    for store in disk.iter("backingStore"):
        if store.get("type") not in (None, "file"):
            found.append(f"a backing store of type {store.get('type')!r}")
    for source in disk.iter("source"):
        for attr in ("dev", "dir", "pool", "volume", "path"):
            if source.get(attr) is not None:
                found.append(f"a disk source {attr}={source.get(attr)!r}")
        path = source.get("file")
        if path is not None and not _under(path, allowed.instances_path):
            found.append(f"a disk file outside instances_path: {path!r}")
    if disk.find(".//dataStore") is not None:
        found.append("a disk data store")


def _char(dev, allowed, found):
    kind = dev.get("type", "pty")
    if kind not in CHAR_TYPES:
        found.append(f"a {dev.tag} of type {kind!r}")
        return
    for source in dev.iter("source"):
        path = source.get("path")
        if path is None:
            continue
        ok = (_under(path, allowed.instances_path) if kind == "file"
              else kind == "unix" and any(path.startswith(d) for d in allowed.channel_dirs))
        if not ok:
            found.append(f"a {dev.tag} path {path!r}")
    for log in dev.iter("log"):
        if not _under(log.get("file"), allowed.instances_path):
            found.append(f"a {dev.tag} log outside instances_path: {log.get('file')!r}")


def _interface(iface, found):
    kind = iface.get("type")
    bridge = iface.find("source")
    name = bridge.get("bridge") if bridge is not None else None
    if kind != "bridge" or not name or not BRIDGE.match(name):
        found.append(f"an interface of type {kind!r} on {name!r}")
    if iface.find("script") is not None or iface.find("backend") is not None:
        found.append("an interface script or backend")


def _device(dev, allowed, found):
    tag = dev.tag
    if tag not in DEVICES:
        found.append(f"a <{tag}> device")
    elif tag == "emulator":
        if not EMULATOR.match((dev.text or "").strip()):
            found.append(f"the emulator {dev.text!r}")
    elif tag == "disk":
        _disk(dev, allowed, found)
    elif tag in ("serial", "console", "channel"):
        _char(dev, allowed, found)
    elif tag == "interface":
        _interface(dev, found)
    elif tag == "tpm":
        backend = dev.find("backend")
        if backend is None or backend.get("type") != "emulator":
            found.append("a vTPM not emulated")
    elif tag == "rng":
        backend = dev.find("backend")
        if backend is None or backend.get("model") != "random" \
                or (backend.text or "/dev/urandom").strip() != "/dev/urandom":
            found.append("an RNG other than /dev/urandom")
    elif tag == "graphics" and dev.get("type") != "vnc":
        found.append(f"graphics of type {dev.get('type')!r}")


def _os(os_el, allowed, found):
    for tag in ("kernel", "initrd", "dtb"):
        for el in os_el.iter(tag):
            if not _under((el.text or "").strip(), allowed.instances_path):
                found.append(f"a {tag} outside instances_path: {el.text!r}")
    for el in os_el.iter("loader"):
        if (el.text or "").strip() not in allowed.firmware:
            found.append(f"firmware {el.text!r} that is not configured")
    for el in os_el.iter("nvram"):
        path = (el.text or "").strip()
        if path and not _under(path, allowed.instances_path):
            found.append(f"a UEFI variable store outside instances_path: {path!r}")
        template = el.get("template")
        if template is not None and template not in allowed.firmware:
            found.append(f"a variable store template {template!r} that is not configured")


def _in_metadata(el):
    return any(a.tag == "metadata" for a in el.iterancestors())


def _common(root, allowed, found):
    for el in root.iter():
        if not isinstance(el.tag, str):
            continue                       # comments, processing instructions
        names = [el.tag] + list(el.attrib)
        spaces = {n[1:].split("}")[0] for n in names if n.startswith("{")}
        if QEMU_NS in spaces:
            found.append("an element of QEMU's namespace (qemu:commandline and the like)")
        elif spaces and not _in_metadata(el):     # <metadata> is opaque to libvirt
            found.append(f"a foreign namespace ({', '.join(sorted(spaces))})")
        if el.tag == "seclabel" and el.get("type") == "static":
            found.append("a static security label")
        if el.tag == "smbios" and el.get("mode") == "host":
            found.append("the host's SMBIOS")


def _parse(xml):
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    try:
        return etree.fromstring(xml.encode() if isinstance(xml, str) else xml, parser)
    except etree.XMLSyntaxError as e:
        raise errors.UnsafeDomain(f"the XML does not parse: {e}") from None


def domain_problems(xml, allowed):
    """What of `allowed` a domain XML steps outside of ([] when nothing)."""
    root, found = _parse(xml), []
    if root.tag != "domain" or root.get("type") not in ("qemu", "kvm"):
        found.append(f"a <{root.tag}> of type {root.get('type')!r}, not a QEMU domain")
    _common(root, allowed, found)
    for os_el in root.findall("os"):
        _os(os_el, allowed, found)
    for devices in root.findall("devices"):
        for dev in devices:
            if isinstance(dev.tag, str):
                _device(dev, allowed, found)
    return found


def device_problems(xml, allowed):
    root, found = _parse(xml), []
    _common(root, allowed, found)
    _device(root, allowed, found)
    return found


def check_domain(xml, allowed):
    """xml, or errors.UnsafeDomain."""
    found = domain_problems(xml, allowed)
    if found:
        raise errors.UnsafeDomain("refused to define a domain with "
                                  + "; ".join(dict.fromkeys(found)))
    return xml


def check_device(xml, allowed):
    found = device_problems(xml, allowed)
    if found:
        raise errors.UnsafeDomain("refused to attach " + "; ".join(dict.fromkeys(found)))
    return xml
