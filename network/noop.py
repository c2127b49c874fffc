"""A VIF plugin that plugs nothing: guests without host networking."""
from network.base import VIFPlugin


class NoopVIFPlugin(VIFPlugin):
    def __init__(self, conf=None):
        self.conf = conf

    def describe(self, port):
        return {"id": port.get("id"), "address": port.get("mac"), "bridge": None,
                "devname": None}

    def plug(self, vif):
        pass

    def unplug(self, vif):
        pass
