"""Pure functions that turn an instance, its image properties, disks and
VIFs into a Domain element.  No libvirt, no I/O: unit-tested on plain data.

The XML is always regenerated from the record through here; nothing reads
back the copy written to <instance dir>/libvirt.xml.
"""
import dataclasses

from virt.errors import InvalidImageProperty
from virt.libvirt.xml import domain as x

DISK_BUS_PREFIX = {"virtio": "vd", "scsi": "sd", "sata": "sd", "ide": "hd", "usb": "sd"}
VIF_MODELS = {"virtio", "e1000", "e1000e", "rtl8139", "ne2k_pci", "pcnet"}
VIDEO_MODELS = {"vga", "cirrus", "virtio", "qxl", "none"}
MACHINE_TYPE_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789.-_")


@dataclasses.dataclass(frozen=True)
class GuestDisk:
    """One file-backed disk attached to the guest, in boot order."""

    name: str           # disk, disk.local, disk.swap
    path: str           # a file; pool/image for format rbd
    format: str         # qcow2 | raw | rbd (an image in the host's Ceph pool)


@dataclasses.dataclass(frozen=True)
class HostSettings:
    """The host-side knobs the XML depends on (taken from [libvirt])."""

    virt_type: str = "qemu"
    cpu_mode: str | None = None
    cpu_model: str | None = None
    machine_type: str = "pc"
    default_cmdline: str = "root=/dev/vda console=tty0 console=ttyS0"
    disk_cache: str = "none"
    vnc_listen: str = "127.0.0.1"
    # UEFI firmware: (code, empty variable store), plain and with Secure Boot
    uefi: tuple = ("/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_VARS_4M.fd")
    uefi_secure: tuple = ("/usr/share/OVMF/OVMF_CODE_4M.secboot.fd",
                          "/usr/share/OVMF/OVMF_VARS_4M.ms.fd")
    # images_type = rbd: where QEMU finds the pool (rbd_images.RbdSource)
    rbd: object = None


@dataclasses.dataclass(frozen=True)
class BootFiles:
    kernel: str | None = None
    initrd: str | None = None


def _prop(image_meta, name, allowed, default):
    value = (image_meta.get("properties") or {}).get(name, default)
    if value not in allowed:
        raise InvalidImageProperty(
            f"image property {name}={value!r} is not one of {sorted(allowed)}")
    return value


def disk_bus(image_meta):
    return _prop(image_meta, "hw_disk_bus", DISK_BUS_PREFIX, "virtio")


def build_cpu(settings):
    mode = settings.cpu_mode or ("host-model" if settings.virt_type == "kvm" else "none")
    if mode == "none":
        return None
    if mode == "custom":
        return x.CPU(mode="custom", match="exact", model=settings.cpu_model,
                     model_fallback="forbid")
    return x.CPU(mode=mode)


FIRMWARE_TYPES = {"bios", "uefi"}
UEFI_MIN_MEMORY_MB = 256          # OVMF (4M) dies with a #GP in less, under TCG at least
SECURE_BOOT = {"required", "disabled", "optional"}


def firmware(image_meta):
    """(uefi, secure_boot) as the image asks: hw_firmware_type=uefi, and
    os_secure_boot=required (optional means: not required, so off)."""
    uefi = _prop(image_meta, "hw_firmware_type", FIRMWARE_TYPES, "bios") == "uefi"
    secure = _prop(image_meta, "os_secure_boot", SECURE_BOOT, "disabled") == "required"
    if secure and not uefi:
        raise InvalidImageProperty("image property os_secure_boot=required needs "
                                   "hw_firmware_type=uefi")
    return uefi, secure


def build_os(image_meta, boot, settings, nvram=None):
    """<os>; for a UEFI image, OVMF as a read-only pflash and the guest's
    own variable store at nvram (made from the template when missing)."""
    machine = (image_meta.get("properties") or {}).get("hw_machine_type") or settings.machine_type
    if not set(machine) <= MACHINE_TYPE_CHARS:
        raise InvalidImageProperty(f"image property hw_machine_type={machine!r} is not valid")
    os_el = x.OS(type="hvm", arch="x86_64", machine=machine)
    uefi, secure = firmware(image_meta)
    if uefi:
        if secure and "q35" not in machine:
            raise InvalidImageProperty("image property os_secure_boot=required needs "
                                       f"hw_machine_type=q35, not {machine!r}")
        code, template = settings.uefi_secure if secure else settings.uefi
        os_el.loader, os_el.loader_readonly, os_el.loader_type = code, True, "pflash"
        os_el.loader_secure = secure
        os_el.nvram, os_el.nvram_template = nvram, template
    if boot.kernel:
        os_el.kernel = boot.kernel
        if boot.initrd:
            os_el.initrd = boot.initrd
        props = image_meta.get("properties") or {}
        os_el.cmdline = props.get("os_command_line") or settings.default_cmdline
    else:
        os_el.boot_dev = "hd"
    return os_el


