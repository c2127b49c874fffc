"""A VIF plugin that plugs nothing: guests without host networking."""
from network.base import VIFPlugin


class NoopVIFPlugin(VIFPlugin):
    def __init__(self, conf=None):
        self.conf = conf

    def describe(self, network, port):
        return {"id": port.id, "address": port.mac, "bridge": None, "devname": None,
                "mtu": None}

    def plug(self, network, vif):
        pass

    def unplug(self, network, vif):
        pass

    def release(self, network):
        pass
