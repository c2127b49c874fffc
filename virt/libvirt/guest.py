"""A thin wrapper over one libvirt domain: each method is one libvirt call,
with libvirt errors translated into virt.errors types.  Nothing else in the
agent touches virDomain."""
import libvirt

from virt import driver, errors
from virt.libvirt import confine

LIBVIRT_POWER_STATE = {
    libvirt.VIR_DOMAIN_NOSTATE: driver.NOSTATE,
    libvirt.VIR_DOMAIN_RUNNING: driver.RUNNING,
    libvirt.VIR_DOMAIN_BLOCKED: driver.RUNNING,
    libvirt.VIR_DOMAIN_PAUSED: driver.PAUSED,
    libvirt.VIR_DOMAIN_SHUTDOWN: driver.SHUTDOWN,
    libvirt.VIR_DOMAIN_SHUTOFF: driver.SHUTDOWN,
    libvirt.VIR_DOMAIN_CRASHED: driver.CRASHED,
    libvirt.VIR_DOMAIN_PMSUSPENDED: driver.SUSPENDED,
}


def translate(e):
    """The virt.errors exception for a libvirtError."""
    code = e.get_error_code()
    if code == libvirt.VIR_ERR_NO_DOMAIN:
        return errors.InstanceNotFound(e.get_error_message())
    if code == libvirt.VIR_ERR_BLOCK_COPY_ACTIVE:
        return errors.BlockJobNotReady(f"libvirt: {e.get_error_message()}")
    return errors.VirtError(f"libvirt: {e.get_error_message()}")


