"""The VIF plugin seam: what the manager may ask of a plugin that connects
guest ports to the host's network.  Plugins are found by name through the
`compute.vif_plugins` entry points (stevedore)."""
import abc

from stevedore import driver as stevedore_driver


class VIFPlugin(abc.ABC):
    @abc.abstractmethod
    def describe(self, port):
        """The VIF dict the domain XML needs for port: address (MAC),
        bridge, devname (tap name) and optional mtu."""

    @abc.abstractmethod
    def plug(self, vif):
        """Prepare the host side (bridge, uplink, firewall) before define."""

    @abc.abstractmethod
    def unplug(self, vif):
        """Undo plug; unplugging what is not plugged is not an error."""


def load(name, conf):
    return stevedore_driver.DriverManager("compute.vif_plugins", name, invoke_on_load=True,
                                          invoke_args=(conf,)).driver
