"""The linux_bridge VIF plugin: one Linux bridge per network on the host,
with the network's uplink as a bridge port (the interface its physical
network maps to for flat, a VLAN sub-interface of it for vlan, a VXLAN
device from the configured tunnel address for vxlan) and this host's
address on the bridge when the network gives one.  libvirt creates the
guest's tap (<interface type='bridge'>, target named from the port id)
and attaches it to the bridge.

Every device it creates carries the agent's alias for its network
(network.names); check() refuses, before anything is changed, a network
that would need a device the agent does not own, an unmapped physical
network, or a bridge or uplink another network uses (network.hostres)."""
from network import hostres, linux_net
from network.base import VIFPlugin


class LinuxBridgePlugin(VIFPlugin):
    def __init__(self, conf=None):
        self.conf = conf
        net = conf.network if conf is not None else None
        self.mappings = dict(net.physical_interface_mappings) if net else {}
        self.tunnel_ip = str(net.tunnel_local_ip) if net and net.tunnel_local_ip else None

    def describe(self, network, port):
        return {"id": port.id, "address": port.mac, "bridge": network.bridge,
                "devname": port.devname, "mtu": network.mtu}

    def check(self, network, field, known):
        host = hostres.HostView(linux_net.devices(), linux_net.host_addresses(),
                                self.mappings, self.tunnel_ip)
        hostres.check_network(network, field, host, known)

    def cleanup(self):
        linux_net.remove_unfinished()

    def uplink(self, network):
        """The device plugged into the network's bridge, or None."""
        return hostres.uplink(network, self.mappings)

    def plug(self, network, vif):
        seg = network.segmentation
        linux_net.ensure_bridge(network.bridge, network.id, network.mtu)
        if seg.type == "vlan":
            dev = linux_net.ensure_vlan(self.mappings[seg.physical_network], seg.vlan_id,
                                        network.id, network.mtu)
        elif seg.type == "vxlan":
            if not self.tunnel_ip:
                raise linux_net.DeviceConflict("no tunnel_local_ip configured for VXLAN")
            dev = linux_net.ensure_vxlan(seg.vni, self.tunnel_ip, seg.peers, network.id,
                                         network.mtu)
        else:
            dev = self.uplink(network)
        if dev:
            linux_net.set_master(dev, network.bridge)
        if network.host_address:
            linux_net.ensure_address(network.bridge,
                                     f"{network.host_address}/{network.prefixlen}")

    def unplug(self, network, vif):
        linux_net.delete_link(vif["devname"])     # libvirt normally removed it already

    def release(self, network):
        seg = network.segmentation
        dev = self.uplink(network) if seg.type == "vxlan" or \
            seg.physical_network in self.mappings else None
        if seg.type in ("vlan", "vxlan"):
            linux_net.delete_owned(dev, network.id)
        elif dev:
            linux_net.release_from_bridge(dev, network.bridge)
        linux_net.delete_owned(network.bridge, network.id)
