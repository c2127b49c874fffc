"""The libvirt domain XML elements the agent builds and parses, one class
per element.  See base.py for how properties bind to paths."""
from virt.libvirt.xml.base import Child, Children, Element, Prop

META_NS = "urn:compute-agent:instance:1"


def _m(tag):
    return f"{{{META_NS}}}{tag}"


class MetaFlavor(Element):
    TAG = _m("flavor")
    name = Prop("@name")
    memory_mb = Prop(_m("memory"), int)
    vcpus = Prop(_m("vcpus"), int)
    root_gb = Prop(_m("disk"), int)
    ephemeral_gb = Prop(_m("ephemeral"), int)
    swap_mb = Prop(_m("swap"), int)


class MetaInstance(Element):
    """<ca:instance> under <metadata>: who this domain belongs to."""

    TAG = _m("instance")
    NSMAP = {"ca": META_NS}
    name = Prop(_m("name"))
    created = Prop(_m("creationTime"))
    image_id = Prop(_m("image") + "/@uuid")
    flavor = Child(MetaFlavor)


class Metadata(Element):
    TAG = "metadata"
    instance = Child(MetaInstance)


class CPU(Element):
    TAG = "cpu"
    mode = Prop("@mode")
    match = Prop("@match")
    check = Prop("@check")
    model = Prop("model")
    model_fallback = Prop("model/@fallback")


class OS(Element):
    TAG = "os"
    type = Prop("type")
    arch = Prop("type/@arch")
    machine = Prop("type/@machine")
    kernel = Prop("kernel")
    initrd = Prop("initrd")
    cmdline = Prop("cmdline")
    boot_dev = Prop("boot/@dev")
    smbios_mode = Prop("smbios/@mode")
    loader = Prop("loader")                          # UEFI: the firmware's code
    loader_readonly = Prop("loader/@readonly", bool)
    loader_type = Prop("loader/@type")
    loader_secure = Prop("loader/@secure", bool)
    nvram = Prop("nvram")                            # UEFI: this guest's variables
    nvram_template = Prop("nvram/@template")


class SysinfoEntry(Element):
    TAG = "entry"
    name = Prop("@name")
    value = Prop("")


class SysinfoSystem(Element):
    TAG = "system"
    entries = Children(SysinfoEntry)


class Sysinfo(Element):
    """<sysinfo type='smbios'>: what the guest's DMI tables say (cloud-init
    knows an OpenStack guest by its product name)."""

    TAG = "sysinfo"
    type = Prop("@type")
    system = Child(SysinfoSystem)


class Features(Element):
    TAG = "features"
    acpi = Prop("acpi", presence=True)
    apic = Prop("apic", presence=True)
    smm = Prop("smm/@state", bool, words=("on", "off"))    # secure boot needs it


class Timer(Element):
    TAG = "timer"
    name = Prop("@name")
    tickpolicy = Prop("@tickpolicy")
    present = Prop("@present", bool)


class Clock(Element):
    TAG = "clock"
    offset = Prop("@offset")
    timers = Children(Timer)


class DiskHost(Element):
    """A server of a network disk (an iSCSI portal, a Ceph monitor)."""
    TAG = "host"
    name = Prop("@name")
    port = Prop("@port")


class Disk(Element):
    TAG = "disk"
    type = Prop("@type")
    device = Prop("@device")
    driver_name = Prop("driver/@name")
    driver_type = Prop("driver/@type")
    driver_cache = Prop("driver/@cache")
    driver_io = Prop("driver/@io")
    source_file = Prop("source/@file")
    source_protocol = Prop("source/@protocol")      # network disks: iscsi | rbd
    source_name = Prop("source/@name")              # IQN/LUN, pool/image
    source_hosts = Children(DiskHost, "source/host")
    auth_username = Prop("auth/@username")
    auth_secret_type = Prop("auth/secret/@type")
    auth_secret_uuid = Prop("auth/secret/@uuid")
    backing_store = Prop("backingStore", presence=True)
    target_dev = Prop("target/@dev")
    target_bus = Prop("target/@bus")
    serial = Prop("serial")
    readonly = Prop("readonly", presence=True)


class Interface(Element):
    TAG = "interface"
    type = Prop("@type")
    mac = Prop("mac/@address")
    source_bridge = Prop("source/@bridge")
    target_dev = Prop("target/@dev")
    model = Prop("model/@type")
    mtu = Prop("mtu/@size", int)


class Serial(Element):
    TAG = "serial"
    type = Prop("@type")
    source_mode = Prop("source/@mode")           # tcp: bind (a server) | connect
    source_host = Prop("source/@host")
    source_service = Prop("source/@service")     # tcp: the port, as text
    source_tls = Prop("source/@tls")
    protocol = Prop("protocol/@type")            # tcp: raw | telnet
    source_path = Prop("source/@path")
    source_append = Prop("source/@append", bool, words=("on", "off"))
    target_port = Prop("target/@port", int)
    log_file = Prop("log/@file")
    log_append = Prop("log/@append", bool, words=("on", "off"))


class Channel(Element):
    """A virtio-serial channel; libvirt picks the host socket's path."""

    TAG = "channel"
    type = Prop("@type")
    source_mode = Prop("source/@mode")
    target_type = Prop("target/@type")
    target_name = Prop("target/@name")
    state = Prop("target/@state")      # connected | disconnected (running guests)


class Graphics(Element):
    TAG = "graphics"
    type = Prop("@type")
    autoport = Prop("@autoport", bool)
    port = Prop("@port", int)
    listen = Prop("@listen")
    listen_address = Prop("listen/@address")       # libvirt's <listen type='address'>
    passwd = Prop("@passwd")                       # only in XML asked for with SECURE


class Video(Element):
    TAG = "video"
    model = Prop("model/@type")


class MemBalloon(Element):
    TAG = "memballoon"
    model = Prop("@model")
    stats_period = Prop("stats/@period", int)


class TPM(Element):
    """A TPM emulated by swtpm, which libvirt starts beside QEMU."""

    TAG = "tpm"
    model = Prop("@model")
    backend_type = Prop("backend/@type")
    backend_version = Prop("backend/@version")


class Devices(Element):
    TAG = "devices"
    emulator = Prop("emulator")
    disks = Children(Disk)
    interfaces = Children(Interface)
    serials = Children(Serial)
    channels = Children(Channel)
    graphics = Children(Graphics)
    videos = Children(Video)
    tpms = Children(TPM)
    memballoon = Child(MemBalloon)


class Domain(Element):
    TAG = "domain"
    type = Prop("@type")
    id = Prop("@id", int)
    name = Prop("name")
    uuid = Prop("uuid")
    metadata = Child(Metadata)
    memory_kib = Prop("memory", int)
    memory_unit = Prop("memory/@unit")
    vcpus = Prop("vcpu", int)
    cpu = Child(CPU)
    os = Child(OS)
    sysinfo = Child(Sysinfo)
    features = Child(Features)
    clock = Child(Clock)
    on_poweroff = Prop("on_poweroff")
    on_reboot = Prop("on_reboot")
    on_crash = Prop("on_crash")
    devices = Child(Devices)
