"""Typed errors raised by hypervisor drivers."""


class VirtError(Exception):
    """Base of every driver error; str() is the operator-facing reason."""


class InstanceNotFound(VirtError):
    pass


class HypervisorUnavailable(VirtError):
    pass


class InvalidImageProperty(VirtError):
    """An image property (hw_disk_bus, ...) has a value we do not accept."""


class DiskTooSmall(VirtError):
    """The image's virtual size exceeds the flavor's root disk."""


class DiskMissing(VirtError):
    """An instance's root disk is gone; booting a blank one would lose data."""


class CPUIncompatible(VirtError):
    """This host's hypervisor cannot provide a guest's CPU."""


class GuestAgentUnavailable(VirtError):
    """The guest has no QEMU guest agent, or it does not answer."""


class MigrationTLSError(VirtError):
    """A live migration over TLS failed its handshake: a peer's certificate
    does not verify (another CA, wrong address, expired)."""


class ConsoleUnavailable(VirtError):
    """The guest has no console of that kind now (not running, not enabled)."""


class VolumeAttachFailed(VirtError):
    """QEMU could not open a volume (unreachable server, login or key
    refused, no such LUN or image); the guest is as it was."""


class UnsafeDomain(VirtError):
    """The agent refused to hand libvirt a definition outside what it may
    run (virt.libvirt.confine): nothing reached libvirt."""


class BlockJobNotReady(VirtError):
    """A block job in sync that libvirt does not yet call ready to pivot."""
