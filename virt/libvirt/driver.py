"""LibvirtDriver: the ComputeDriver for libvirt/QEMU.  Each method is the
short sequence of steps of its operation; the XML comes from builder, the
disks from disks, the libvirt calls from host and guest."""
import contextlib
import dataclasses
import logging
import os
import secrets
import shutil
import time
import uuid as uuidlib

from imagecache import qemu_img
from privileged import logs
from virt import configdrive, driver, errors
from virt.libvirt import (
    builder,
    confine,
    console_ports,
    diagnostics,
    disks,
    events,
    files,
    guest_agent,
    interfaces,
    live,
    resize,
    volumes,
)
from virt.libvirt import live_snapshot as snap
from virt.libvirt.disk_store import DiskStore
from virt.libvirt.files import check_uuid
from virt.libvirt.host import Host

LOG = logging.getLogger(__name__)
DOMAIN_PREFIX = "instance-"
OFF_STATES = (driver.SHUTDOWN, driver.NOSTATE, driver.CRASHED)


class LibvirtDriver(driver.ComputeDriver):
    def __init__(self, conf, image_cache):
        self.conf = conf
        self.cache = image_cache
        self.instances_path = conf.instances_path
        lv = conf.libvirt
        self.host = Host(lv.connection_uri or "qemu:///system", confine.Allowed(
            conf.instances_path, frozenset({lv.uefi_loader, lv.uefi_nvram_template,
                                            lv.uefi_secure_loader,
                                            lv.uefi_secure_nvram_template})))
        self.settings = None
        self._event_callback = None
        self.events = events.HeldBackEvents(lambda: conf.libvirt.lifecycle_event_delay,
                                            self._emit)
        lv = conf.libvirt
        self.serial_ports = console_ports.SerialPorts(lv.serial_console, lv.serial_listen,
                                                 lv.serial_port_range, self._domain_xmls)
        self.live = live.LiveMigrator(conf.libvirt, self.host, self.serial_ports)
        self.volumes = volumes.Volumes(self.host)
        self.disks = DiskStore(conf, image_cache, self.instance_dir)

    def _domain_xmls(self):
        return {g.uuid: g.xml_desc() for g in self.host.list_guests()}

    def init_host(self, host):
        files.make_dir(self.instances_path)
        self.host.start(self.events)
        self.disks.start(self.host)
        self.settings = self._host_settings()

    def _host_settings(self):
        lv = self.conf.libvirt
        modes = dict(m.split("=", 1) for m in lv.disk_cachemodes if "=" in m)
        cache = modes.get("file") or ("none" if files.supports_direct_io(self.instances_path)
                                      else "writethrough")
        return builder.HostSettings(
            virt_type=lv.virt_type, cpu_mode=lv.cpu_mode,
            cpu_model=lv.cpu_models[0] if lv.cpu_models else None,
            machine_type=lv.hw_machine_type, default_cmdline=lv.default_kernel_cmdline,
            disk_cache=cache, vnc_listen=lv.vnc_listen,
            uefi=(lv.uefi_loader, lv.uefi_nvram_template),
            uefi_secure=(lv.uefi_secure_loader, lv.uefi_secure_nvram_template),
            rbd=self.disks.rbd.source if self.disks.rbd else None)

    def _emit(self, uuid):
        if self._event_callback is not None:
            self._event_callback(uuid)

    def instance_dir(self, instance):
        return os.path.join(self.instances_path, check_uuid(instance.uuid))

    # -- operations ---------------------------------------------------------

    def spawn(self, instance, image_meta, image_files, network_info):
        inst_dir = self.instance_dir(instance)
        files.make_dir(inst_dir)
        guest_disks = self.disks.create(instance, image_meta, image_files)
        guest = self._define(instance, image_meta, image_files, guest_disks, network_info)
        try:
            guest.launch()
        except errors.InstanceNotFound as e:
            # seen once under CI load (cause not found): libvirt no longer
            # had the definition it had just made; defining it is idempotent
            LOG.warning("instance %s: the new definition was gone at start (%s); "
                        "defining it again", instance.uuid, e)
            self._define(instance, image_meta, image_files, guest_disks,
                         network_info).launch()
        LOG.info("instance %s: guest started", instance.uuid)
        return {d.name: d.format for d in guest_disks}

    def new_disks_shared(self):
        return self.disks.new_disks_shared()

    def in_ceph(self, instance):
        return self.disks.in_ceph(instance)

    def remove_shared_disks(self, instance):
        self.disks.remove_shared(instance)

    def power_on(self, instance, image_meta, image_files, network_info):
        self.redefine(instance, image_meta, image_files, network_info).launch()
        LOG.info("instance %s: guest started from a regenerated definition", instance.uuid)

    def redefine(self, instance, image_meta, image_files, network_info):
        """Define the guest anew from the record over the disks in its
        directory (any old definition is powered off first); the Guest.
        A guest still on a live snapshot's overlay (its merge failed) is
        merged back first: the new definition names the root disk, which
        must hold everything the guest wrote."""
        self.end_snapshot(instance)
        inst_dir = self.instance_dir(instance)
        guest_disks = self.disks.reopen(instance)
        guest = self._define(instance, image_meta, image_files, guest_disks, network_info)
        disks.remove_rescue(inst_dir)            # a rescue's, no longer in the definition
        return guest

    def rebuild(self, instance, image_meta, image_files, network_info, preserve_ephemeral):
        """Reimage in place: the guest powered off, a new root disk from
        image_files (the ephemeral disk kept when preserve_ephemeral, else
        blank again), defined and started anew; the disk formats."""
        self.end_snapshot(instance)
        guest = self._lookup(instance)
        if guest is not None:
            guest.destroy()
        formats = self.disks.recreate_root(instance, image_meta, image_files,
                                           preserve_ephemeral)
        instance = dataclasses.replace(instance, disk_formats=formats)
        self.redefine(instance, image_meta, image_files, network_info).launch()
        return self.disks.formats_after(instance, formats)

    def rescue(self, instance, rescue_meta, rescue_files, network_info):
        """Boot from a fresh disk of the rescue image (the first disk, with
        that image's kernel and ramdisk), the instance's own disks after it
        untouched; unrescue is power_on (redefine) from the record."""
        self.end_snapshot(instance)
        inst_dir = self.instance_dir(instance)
        own = self.disks.reopen(instance)
        rescue_disk = disks.create_rescue(inst_dir, rescue_files.root)
        self._define(instance, rescue_meta, rescue_files, [rescue_disk, *own],
                     network_info).launch()
        LOG.info("instance %s: rescue guest started", instance.uuid)

    def unshelve(self, instance, image_meta, image_files, shelved_base, network_info):
        """Spawn anew from the shelve's image: the root disk an overlay on
        shelved_base rebased (safe mode) onto the instance's own image, so
        the shelve's image can go; swap and ephemeral blank (a shelve keeps
        the root disk only).  What an interrupted attempt left goes first."""
        self.destroy(instance, [], destroy_disks=True)
        inst_dir = self.instance_dir(instance)
        files.make_dir(inst_dir)
        guest_disks = self.disks.create(instance, {},        # {}: never a clone
                                         dataclasses.replace(image_files, root=shelved_base))
        root = guest_disks[0]
        if root.format == "qcow2":
            qemu_img.rebase(root.path, "qcow2", image_files.root.path, image_files.root.format)
        self._define(instance, image_meta, image_files, guest_disks, network_info).launch()
        LOG.info("instance %s: unshelved", instance.uuid)
        return {d.name: d.format for d in guest_disks}

    def _define(self, instance, image_meta, image_files, guest_disks, network_info):
        """Define the guest from these disks (any old definition powered
        off first); the Guest.  The serial port picked is taken once defined."""
        files.make_dir(self.instance_dir(instance))
        with self.serial_ports.lock:            # (an instance on RBD may have no directory)
            xml = self.domain_xml(instance, image_meta, image_files, guest_disks,
                                  network_info)
            with open(os.path.join(self.instance_dir(instance), "libvirt.xml"), "w") as f:
                f.write(xml)  # for the operator's eyes only; never read back
            old = self._lookup(instance)
            if old is not None:
                old.destroy()
                old.remove_managed_save()
            return self.host.define(xml)

    # -- cold migration and resize (disk work in virt.libvirt.resize) -------------

    def migrate_disk_and_power_off(self, instance, timeout, retry_interval):
        """Source: shut the guest down (gracefully, then hard), undefine it,
        move its directory aside; {name: path} of the disk files to send
        (a guest on a snapshot overlay is merged back first: only the
        disk files travel)."""
        self.end_snapshot(instance)
        if not self.shutdown(instance, timeout, retry_interval):
            LOG.warning("instance %s: no clean shutdown in %s s; powering off",
                        instance.uuid, timeout)
        guest = self._lookup(instance)
        if guest is not None:
            guest.destroy()
            guest.undefine()
        return self.disks.move_aside(instance)

    def check_arrived_disks(self, instance, old_flavor, image_files, left_behind=False):
        resize.check_arrived(self.instance_dir(instance), instance.disk_formats, old_flavor,
                             image_files, self.cache, only_travelling=left_behind)

    def finish_migration(self, instance, old_flavor, image_meta, image_files, network_info,
                         start):
        """Destination: the arrived disks adopted for instance's (new)
        flavor, the guest defined and started if start; the disk formats."""
        formats = self.disks.adopt(instance, old_flavor, image_files)
        instance = dataclasses.replace(instance, disk_formats=formats)
        guest = self.redefine(instance, image_meta, image_files, network_info)
        if start:
            guest.launch()
        return self.disks.formats_after(instance, formats)

    def finish_revert_migration(self, instance, image_meta, image_files, network_info, start):
        """Source: the directory moved back, the guest defined as before and
        started if start."""
        self.disks.move_back(instance)
        guest = self.redefine(instance, image_meta, image_files, network_info)
        if start:
            guest.launch()

    def confirm_migration(self, instance):
        self.disks.confirm(instance)

    def aside_disk_files(self, instance):
        """{name: path} of the disk files a resize moved aside here."""
        return resize.aside_files(self.instance_dir(instance))

    def migration_disk_names(self):
        return resize.TRAVELLING

    def receive_dir(self, instance):
        return self.instance_dir(instance)

    def copy_aside_disks(self, instance):
        files.copy_aside(self.instance_dir(instance))

    def has_instance_files(self, instance):
        return os.path.lexists(self.instance_dir(instance))

    def remove_instance_files(self, instance):
        files.remove_dir(self.instance_dir(instance))

    # -- the host's storage --------------------------------------------------------

    def free_disk_bytes(self):
        return files.free_bytes(self.instances_path)

    def write_shared_probe(self, host):
        return files.write_probe(self.instances_path, host)

    def has_shared_probe(self, name):
        return os.path.exists(files.probe_path(self.instances_path, name))

    def remove_shared_probe(self, name):
        os.unlink(files.probe_path(self.instances_path, name))

    def remove_leftovers(self):
        for name in files.remove_leftovers(self.instances_path, files.LEFTOVER_AGE):
            LOG.warning("removed %s, left by an interrupted check", name)

    def bases_in_use(self):
        return files.bases_in_use(self.instances_path, self.cache.base_dir)

    def shutdown(self, instance, timeout, retry_interval=None):
        """ACPI power-button requests for up to timeout seconds; halfway, a
        guest with a connected guest agent is also asked through it.
        Whether the guest went down."""
        guest = self._lookup(instance)
        if guest is None or not guest.is_active():
            return True
        deadline = time.monotonic() + timeout
        agent_at = time.monotonic() + timeout / 2
        while True:
            now = time.monotonic()
            if agent_at is not None and now >= agent_at:
                agent_at = None
                guest_agent.shutdown(guest, self.conf.libvirt.guest_agent_timeout,
                                     instance.uuid)
            else:
                try:
                    guest.shutdown()
                except errors.VirtError as e:     # it went down meanwhile
                    LOG.debug("shutdown request for %s: %s", instance.uuid, e)
            remaining = deadline - time.monotonic()
            step = min(remaining, retry_interval or remaining)
            if agent_at is not None:
                step = min(step, max(agent_at - time.monotonic(), 0.05))
            if self.host.wait_for_power_state(instance.uuid, OFF_STATES, max(step, 0)):
                return True
            if time.monotonic() >= deadline:
                return False

    def set_admin_password(self, instance, user, password):
        guest_agent.set_password(self._guest(instance), self.conf.libvirt.guest_agent_timeout,
                                 instance.uuid, user, password)

    def power_off(self, instance):
        guest = self._lookup(instance)
        if guest is not None:
            guest.destroy()

    def suspend(self, instance):
        self._guest(instance).managed_save()

    def resume(self, instance):
        guest = self._guest(instance)
        if not guest.is_active():
            guest.launch()

    def pause(self, instance):
        self._guest(instance).pause()

    def unpause(self, instance):
        self._guest(instance).unpause()

    def attach_volume(self, instance, volume, secret_value):
        self.volumes.attach(self._guest(instance), instance.uuid, volume, secret_value)

    def detach_volume(self, instance, volume, timeout):
        guest = self._lookup(instance)
        if guest is not None:
            self.volumes.detach(guest, volume, timeout)
        self.volumes.forget_secret(volume)

    def volume_capacity(self, instance, volume):
        guest = self._lookup(instance)
        if guest is None or not guest.is_active():
            return None
        return guest.block_capacity(volume.device)

    def extend_volume(self, instance, volume, new_size):
        guest = self._lookup(instance)
        if guest is None or not guest.is_active():
            return False
        guest.block_resize(volume.device, new_size)
        return True

    def connect_volume(self, instance, volume, secret_value):
        if volume.secret_uuid:
            self.volumes.store_secret(instance.uuid, volume, secret_value)

    def forget_volume(self, instance, volume):
        self.volumes.forget_secret(volume)

    def attach_interface(self, instance, image_meta, vif):
        guest = self._guest(instance)
        iface = builder.build_interfaces([vif], image_meta)[0]
        guest.attach_device(iface.to_xml(), live=guest.is_active())

    def detach_interface(self, instance, image_meta, vif):
        interfaces.detach(self._guest(instance), instance.uuid, vif["address"],
                          self.conf.libvirt.device_detach_timeout)

    def snapshot(self, instance, image_files, workdir, out_format, live, progress):
        """A flat image of the root disk in workdir (its path).  live: the
        guest runs and keeps running, its writes held in an overlay that
        end_snapshot merges back; otherwise the guest must be off or saved
        and the disk is read directly."""
        root = self._root(instance)
        fmt = instance.disk_formats.get("disk", "qcow2")
        total = self.snapshot_bytes(instance, image_files)
        backend = self.disks.of(instance)
        if backend.exports_root:                        # the guest runs on
            out = os.path.join(workdir, f"snapshot.{out_format}")
            with snap.watching(out, total, progress):
                return backend.export_root(instance, out, out_format,
                                           f"snap-{uuidlib.uuid4().hex}")
        if live:
            self.end_snapshot(instance)           # a leftover overlay first
            snap.freeze(self._guest(instance), root, self._overlay(instance),
                        self.conf.libvirt.guest_agent_timeout, fmt)
        return snap.flatten(root, fmt, workdir, out_format, total, progress, frozen=live)

    def snapshot_bytes(self, instance, image_files):
        """Upper bound of a snapshot's flat image: the allocated bytes of
        the root disk and of its base (an RBD root's virtual size)."""
        backend = self.disks.of(instance)
        if backend.exports_root:
            return backend.root_size(instance)
        return driver.allocated(self._root(instance)) + driver.allocated(image_files.root.path)

    def end_snapshot(self, instance):
        """The guest back on its own root disk after a live snapshot (also
        one a killed agent left half-done); nothing to do otherwise."""
        overlay = self._overlay(instance)
        if not os.path.exists(overlay):
            return
        try:
            guest = self._guest(instance)
        except errors.InstanceNotFound:
            return
        snap.merge_back(guest, self.host.define, self._root(instance), overlay)

    def _root(self, instance):
        return os.path.join(self.instance_dir(instance), "disk")

    def _overlay(self, instance):
        return os.path.join(self.instance_dir(instance), snap.OVERLAY)

    # -- live migration (the libvirt side in virt.libvirt.live) ------------------

    def migration_paths(self, instance, image_files):
        return self.live.paths(self.instance_dir(instance), image_files)

    def migration_cpu(self, instance):
        return self.live.cpu(self._guest(instance))

    def check_cpu(self, cpu_xml):
        self.live.check_cpu(cpu_xml)

    def sync_disks(self, instance):
        live.sync_dir(self.instance_dir(instance))

    def instance_disk_bytes(self, instance):
        return live.dir_bytes(self.instance_dir(instance))

    def pre_live_migration(self, instance, image_files, block):
        """Destination side: the instance directory and, for a block
        migration, empty overlays on this host's bases for the copy."""
        inst_dir = self.instance_dir(instance)
        files.make_dir(inst_dir)
        self.write_config_drive(instance)      # libvirt copies no read-only disk
        if not self.in_ceph(instance) and block:
            formats = disks.create_all(inst_dir, instance.flavor, image_files, self.cache,
                                       True, root=instance.boot_volume is None)
            return {d.name: d.format for d in formats}
        return dict(instance.disk_formats)

    def hold_console_ports(self, instance):
        return self.live.hold_console_ports(check_uuid(instance.uuid))

    def release_serial_port(self, instance):
        self.serial_ports.release(instance.uuid)

    def is_alive(self):
        return self.host.alive()

    def live_migration_tls(self):
        return self.live.tls()

    def has_migration_certificates(self):
        return self.live.has_certificates()

    def missing_migration_certificates(self):
        return self.live.missing_certificates()

    def live_migrate(self, instance, dest, src_paths, dest_paths, block, control, progress):
        """Source side (live.LiveMigrator.migrate); a guest on a snapshot
        overlay is merged back first (the overlay does not travel)."""
        self.end_snapshot(instance)
        return self.live.migrate(self._guest(instance), instance.flavor, dest, src_paths,
                                 dest_paths, block, control, progress)

    def get_diagnostics(self, instance):
        return diagnostics.of_guest(self._guest(instance), self.conf.libvirt.guest_agent_timeout)

    def saved_state_bytes(self):
        """Sizes of the managed-save images of this agent's guests."""
        return sum(driver.allocated(os.path.join(self.conf.libvirt.save_image_dir,
                                                 f"{DOMAIN_PREFIX}{uuid}.save"))
                   for uuid in self.list_instance_uuids())

    def _lookup(self, instance):
        try:
            return self.host.lookup(check_uuid(instance.uuid))
        except errors.InstanceNotFound:
            return None

    def _guest(self, instance):
        return self.host.lookup(check_uuid(instance.uuid))

    def write_config_drive(self, instance):
        """The instance's config drive written (anew) in its directory from
        instance.config_drive; its path, or None when it has none (an old
        drive is then removed)."""
        path = os.path.join(self.instance_dir(instance), configdrive.FILE_NAME)
        if instance.config_drive is None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            return None
        configdrive.write(path, instance.config_drive)
        return path

    def domain_xml(self, instance, image_meta, image_files, guest_disks, network_info):
        """The guest's XML, its config drive (re)written first: every
        definition of a guest on a host brings the drive up to date with
        the record (ports attached since, a host it moved to)."""
        boot = builder.BootFiles(
            kernel=image_files.kernel.path if image_files.kernel else None,
            initrd=image_files.ramdisk.path if image_files.ramdisk else None)
        log = os.path.join(self.instance_dir(instance), logs.LOG_NAME)
        nvram = files.nvram(self.instance_dir(instance), image_meta, self.settings)
        password = secrets.token_urlsafe(6) if self.conf.libvirt.vnc_password else None
        dom = builder.build_domain(instance, image_meta, guest_disks, network_info, boot,
                                   log, self.settings, self.write_config_drive(instance),
                                   self.serial_ports.listen_for(instance.uuid), nvram,
                                   password)
        return dom.to_xml()

    def get_console_target(self, instance, kind):
        """(address, port, password) where the running guest's `kind`
        console (serial or vnc) listens, and the VNC server's password
        (None for serial); ConsoleUnavailable when it has none."""
        guest = self._lookup(instance)
        if guest is None or not guest.is_active():
            raise errors.ConsoleUnavailable(f"instance {instance.uuid} is not running")
        if kind == "serial":
            target = console_ports.serial_target(guest.xml_desc())
            target = target and (*target, None)
        else:
            target = console_ports.vnc_target(guest.secure_xml_desc())
        if target is None:
            raise errors.ConsoleUnavailable(f"instance {instance.uuid} has no {kind} console")
        return target

    def destroy(self, instance, network_info, destroy_disks=True):
        guest = self._lookup(instance)
        if guest is not None:
            guest.destroy()
            guest.undefine()
        if destroy_disks:
            shutil.rmtree(self.instance_dir(instance), ignore_errors=False,
                          onerror=_ignore_missing)
            resize.remove_aside(self.instance_dir(instance))   # an unconfirmed resize's

    def get_info(self, instance):
        return self._guest(instance).info()

    def list_instance_uuids(self):
        return [g.uuid for g in self.host.list_guests() if g.name.startswith(DOMAIN_PREFIX)]

    def get_console_output(self, instance, max_bytes):
        try:
            return logs.console_tail(check_uuid(instance.uuid), max_bytes)
        except logs.Refused as e:       # a planted link, a file not virtlogd's
            LOG.warning("instance %s: console log refused by the privileged reader: %s",
                        instance.uuid, e)
            raise errors.ConsoleUnavailable(
                f"instance {instance.uuid}: its console log was refused ({e})") from None

    def get_available_resource(self):
        memory_mb, cpus = self.host.node_info()
        st = os.statvfs(self.instances_path)
        gib = 1024 ** 3
        return driver.HostResources(
            hypervisor_type=self.host.hypervisor_type(), hypervisor_version=self.host.version(),
            hostname=self.host.hostname(), vcpus=cpus, memory_mb=memory_mb,
            memory_mb_free=self.host.free_memory_mb(),
            local_gb=st.f_blocks * st.f_frsize // gib,
            local_gb_free=st.f_bavail * st.f_frsize // gib)


def _ignore_missing(func, path, exc_info):
    if not isinstance(exc_info[1], FileNotFoundError):
        raise exc_info[1]
