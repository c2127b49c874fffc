"""The hypervisor driver interface the manager talks to, and the plain data
it passes: what an instance is (to a driver), which cached image files it
boots from, and what a driver reports back.  Drivers never see the database.
Also allocated(), the on-disk size of a file, which both sides measure.
"""
import abc
import dataclasses
import os
import threading

from imagecache.cache import CachedImage


def allocated(path):
    """Bytes path takes on disk (sparse files count what they hold); 0 when
    it is gone."""
    try:
        return os.stat(path).st_blocks * 512
    except OSError:
        return 0


@dataclasses.dataclass(frozen=True)
class Flavor:
    vcpus: int
    memory_mb: int
    root_gb: int
    ephemeral_gb: int = 0
    swap_mb: int = 0
    name: str = ""


BOOT_DEVICE = "vda"         # a volume there is the root disk: booted from volume


# disk formats of images in a pool every host reaches (Ceph RBD): such
# disks take no host's disk and outlive the host
SHARED_FORMATS = frozenset({"rbd"})


def disks_shared(disk_formats, new_disks_shared=False):
    """Whether disks of these recorded formats ({name: format}) live on
    block storage every host shares; a record with none yet has them where
    this host makes new disks (new_disks_shared).  The one rule: the
    tracker's claims and the driver's disk store both read it (pure)."""
    if not disk_formats:
        return new_disks_shared
    return any(f in SHARED_FORMATS for f in disk_formats.values())


@dataclasses.dataclass(frozen=True)
class VolumeDisk:
    """A volume as the guest gets it: a network disk QEMU opens with its
    own initiator.  Its credential, if any, is a libvirt secret (uuid,
    of secret_type); the secret's value never appears here."""

    volume_id: str
    device: str                 # the guest's target device: vdd, vde, ...; vda boots
    protocol: str               # iscsi | rbd
    name: str                   # IQN/LUN, pool/image
    hosts: tuple                # ((address, port), ...)
    username: str | None = None
    secret_type: str | None = None
    secret_uuid: str | None = None


@dataclasses.dataclass(frozen=True)
class Instance:
    """What a driver needs to know of an instance; built from the record."""

    uuid: str
    display_name: str
    flavor: Flavor
    image_id: str
    created_at: str = ""
    disk_formats: dict = dataclasses.field(default_factory=dict, hash=False, compare=False)
    # {path inside the drive: bytes} of its config drive, or None for none:
    # written into the instance's files whenever the driver defines its guest
    config_drive: dict | None = dataclasses.field(default=None, hash=False, compare=False)
    # its attached volumes, in the order they were attached
    volumes: tuple = dataclasses.field(default=(), hash=False, compare=False)

    @property
    def domain_name(self):
        return f"instance-{self.uuid}"

    @property
    def boot_volume(self):
        """The volume the guest boots from (its root disk), or None."""
        return next((v for v in self.volumes if v.device == BOOT_DEVICE), None)

    @classmethod
    def ref(cls, uuid):
        """An Instance known only by uuid (enough for destroy/power_off)."""
        return cls(uuid=uuid, display_name="", flavor=Flavor(1, 0, 0), image_id="")


@dataclasses.dataclass(frozen=True)
class ImageFiles:
    """The cached base files an instance boots from (kernel/ramdisk optional)."""

    root: CachedImage
    kernel: CachedImage | None = None
    ramdisk: CachedImage | None = None


class MigrationControl:
    """Requests from RPC to a running live migration's monitor."""

    def __init__(self):
        self.abort = threading.Event()
        self.force_complete = threading.Event()


# Nova's power_state numbers: the record stores them, drivers report them.
NOSTATE, RUNNING, PAUSED, SHUTDOWN, CRASHED, SUSPENDED = 0, 1, 3, 4, 6, 7
POWER_STATE_NAMES = {NOSTATE: "NOSTATE", RUNNING: "RUNNING", PAUSED: "PAUSED",
                     SHUTDOWN: "SHUTDOWN", CRASHED: "CRASHED", SUSPENDED: "SUSPENDED"}