def build_clock():
    clock = x.Clock(offset="utc")
    clock.timers.append(x.Timer(name="pit", tickpolicy="delay"))
    clock.timers.append(x.Timer(name="rtc", tickpolicy="catchup"))
    clock.timers.append(x.Timer(name="hpet", present=False))
    return clock


def build_disks(disks, bus, cache, taken=(), rbd=None):
    """The instance's disks, named in order after the devices taken (a
    boot volume's vda): files, or RBD images opened with the host's
    rbd source (hosts, user and secret; no host cache, as for volumes)."""
    prefix = DISK_BUS_PREFIX[bus]
    free = [prefix + c for c in "abcdefghijklmnopqrstuvwxyz" if prefix + c not in taken]
    out = []
    for i, d in enumerate(disks):
        if d.format != "rbd":
            out.append(x.Disk(type="file", device="disk", driver_name="qemu",
                              driver_type=d.format, driver_cache=cache, source_file=d.path,
                              target_dev=free[i], target_bus=bus))
            continue
        if rbd is None:
            raise ValueError(f"disk {d.name} is an RBD image and the host has no rbd source")
        out.append(_network_disk("rbd", d.path, free[i], bus, rbd.hosts,
                                 (rbd.username, "ceph", rbd.secret_uuid)))
    return out


def _network_disk(protocol, name, dev, bus, hosts, auth=None, serial=None):
    """A disk QEMU opens with its own initiator: raw, no host cache;
    auth (username, secret type, secret uuid) names a libvirt secret."""
    disk = x.Disk(type="network", device="disk", driver_name="qemu", driver_type="raw",
                  driver_cache="none", source_protocol=protocol, source_name=name,
                  target_dev=dev, target_bus=bus, serial=serial)
    for address, port in hosts:
        disk.source_hosts.append(x.DiskHost(name=address, port=str(port)))
    if auth:
        disk.auth_username = auth[0]
        disk.auth_secret_type, disk.auth_secret_uuid = auth[1], auth[2]
    return disk


def build_volume_disk(volume):
    """A volume (virt.driver.VolumeDisk) as a network disk: raw, no host
    cache, its serial the volume id (the guest finds it by-id)."""
    auth = (volume.username, volume.secret_type, volume.secret_uuid) \
        if volume.secret_uuid else None
    return _network_disk(volume.protocol, volume.name, volume.device, "virtio", volume.hosts,
                         auth, serial=volume.volume_id)


CDROM_BUSES = {"ide", "sata"}


def build_config_drive(path, image_meta, disks, settings):
    """The config drive: a read-only CD-ROM after the disks (IDE's last
    unit, hdd, on i440fx machines; SATA on q35, where there is no IDE)."""
    machine = (image_meta.get("properties") or {}).get("hw_machine_type") \
        or settings.machine_type
    bus = _prop(image_meta, "hw_cdrom_bus", CDROM_BUSES,
                "sata" if "q35" in machine else "ide")
    if bus == "ide":
        dev = "hdd"
    else:
        after = len(disks) if disk_bus(image_meta) == "sata" else 0
        dev = "sd" + "abcdefghijklmnopqrstuvwxyz"[after]
    return x.Disk(type="file", device="cdrom", driver_name="qemu", driver_type="raw",
                  source_file=path, target_dev=dev, target_bus=bus, readonly=True)


GUEST_AGENT_CHANNEL = "org.qemu.guest_agent.0"
SMBIOS_PRODUCT = "OpenStack Compute"     # one of the names cloud-init's OpenStack source knows


def build_sysinfo(instance):
    info = x.Sysinfo(type="smbios")
    info.system = x.SysinfoSystem()
    for name, value in (("manufacturer", "compute-agent"), ("product", SMBIOS_PRODUCT),
                        ("serial", instance.uuid), ("uuid", instance.uuid),
                        ("family", "Virtual Machine")):
        info.system.entries.append(x.SysinfoEntry(name=name, value=value))
    return info


def wants_guest_agent(image_meta):
    value = (image_meta.get("properties") or {}).get("hw_qemu_guest_agent", "no")
    value = {True: "yes", False: "no"}.get(value, value)
    if value not in ("yes", "no"):
        raise InvalidImageProperty(
            f"image property hw_qemu_guest_agent={value!r} is not one of ['no', 'yes']")
    return value == "yes"


def build_guest_agent_channel():
    return x.Channel(type="unix", source_mode="bind", target_type="virtio",
                     target_name=GUEST_AGENT_CHANNEL)


TPM_VERSIONS = {"2.0"}
TPM_MODELS = {"tpm-tis", "tpm-crb"}


def wants_tpm(image_meta):
    """Whether the image asks for a TPM (hw_tpm_version); only 2.0."""
    props = image_meta.get("properties") or {}
    if "hw_tpm_version" not in props:
        return False
    _prop(image_meta, "hw_tpm_version", TPM_VERSIONS, None)
    return True


