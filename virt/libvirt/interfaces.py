"""A port's NIC taken out of a guest: matched by MAC in the definition
and, for a running guest, waited for until the guest releases it."""
import time

from virt import errors
from virt.libvirt.xml.domain import Domain


def detach(guest, uuid, mac, timeout):
    """Remove the NIC with this MAC from the definition and the running
    guest; a NIC that is not there is fine."""
    mac = mac.lower()

    def nic():
        return next((i for i in Domain.parse(guest.xml_desc()).devices.interfaces
                     if (i.mac or "").lower() == mac), None)
    iface = nic()
    if iface is None:
        return
    live = guest.is_active()
    guest.detach_device(iface.to_xml(), live=live)
    # a live unplug completes when the guest releases the device
    deadline = time.monotonic() + (timeout if live else 0)
    while live and nic() is not None:
        if time.monotonic() > deadline:
            raise errors.VirtError(f"instance {uuid}: the guest did not release NIC {mac}; "
                                   "it is gone from the definition and leaves on the next "
                                   "hard reboot")
        time.sleep(0.1)
