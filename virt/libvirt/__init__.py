"""The libvirt/QEMU driver: connection wrapper (host), domain wrapper
(guest), declarative domain XML (xml/), the pure XML builder, and disks."""
