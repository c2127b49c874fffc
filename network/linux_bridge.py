"""The linux_bridge VIF plugin: one Linux bridge per network on the host,
with the network's uplink as a bridge port (the physical interface itself
for flat, a VLAN sub-interface for vlan, a VXLAN device for vxlan) and this
host's address on the bridge when the network gives one.  libvirt creates
the guest's tap (<interface type='bridge'>, target named from the port id)
and attaches it to the bridge."""
from network import linux_net
from network.base import VIFPlugin


class LinuxBridgePlugin(VIFPlugin):
    def __init__(self, conf=None):
        self.conf = conf

    def describe(self, network, port):
        return {"id": port.id, "address": port.mac, "bridge": network.bridge,
                "devname": port.devname, "mtu": network.mtu}

    @staticmethod
    def uplink(network):
        """The device plugged into the network's bridge, or None."""
        seg = network.segmentation
        if seg.type == "vlan":
            return linux_net.vlan_device_name(seg.physical_interface, seg.vlan_id)
        if seg.type == "vxlan":
            return linux_net.vxlan_device_name(seg.vni)
        return seg.physical_interface

    def plug(self, network, vif):
        seg = network.segmentation
        linux_net.ensure_bridge(network.bridge, network.mtu)
        if seg.type == "vlan":
            dev = linux_net.ensure_vlan(seg.physical_interface, seg.vlan_id, network.mtu)
        elif seg.type == "vxlan":
            dev = linux_net.ensure_vxlan(seg.vni, seg.local_ip, seg.peers,
                                         seg.physical_interface, network.mtu)
        else:
            dev = seg.physical_interface
        if dev:
            linux_net.set_master(dev, network.bridge)
        if network.host_address:
            linux_net.ensure_address(network.bridge,
                                     f"{network.host_address}/{network.prefixlen}")

    def unplug(self, network, vif):
        linux_net.delete_link(vif["devname"])     # libvirt normally removed it already

    def release(self, network):
        seg = network.segmentation
        if seg.type in ("vlan", "vxlan"):
            linux_net.delete_link(self.uplink(network))
        elif seg.physical_interface:
            linux_net.release_from_bridge(seg.physical_interface)
        linux_net.delete_link(network.bridge)
