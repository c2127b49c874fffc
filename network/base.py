"""The VIF plugin seam: what the manager may ask of a plugin that connects
guest ports to the host's network.  Plugins are found by name through the
`compute.vif_plugins` entry points (stevedore).  The firewall and DHCP are
not the plugin's business: the manager applies them around plug/unplug."""
import abc

from stevedore import driver as stevedore_driver

from network import hostres


class VIFPlugin(abc.ABC):
    @abc.abstractmethod
    def describe(self, network, port):
        """The VIF dict the domain XML needs for port: id, address (MAC),
        bridge, devname (tap name) and mtu (None: the default)."""

    def check(self, network, field, known):
        """Refuse (ValueError naming field) a network this host cannot
        serve, before anything is changed; known: {id: Network} of the
        networks the host serves.  Plugins that create host devices check
        them too."""
        hostres.check_known(network, field, known)

    def cleanup(self):  # noqa: B027 - optional: most plugins leave nothing half-made
        """Agent start: remove what a killed agent left half-made."""

    @abc.abstractmethod
    def plug(self, network, vif):
        """Prepare the host side (bridge, uplink) before the guest is
        defined.  Idempotent."""

    @abc.abstractmethod
    def unplug(self, network, vif):
        """Undo what plug did for this port alone, after the guest is gone;
        unplugging what is not plugged is not an error."""

    @abc.abstractmethod
    def release(self, network):
        """The network's last port left this host: remove its bridge and
        uplink.  Releasing what does not exist is not an error."""


def load(name, conf):
    return stevedore_driver.DriverManager("compute.vif_plugins", name, invoke_on_load=True,
                                          invoke_args=(conf,)).driver