@dataclasses.dataclass(frozen=True)
class InstanceInfo:
    power_state: int
    memory_kib: int = 0
    vcpus: int = 0
    cpu_time_ns: int = 0


@dataclasses.dataclass(frozen=True)
class HostResources:
    hypervisor_type: str
    hypervisor_version: int
    hostname: str
    vcpus: int
    memory_mb: int
    memory_mb_free: int
    local_gb: int
    local_gb_free: int


class ComputeDriver(abc.ABC):
    """What the manager may ask of a hypervisor.  Every method is safe to
    call again after a failure (the manager retries and cleans up)."""

    @abc.abstractmethod
    def init_host(self, host):
        """Connect to the hypervisor; called once when the agent starts."""

    @abc.abstractmethod
    def spawn(self, instance, image_meta, image_files, network_info):
        """Create the instance's disks, define its guest and start it.
        Returns {disk name: format} for the record."""

    @abc.abstractmethod
    def power_on(self, instance, image_meta, image_files, network_info):
        """(Re)start the guest from a freshly generated definition, on its
        existing disks: start and hard reboot.  A running guest is destroyed
        first and a saved (suspended) state discarded; disks are kept."""

    @abc.abstractmethod
    def shutdown(self, instance, timeout, retry_interval=None):
        """Ask the guest to power off (repeating the request every
        retry_interval); True if it is off within timeout."""

    @abc.abstractmethod
    def power_off(self, instance):
        """Power the guest off at once; a guest already off is fine."""

    @abc.abstractmethod
    def suspend(self, instance):
        """Save the guest's memory to disk and stop it."""

    @abc.abstractmethod
    def resume(self, instance):
        """Start the guest from its saved memory."""

    @abc.abstractmethod
    def pause(self, instance):
        """Stop the guest's vCPUs, keeping its memory."""

    @abc.abstractmethod
    def unpause(self, instance):
        """Let a paused guest's vCPUs run again."""

    @abc.abstractmethod
    def attach_interface(self, instance, image_meta, vif):
        """Add a NIC for vif to the definition (and the running guest)."""

    @abc.abstractmethod
    def detach_interface(self, instance, image_meta, vif):
        """Remove vif's NIC from the definition (and the running guest)."""

    @abc.abstractmethod
    def snapshot(self, instance, image_files, workdir, out_format, live, progress):
        """A flat image file of the root disk in workdir; returns its path.
        live: copy while the guest runs; else the guest is off or saved.
        progress(percent) is called as the copy advances.  After a live
        snapshot, end_snapshot must follow, whatever happened."""

    @abc.abstractmethod
    def snapshot_bytes(self, instance, image_files):
        """The most bytes a snapshot's flat image of the root disk can take."""

    @abc.abstractmethod
    def end_snapshot(self, instance):
        """Undo what a live snapshot (maybe interrupted by a kill) changed
        in the guest's disks; nothing to do when nothing is left.  A
        driver calls it itself before it redefines the guest from the
        record or moves its disks, so writes held in an overlay whose merge
        failed are never dropped; when it fails, that operation fails."""

    @abc.abstractmethod
    def migrate_disk_and_power_off(self, instance, timeout, retry_interval):
        """Cold migration, source: guest off and undefined, its directory
        moved aside; {name: path} of the disk files to send."""

    @abc.abstractmethod
    def check_arrived_disks(self, instance, old_flavor, image_files, left_behind=False):
        """Cold migration, destination: refuse (UnsafeImage) disk files from
        the other host that are not what instance.disk_formats declares, or
        that reach outside the instance (data or backing files), before
        anything opens them.  left_behind: the directory is the one another
        host left on shared storage (an evacuation): its disks are
        inspected alike, the files the agent makes anew at define (the
        config drive) or QEMU writes (the console log) are left alone."""

    @abc.abstractmethod
    def finish_migration(self, instance, old_flavor, image_meta, image_files, network_info,
                         start):
        """Cold migration, destination: adopt the arrived disks for the new
        flavor, define the guest (started if start); the disk formats."""

    @abc.abstractmethod
    def finish_revert_migration(self, instance, image_meta, image_files, network_info, start):
        """Cold migration, source: put the directory back and define the
        guest as before (started if start)."""

    @abc.abstractmethod
    def confirm_migration(self, instance):
        """Cold migration, source: drop the directory kept aside."""

    @abc.abstractmethod
    def aside_disk_files(self, instance):
        """{name: path} of the disk files a cold migration moved aside."""

    @abc.abstractmethod
    def migration_disk_names(self):
        """The names of the disk files a cold migration may send."""

    @abc.abstractmethod
    def receive_dir(self, instance):
        """Where the disks of an incoming cold migration arrive (the
        directory must not exist; the receiver makes it)."""

    @abc.abstractmethod
    def copy_aside_disks(self, instance):
        """Cold migration on shared storage, destination: the instance's
        directory made from the copy the source set aside."""

    @abc.abstractmethod
    def has_instance_files(self, instance):
        """Whether anything of the instance is in its directory."""

    @abc.abstractmethod
    def remove_instance_files(self, instance):
        """The instance's directory, gone (the guest is not here)."""

    # -- live migration ----------------------------------------------------------

    @abc.abstractmethod
    def migration_cpu(self, instance):
        """Source: the CPU description a destination must provide, or None
        (the hypervisor's default CPU)."""

    @abc.abstractmethod
    def check_cpu(self, cpu_xml):
        """Destination: raise virt.errors.CPUIncompatible unless this host
        can run a guest with that CPU."""

    @abc.abstractmethod
    def instance_disk_bytes(self, instance):
        """Bytes the instance's files hold on disk (at most what a block
        migration writes at the destination)."""

    @abc.abstractmethod
    def pre_live_migration(self, instance, image_files, block):
        """Destination: the instance's directory (and, for a block
        migration, empty overlays on this host's bases); the disk formats."""

    @abc.abstractmethod
    def migration_paths(self, instance, image_files):
        """{role: path} of this host's files of the instance, for the
        destination XML (the source maps its own onto the destination's)."""

    def is_alive(self):
        """Whether the hypervisor answers (the watchdog's health check)."""
        return True

    def live_migration_tls(self):
        """Whether this host encrypts the live migrations it sends."""
        return False

    def has_migration_certificates(self):
        """Whether this host can receive a live migration over TLS."""
        return False

    def missing_migration_certificates(self):
        """The migration TLS files this host lacks ([] when none)."""
        return []

    @abc.abstractmethod
    def live_migrate(self, instance, dest, src_paths, dest_paths, block, control, progress):
        """Source: migrate the running guest to dest ({libvirt_uri,
        migrate_uri}); the seconds it took once the guest runs there, or
        an error with the guest still running here.  control: a
        MigrationControl (abort, force_complete); progress(percent)."""

    # -- the host's storage --------------------------------------------------------

    @abc.abstractmethod
    def free_disk_bytes(self):
        """Free bytes where instance disks live."""

    @abc.abstractmethod
    def write_shared_probe(self, host):
        """A probe file where instance disks live; its name.  Another host
        that sees it shares this host's storage."""

    @abc.abstractmethod
    def has_shared_probe(self, name):
        """Whether a probe file of that name (compute.rpc.schemas checks its
        form) is where instance disks live here."""

    @abc.abstractmethod
    def remove_shared_probe(self, name):
        """The probe file, gone."""

    @abc.abstractmethod
    def remove_leftovers(self):
        """Agent start: temporary files a killed agent left where instance
        disks live (old probes)."""

    @abc.abstractmethod
    def bases_in_use(self):
        """Names of the cached bases some instance disk here backs onto."""

    @abc.abstractmethod
    def sync_disks(self, instance):
        """Make the instance's disk files durable (before another copy of
        them is dropped)."""

    @abc.abstractmethod
    def set_admin_password(self, instance, user, password):
        """Set a guest user's password through the guest's agent; raises
        GuestAgentUnavailable when it has none or it does not answer."""

    @abc.abstractmethod
    def get_diagnostics(self, instance):
        """CPU time, memory, per-disk and per-interface counters, and the
        guest agent's state with the addresses it reports."""

    @abc.abstractmethod
    def destroy(self, instance, network_info, destroy_disks=True):
        """Stop and undefine the guest; remove its disks on this host when
        asked (disks on shared block storage stay: remove_shared_disks).
        A guest or directory that is already gone is not an error."""

    @abc.abstractmethod
    def new_disks_shared(self):
        """Whether the disks this host makes for new instances live on
        shared block storage (not on this host's disk)."""

    @abc.abstractmethod
    def in_ceph(self, instance):
        """Whether the instance's disks (as its record's formats say) live
        on the shared block storage; DiskMissing when they do and this host
        cannot reach it."""

    @abc.abstractmethod
    def remove_shared_disks(self, instance):
        """The disks of a deleted instance that live on storage every host
        shares (none is fine); no such storage: nothing to do."""

    @abc.abstractmethod
    def get_info(self, instance):
        """InstanceInfo; raises virt.errors.InstanceNotFound if no guest."""

    @abc.abstractmethod
    def list_instance_uuids(self):
        """UUIDs of every guest of this agent the hypervisor knows of."""

    @abc.abstractmethod
    def rebuild(self, instance, image_meta, image_files, network_info, preserve_ephemeral):
        """A new root disk from image_files, the guest defined and started
        again (ports, config drive and, by choice, the ephemeral disk kept);
        the formats of the disks."""

    @abc.abstractmethod
    def rescue(self, instance, rescue_meta, rescue_files, network_info):
        """Boot a fresh disk of the rescue image with the instance's own
        disks attached after it (power_on boots the own disks again)."""

    @abc.abstractmethod
    def unshelve(self, instance, image_meta, image_files, shelved_base, network_info):
        """Spawn from a shelve's image (shelved_base, cached): its root disk
        moved onto image_files.root keeping its content, so the shelve's
        image is no longer needed; the formats of the disks."""

    @abc.abstractmethod
    def attach_volume(self, instance, volume, secret_value):
        """Attach volume (a VolumeDisk) to the definition and, when it runs,
        to the guest, its credential (bytes, or None) stored first; nothing
        when the volume is attached already."""

    @abc.abstractmethod
    def detach_volume(self, instance, volume, timeout):
        """Detach volume from the guest (waiting up to timeout seconds for
        the guest to let go) and the definition; then forget_volume."""

    @abc.abstractmethod
    def volume_capacity(self, instance, volume):
        """The volume's size in bytes as the running guest sees it; None
        when the guest does not run."""

    @abc.abstractmethod
    def extend_volume(self, instance, volume, new_size):
        """Tell the running guest the volume is new_size bytes now (the
        storage grew it); whether a running guest was told (a stopped one
        reads the size when it starts)."""

    @abc.abstractmethod
    def connect_volume(self, instance, volume, secret_value):
        """Store the volume's credential (bytes, or None) on this host, so a
        definition naming the volume opens it here (an arriving live
        migration, a start); storing it again is harmless."""

    @abc.abstractmethod
    def forget_volume(self, instance, volume):
        """Remove the volume's stored credential (nothing when none)."""

    @abc.abstractmethod
    def get_console_output(self, instance, max_bytes):
        """The tail of the guest's serial console log, as text."""

    def hold_console_ports(self, instance):
        """Destination of a live migration: where the arriving guest's
        consoles listen here ({vnc_listen, serial: {host, port}}, the serial
        port kept free until release_serial_port); {} when it has none."""
        return {}

    def release_serial_port(self, instance):
        """The port hold_console_ports kept is no longer needed."""
        return None

    @abc.abstractmethod
    def get_console_target(self, instance, kind):
        """(address, port, password) of the running guest's serial or vnc
        console (the password the VNC server asks for, None if none);
        errors.ConsoleUnavailable when it has none."""

    @abc.abstractmethod
    def get_available_resource(self):
        """HostResources of this host, for the compute_nodes table."""

    def saved_state_bytes(self):
        """Disk space held by saved (suspended) guest memory images."""
        return 0

    def register_event_listener(self, callback):
        """Call callback(uuid) when a guest's power state may have changed;
        the listener asks get_info for the state itself, so it never acts
        on a state older than what it read from its own records."""
        self._event_callback = callback
