"""A guest's diagnostics (get_diagnostics): what libvirt and, when
connected, the guest agent say of it, as plain data."""
from virt import driver
from virt.libvirt import guest_agent
from virt.libvirt.xml.domain import Domain


def of_guest(guest, agent_timeout):
    """What get_diagnostics answers of a guest: power state, CPU time,
    memory, and (when it runs) its disks' and NICs' counters and what its
    guest agent says."""
    info = guest.info()
    dom = Domain.parse(guest.xml_desc())
    active = info.power_state in (driver.RUNNING, driver.PAUSED)
    return {
        "power_state": driver.POWER_STATE_NAMES[info.power_state],
        "cpu_time_ns": info.cpu_time_ns, "vcpus": info.vcpus,
        "memory_kib": info.memory_kib,
        "memory_stats": guest.memory_stats() if active else {},
        "disks": {d.target_dev: guest.block_stats(d.target_dev) if active else {}
                  for d in dom.devices.disks},
        "interfaces": {i.target_dev: guest.interface_stats(i.target_dev) if active else {}
                       for i in dom.devices.interfaces if i.target_dev},
        "guest_agent": guest_agent.state(dom) or "none",
        "guest_addresses": guest_agent.addresses(guest, agent_timeout)
        if active and guest_agent.state(dom) == "connected" else {},
    }
