"""What the driver asks of a guest's QEMU guest agent (the virtio-serial
channel org.qemu.guest_agent.0, there when the image sets
hw_qemu_guest_agent=yes): whether it is connected, a shutdown through it,
a user's password, and the addresses the guest sees.  Each call is bounded
by libvirt's agent timeout; an agent that is absent or silent raises
GuestAgentUnavailable, or is passed over where it is only a help."""
import logging

from virt import errors
from virt.libvirt.xml.domain import Domain

LOG = logging.getLogger(__name__)
CHANNEL = "org.qemu.guest_agent.0"


def state(domain):
    """'connected' or 'disconnected' for a guest with the agent's channel
    (as its live XML says), None without one."""
    return next((c.state or "disconnected" for c in domain.devices.channels
                 if c.target_name == CHANNEL), None)


def connected(guest):
    return state(Domain.parse(guest.xml_desc())) == "connected"


def shutdown(guest, timeout, uuid):
    """Ask the agent to power the guest off, if there is one that answers;
    whether it was asked."""
    try:
        if not connected(guest):
            return False
        guest.set_agent_timeout(timeout)
        guest.agent_shutdown()
        LOG.info("instance %s: no shutdown on ACPI yet; asked the guest agent", uuid)
        return True
    except errors.VirtError as e:
        LOG.info("instance %s: the guest agent's shutdown failed: %s", uuid, e)
        return False


def set_password(guest, timeout, uuid, user, password):
    if not connected(guest):
        raise errors.GuestAgentUnavailable(
            f"instance {uuid}: no connected QEMU guest agent (the image needs "
            "hw_qemu_guest_agent=yes and qemu-guest-agent running in the guest)")
    guest.set_agent_timeout(timeout)
    try:
        guest.set_user_password(user, password)
    except errors.VirtError as e:
        raise errors.GuestAgentUnavailable(
            f"instance {uuid}: the guest agent did not set the password: {e}") from None


def addresses(guest, timeout):
    """{interface: [address/prefix]} the guest reports, {} when it cannot."""
    try:
        guest.set_agent_timeout(timeout)
        found = guest.agent_addresses()
    except errors.VirtError as e:
        LOG.info("guest agent addresses: %s", e)
        return {}
    return {name: [f"{a['addr']}/{a['prefix']}" for a in iface.get("addrs") or ()]
            for name, iface in found.items()}