def build_tpm(image_meta):
    """A TPM 2.0 emulated by swtpm (hw_tpm_model: tpm-tis, the default, or
    tpm-crb); its state is libvirt's, kept across definitions and moved
    by live migration."""
    model = _prop(image_meta, "hw_tpm_model", TPM_MODELS, "tpm-tis")
    return x.TPM(model=model, backend_type="emulator", backend_version="2.0")


def build_interfaces(vifs, image_meta):
    model = _prop(image_meta, "hw_vif_model", VIF_MODELS, "virtio")
    return [x.Interface(type="bridge", mac=v["address"], source_bridge=v["bridge"],
                        target_dev=v["devname"], model=model, mtu=v.get("mtu"))
            for v in vifs if v.get("bridge")]


def build_serials(console_log, serial_listen=None):
    """The console (ttyS0) and a spare pty (ttyS1).  With serial_listen
    (host, port) the console is a TCP server there, for the console proxy,
    its output still logged to console_log; otherwise it is the log file.
    Whether the TCP server is TLS is qemu.conf's chardev_tls (the same on
    every host, since a guest's console moves with it)."""
    if serial_listen is None:
        console = x.Serial(type="file", source_path=console_log, source_append=True,
                           target_port=0)
    else:
        host, port = serial_listen
        console = x.Serial(type="tcp", source_mode="bind", source_host=host,
                           source_service=str(port), protocol="raw",
                           log_file=console_log, log_append=True, target_port=0)
    return [console, x.Serial(type="pty", target_port=1)]


def build_metadata(instance):
    f = instance.flavor
    return x.Metadata(instance=x.MetaInstance(
        name=instance.display_name, created=instance.created_at or None,
        image_id=instance.image_id,
        flavor=x.MetaFlavor(name=f.name or None, memory_mb=f.memory_mb, vcpus=f.vcpus,
                            root_gb=f.root_gb, ephemeral_gb=f.ephemeral_gb,
                            swap_mb=f.swap_mb)))


def build_domain(instance, image_meta, disks, vifs, boot, console_log, settings,
                 config_drive=None, serial_listen=None, nvram=None, vnc_password=None):
    """The whole guest definition.  vifs are dicts from the VIF plugin:
    address, bridge, devname and optional mtu; config_drive the path of
    the instance's config drive, if it has one; serial_listen the (host,
    port) of its serial console server, if it has one; nvram the path of
    its UEFI variable store (used when the image is UEFI); vnc_password
    the VNC server's password (console.rfb: the proxy logs in with it)."""
    dom = x.Domain(type=settings.virt_type, name=instance.domain_name, uuid=instance.uuid)
    dom.metadata = build_metadata(instance)
    dom.memory_kib = instance.flavor.memory_mb * 1024
    dom.memory_unit = "KiB"
    dom.vcpus = instance.flavor.vcpus
    dom.cpu = build_cpu(settings)
    if firmware(image_meta)[0] and instance.flavor.memory_mb < UEFI_MIN_MEMORY_MB:
        raise InvalidImageProperty(
            f"image property hw_firmware_type=uefi needs at least {UEFI_MIN_MEMORY_MB} MiB of "
            f"memory; the flavor has {instance.flavor.memory_mb}")
    dom.os = build_os(image_meta, boot, settings, nvram)
    dom.os.smbios_mode = "sysinfo"
    dom.sysinfo = build_sysinfo(instance)
    dom.features = x.Features(acpi=True, apic=True)
    if firmware(image_meta)[1]:
        dom.features.smm = True
    dom.clock = build_clock()
    dom.on_poweroff, dom.on_reboot, dom.on_crash = "destroy", "restart", "destroy"
    devices = x.Devices()
    boot_volume = instance.boot_volume
    if boot_volume is not None:          # first: the firmware boots the first disk
        devices.disks.append(build_volume_disk(boot_volume))
    for disk in build_disks(disks, disk_bus(image_meta), settings.disk_cache,
                            {v.device for v in instance.volumes}, settings.rbd):
        devices.disks.append(disk)
    if config_drive:
        devices.disks.append(build_config_drive(config_drive, image_meta, disks, settings))
    for volume in instance.volumes:
        if volume is not boot_volume:
            devices.disks.append(build_volume_disk(volume))
    for iface in build_interfaces(vifs, image_meta):
        devices.interfaces.append(iface)
    for serial in build_serials(console_log, serial_listen):
        devices.serials.append(serial)
    if wants_guest_agent(image_meta):
        devices.channels.append(build_guest_agent_channel())
    devices.graphics.append(x.Graphics(type="vnc", autoport=True, listen=settings.vnc_listen,
                                       passwd=vnc_password))
    video = _prop(image_meta, "hw_video_model", VIDEO_MODELS, "vga")
    devices.videos.append(x.Video(model=video))
    if wants_tpm(image_meta):
        devices.tpms.append(build_tpm(image_meta))
    devices.memballoon = x.MemBalloon(model="virtio", stats_period=10)
    dom.devices = devices
    return dom
