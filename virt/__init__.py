"""Hypervisor drivers: the small driver interface (virt.driver) and its
libvirt implementation (virt.libvirt): domain XML, host and guest wrappers,
instance disks."""
