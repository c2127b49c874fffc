"""The firewall applier: installs the rules of network.firewall (layer 3,
iptables and ip6tables) and network.l2filter (layer 2, nftables bridge
family) on this host, through privileged.firewall.apply_firewall.  One
apply() takes the whole desired state (every port with its network, group
and floating IP of the host, and the networks this host routes for) and
hands it over as plain data (network.hoststate): the privileged side
renders the rules and applies the difference with what is installed, so
each change is atomic and a restart or a hard reboot rebuilds exactly the
same rules.  When nothing is left, every chain, jump and table of ours is
removed.

That never leaves a guest half-filtered: apply() returns when the layer-2
table and both IP versions are done, a port's rules are in place before
its guest is defined or its NIC attached, and removed only after the guest
or NIC is gone."""
import logging
import threading

from network import hoststate
from privileged import firewall as priv

LOG = logging.getLogger(__name__)


class IptablesFirewall:
    def __init__(self):
        self.metadata = False          # set while the metadata service listens
        self._lock = threading.Lock()

    def apply(self, vifs, groups, floating_ips=(), snat_networks=()):
        """Make the host's rules those of vifs ([(Network, Port)]), groups,
        floating_ips and snat_networks."""
        state = hoststate.to_wire(sorted(vifs, key=lambda v: v[1].id), groups,
                                  sorted(floating_ips, key=lambda f: f.address),
                                  snat_networks, self.metadata)
        with self._lock:
            priv.apply_firewall(state)
