"""The firewall applier: installs the rules of network.firewall (layer 3,
iptables) and network.l2filter (layer 2, nftables bridge family) on this
host.  One apply() takes the whole desired state (every port with its
network, group and floating IP of the host, and the networks this host
routes for), reads what of ours is installed (iptables-save), and applies
the difference with one iptables-restore --noflush per table family and
one `nft -f` for the agent's bridge table, so each change is atomic and a
restart or a hard reboot rebuilds exactly the same rules.  When nothing is
left, every chain, jump and table of ours is removed.

The three commits (layer 2, IPv4, IPv6: nft and iptables cannot share
one) run at once, on threads, since each reads and writes only its own
tables.  That never leaves a guest half-filtered: apply() returns when all
three are done, a port's rules are in place before its guest is defined or
its NIC attached, and removed only after the guest or NIC is gone."""
import logging
import threading
from concurrent.futures import ThreadPoolExecutor, wait

from network import firewall, l2filter
from privileged import network as priv

LOG = logging.getLogger(__name__)
VERSIONS = (4, 6)


def group_members(ports, groups):
    """{group id: IPs} for remote-group rules: ports of the group on this
    host, plus the members the controller listed (ports on other hosts)."""
    members = {gid: set(g.members) for gid, g in groups.items()}
    for p in ports:
        for gid in p.security_groups:
            members.setdefault(gid, set()).update(p.fixed_ips)
    return {gid: tuple(sorted(ips)) for gid, ips in members.items()}


class IptablesFirewall:
    def __init__(self, public_interface=None):
        self.public_interface = public_interface
        self.metadata_port = None      # set while the metadata service listens
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(3, thread_name_prefix="firewall")
        self._l2_applied = None        # the nft text last applied (None: unknown)

    def desired(self, vifs, groups, floating_ips, version, snat_networks=()):
        vifs = sorted(vifs, key=lambda v: v[1].id)
        ports = [p for _, p in vifs]
        tables = {"filter": firewall.filter_chains(vifs, groups, version,
                                                   group_members(ports, groups),
                                                   self.metadata_port)}
        if version == 4:
            tables["nat"] = firewall.nat_chains(
                sorted(floating_ips, key=lambda f: f.address),
                sorted(snat_networks, key=lambda n: n.id), self.public_interface,
                firewall.metadata_rules(vifs, self.metadata_port)
                if self.metadata_port else ())
        return tables

    def apply(self, vifs, groups, floating_ips=(), snat_networks=()):
        """Make the host's rules those of vifs ([(Network, Port)]), groups,
        floating_ips and snat_networks."""
        with self._lock:
            jobs = [self._pool.submit(self._apply_l2, l2filter.ruleset([p for _, p in vifs]))]
            jobs += [self._pool.submit(self._apply_l3, version,
                                       self.desired(vifs, groups, floating_ips, version,
                                                    snat_networks))
                     for version in VERSIONS]
            wait(jobs)
            for job in jobs:
                job.result()              # the first failure, once all have ended

    def _apply_l3(self, version, tables):
        current = firewall.parse_save(priv.iptables_save(version))
        text = firewall.render(tables, {t: current[t] for t in current if t in tables})
        if text:
            priv.iptables_restore(version, text)

    def _apply_l2(self, text):
        if text != self._l2_applied:
            self._l2_applied = None       # unknown until nft has succeeded
            priv.nft_apply(text)
            self._l2_applied = text
