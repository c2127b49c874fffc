"""LiveMigrator: the libvirt side of live migration on one host, for the
driver: the paths a destination XML is rewritten between, the CPU check,
the console servers an arriving guest gets, TLS, and the migration call
itself under its monitor (virt.libvirt.migration).  Also the two file
duties around it: flushing an instance directory and sizing it."""
import logging
import os

import libvirt

from privileged.logs import LOG_NAME
from virt import driver, errors
from virt.libvirt import migration

LOG = logging.getLogger(__name__)


def sync_dir(inst_dir):
    """fsync every data file of an instance directory, then the directory."""
    for name in os.listdir(inst_dir):
        if name.startswith(LOG_NAME):      # virtlogd's (root, 0600), not data
            continue
        fd = os.open(os.path.join(inst_dir, name), os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    fd = os.open(inst_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def dir_bytes(inst_dir):
    """Bytes the instance directory's files hold on disk (what a block
    migration writes at the destination, at most)."""
    return sum(driver.allocated(os.path.join(inst_dir, n)) for n in os.listdir(inst_dir))


class LiveMigrator:
    def __init__(self, libvirt_conf, host, serial_ports):
        self.lv, self.host, self.serial_ports = libvirt_conf, host, serial_ports

    @staticmethod
    def paths(inst_dir, image_files):
        """{role: host path} a destination XML is rewritten to/from."""
        paths = {"instance_dir": inst_dir}
        for role in ("kernel", "ramdisk"):
            f = getattr(image_files, role)
            if f is not None:
                paths[role] = f.path
        return paths

    def cpu(self, guest):
        """Source side: the CPU description the destination must provide
        (migration.cpu_to_compare), or None."""
        return migration.cpu_to_compare(guest.xml_desc(), self.host.cpu_xml)

    def check_cpu(self, cpu_xml):
        """Destination side: raise CPUIncompatible unless this host can run
        a guest with that CPU (or cpu_xml is no plain <cpu> description)."""
        self.host.compare_cpu(migration.clean_cpu_xml(cpu_xml), self.lv.virt_type)

    def hold_console_ports(self, uuid):
        """Destination side: where an arriving guest's consoles listen here:
        vnc_listen, and serial {host, port} held until the driver's
        release_serial_port (absent when serial consoles are off)."""
        listen = self.serial_ports.hold_for_incoming(uuid)
        answer = {"vnc_listen": self.lv.vnc_listen}
        return answer | ({"serial": {"host": listen[0], "port": listen[1]}} if listen else {})

    def tls(self):
        return self.lv.live_migration_with_native_tls

    def has_certificates(self):
        return migration.has_tls_files(self.lv.live_migration_tls_cert_dir)

    def missing_certificates(self):
        return migration.missing_tls_files(self.lv.live_migration_tls_cert_dir)

    def migrate(self, guest, flavor, dest, src_paths, dest_paths, block, control, progress):
        """Source side: migrate the running guest to dest ({libvirt_uri,
        migrate_uri, serial, vnc_listen}) under a monitor
        (migration.run_and_monitor); the seconds it took once the guest
        runs there, or raises with the guest still running here."""
        lv = self.lv
        mapping = {src_paths[k]: dest_paths[k] for k in src_paths if k in dest_paths}
        serial = dest.get("serial")
        xml = migration.rewrite_for_destination(
            guest.migratable_xml(), mapping,
            (serial["host"], serial["port"]) if serial else None, dest.get("vnc_listen"))
        params = {libvirt.VIR_MIGRATE_PARAM_URI: dest["migrate_uri"],
                  libvirt.VIR_MIGRATE_PARAM_DEST_XML: xml}
        copied = migration.copied_disks(xml) if block else []
        if copied:      # the local disks only: never a volume
            params[libvirt.VIR_MIGRATE_PARAM_MIGRATE_DISKS] = copied
        block = bool(copied)        # a guest on volumes alone has nothing to copy
        if lv.live_migration_bandwidth:
            params[libvirt.VIR_MIGRATE_PARAM_BANDWIDTH] = lv.live_migration_bandwidth
        memory_gib = flavor.memory_mb / 1024
        data_gib = memory_gib + (flavor.root_gb if block else 0)
        schedule = migration.downtime_steps(lv.live_migration_downtime,
                                            lv.live_migration_downtime_steps,
                                            lv.live_migration_downtime_delay, data_gib)
        tls = self.tls()
        flags = migration.flags(block, lv.live_migration_permit_auto_converge,
                                lv.live_migration_permit_post_copy, lv.live_migration_unsafe,
                                tls)
        LOG.info("instance %s: live migration to %s with flags %s; disks copied: %s",
                 guest.uuid, dest["migrate_uri"], " ".join(migration.flag_names(flags)),
                 ", ".join(copied) or "none")
        try:
            return migration.run_and_monitor(
                guest, dest["libvirt_uri"], params, flags, schedule,
                lv.live_migration_completion_timeout * max(data_gib, 1.0), control, progress,
                post_copy=lv.live_migration_permit_post_copy)
        except errors.VirtError as e:
            if tls and migration.is_tls_failure(str(e)):
                raise errors.MigrationTLSError(
                    f"live migration over TLS to {dest['migrate_uri']} refused: the hosts' "
                    f"certificates do not verify each other ({e})") from None
            raise