class Guest:
    def __init__(self, dom, allowed=None):
        """allowed: the confine.Allowed a device or a migration's
        destination XML is checked against before libvirt sees it."""
        self._dom, self._allowed = dom, allowed

    @property
    def uuid(self):
        return self._dom.UUIDString()

    @property
    def name(self):
        return self._dom.name()

    def _do(self, fn, *args):
        try:
            return fn(*args)
        except libvirt.libvirtError as e:
            raise translate(e)

    def is_active(self):
        return bool(self._do(self._dom.isActive))

    def power_state(self):
        state, _reason = self._do(self._dom.state)
        return LIBVIRT_POWER_STATE.get(state, driver.NOSTATE)

    def info(self):
        state, _max_kib, mem_kib, vcpus, cpu_ns = self._do(self._dom.info)
        return driver.InstanceInfo(LIBVIRT_POWER_STATE.get(state, driver.NOSTATE),
                                   mem_kib, vcpus, cpu_ns)

    def attach_device(self, xml, live):
        """Add a device to the definition, and to the running guest if live."""
        flags = libvirt.VIR_DOMAIN_AFFECT_CONFIG | (libvirt.VIR_DOMAIN_AFFECT_LIVE if live else 0)
        if self._allowed is not None:
            confine.check_device(xml, self._allowed)
        self._do(self._dom.attachDeviceFlags, xml, flags)

    def detach_device(self, xml, live, config=True):
        flags = ((libvirt.VIR_DOMAIN_AFFECT_CONFIG if config else 0)
                 | (libvirt.VIR_DOMAIN_AFFECT_LIVE if live else 0))
        self._do(self._dom.detachDeviceFlags, xml, flags)

    def block_capacity(self, dev):
        """The disk's size in bytes as the guest sees it."""
        return self._do(self._dom.blockInfo, dev, 0)[0]

    def block_resize(self, dev, size):
        """The disk is size bytes now (QEMU's block_resize)."""
        self._do(self._dom.blockResize, dev, size, libvirt.VIR_DOMAIN_BLOCK_RESIZE_BYTES)

    def snapshot_disks(self, xml, quiesce=False):
        """An external disk-only snapshot, all disks or none, onto overlay
        files the caller made (REUSE_EXT: they stay the caller's), with no
        snapshot metadata kept by libvirt (the agent tracks it); quiesce:
        the guest agent freezes the guest's filesystems around it."""
        self._do(self._dom.snapshotCreateXML, xml,
                 libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY
                 | libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_NO_METADATA
                 | libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_ATOMIC
                 | libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_REUSE_EXT
                 | (libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_QUIESCE if quiesce else 0))

    # -- the QEMU guest agent (errors when it is absent or does not answer) --------

    def set_agent_timeout(self, seconds):
        """How long libvirt waits for the guest agent's answers."""
        self._do(self._dom.agentSetResponseTimeout, seconds, 0)

    def agent_shutdown(self):
        """Ask the guest agent to power the guest off."""
        self._do(self._dom.shutdownFlags, libvirt.VIR_DOMAIN_SHUTDOWN_GUEST_AGENT)

    def agent_addresses(self):
        """{interface: {hwaddr, addrs: [{type, addr, prefix}]}} as the guest
        agent reports them."""
        return self._do(self._dom.interfaceAddresses,
                        libvirt.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_AGENT, 0) or {}

    def set_user_password(self, user, password):
        self._do(self._dom.setUserPassword, user, password, 0)

    def block_commit_active(self, dev, base):
        """Start merging dev's active layer down into base (a path in its
        chain); the job waits for a pivot once the two are in sync."""
        self._do(self._dom.blockCommit, dev, base, None, 0,
                 libvirt.VIR_DOMAIN_BLOCK_COMMIT_ACTIVE)

    def block_job_info(self, dev):
        """{type, bandwidth, cur, end} of dev's block job; {} when none.
        libvirt reports cur == end (not 0) only once the job is ready."""
        return self._do(self._dom.blockJobInfo, dev, 0) or {}

    def block_job_pivot(self, dev):
        """Switch dev to the job's target and end the job (synchronous)."""
        self._do(self._dom.blockJobAbort, dev, libvirt.VIR_DOMAIN_BLOCK_JOB_ABORT_PIVOT)

    def migratable_xml(self):
        return self._do(self._dom.XMLDesc, libvirt.VIR_DOMAIN_XML_MIGRATABLE
                        | libvirt.VIR_DOMAIN_XML_SECURE)

    def migrate(self, dest_uri, params, flags):
        xml = params.get(libvirt.VIR_MIGRATE_PARAM_DEST_XML)
        if self._allowed is not None and xml is not None:
            confine.check_domain(xml, self._allowed)
        self._do(self._dom.migrateToURI3, dest_uri, params, flags)

    def job_info(self):
        return self._do(self._dom.jobStats, 0) or {}

    def abort_job(self):
        self._do(self._dom.abortJob)

    def start_post_copy(self):
        self._do(self._dom.migrateStartPostCopy, 0)

    def set_max_downtime(self, ms):
        self._do(self._dom.migrateSetMaxDowntime, ms, 0)

    def launch(self):
        self._do(self._dom.createWithFlags, 0)

    def destroy(self):
        """Power off at once; a guest that is not running is fine."""
        try:
            self._dom.destroy()
        except libvirt.libvirtError as e:
            if e.get_error_code() != libvirt.VIR_ERR_OPERATION_INVALID:
                raise translate(e)

    def undefine(self):
        """Remove the definition with its managed-save image, keeping a UEFI
        variable store (the agent's file, in the instance directory: it
        goes with the directory, or travels with the disks), dropping flags
        this hypervisor does not support; gone is fine."""
        keep = libvirt.VIR_DOMAIN_UNDEFINE_KEEP_NVRAM
        for flags in (libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | keep,
                      libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE, 0):
            try:
                self._dom.undefineFlags(flags)
                return
            except libvirt.libvirtError as e:
                if e.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                    return
                if e.get_error_code() not in (libvirt.VIR_ERR_INVALID_ARG,
                                              libvirt.VIR_ERR_NO_SUPPORT) or not flags:
                    raise translate(e)

    def xml_desc(self):
        return self._do(self._dom.XMLDesc, 0)

    def secure_xml_desc(self):
        """The live XML with its secrets (the VNC password)."""
        return self._do(self._dom.XMLDesc, libvirt.VIR_DOMAIN_XML_SECURE)

    def inactive_xml(self):
        """The persistent definition (what the next start uses)."""
        return self._do(self._dom.XMLDesc, libvirt.VIR_DOMAIN_XML_INACTIVE)

    def shutdown(self):
        """Ask the guest to power off (ACPI power button)."""
        self._do(self._dom.shutdown)

    def pause(self):
        """Stop the vCPUs, keep RAM; a paused guest is fine."""
        if self.power_state() != driver.PAUSED:
            self._do(self._dom.suspend)

    def unpause(self):
        if self.power_state() == driver.PAUSED:
            self._do(self._dom.resume)

    def managed_save(self):
        """Save RAM to libvirt's managed-save file and stop the guest; the
        next launch() restores it."""
        self._do(self._dom.managedSave, 0)

    def has_managed_save(self):
        return bool(self._do(self._dom.hasManagedSaveImage, 0))

    def remove_managed_save(self):
        if self.has_managed_save():
            self._do(self._dom.managedSaveRemove, 0)

    def memory_stats(self):
        return self._do(self._dom.memoryStats)

    def block_stats(self, dev):
        keys = ("rd_req", "rd_bytes", "wr_req", "wr_bytes", "errs")
        return dict(zip(keys, self._do(self._dom.blockStats, dev), strict=False))

    def interface_stats(self, dev):
        keys = ("rx_bytes", "rx_packets", "rx_errs", "rx_drop",
                "tx_bytes", "tx_packets", "tx_errs", "tx_drop")
        return dict(zip(keys, self._do(self._dom.interfaceStats, dev), strict=False))
