"""The firewall applier: installs the rules of network.firewall on this
host.  One apply() takes the whole desired state (every port, group and
floating IP of the host), reads what of ours is installed (iptables-save),
and applies the difference with one iptables-restore --noflush per table
family, so each change is atomic and a restart or a hard reboot rebuilds
exactly the same rules.  When nothing is left, every chain and jump of ours
is removed."""
import logging
import threading

from network import firewall, linux_net

LOG = logging.getLogger(__name__)
TOOLS = {4: ("iptables-save", "iptables-restore"), 6: ("ip6tables-save", "ip6tables-restore")}


def group_members(ports, groups):
    """{group id: IPs} for remote-group rules: ports of the group on this
    host, plus the members the controller listed (ports on other hosts)."""
    members = {gid: set(g.members) for gid, g in groups.items()}
    for p in ports:
        for gid in p.security_groups:
            members.setdefault(gid, set()).update(p.fixed_ips)
    return {gid: tuple(sorted(ips)) for gid, ips in members.items()}


class IptablesFirewall:
    def __init__(self):
        self._lock = threading.Lock()

    def desired(self, ports, groups, floating_ips, version):
        ports = sorted(ports, key=lambda p: p.id)
        tables = {"filter": firewall.filter_chains(ports, groups, version,
                                                   group_members(ports, groups))}
        if version == 4:
            tables["nat"] = firewall.nat_chains(sorted(floating_ips,
                                                       key=lambda f: f.address))
        return tables

    def apply(self, ports, groups, floating_ips=()):
        """Make the host's rules those of ports/groups/floating_ips."""
        with self._lock:
            for version, (save, restore) in TOOLS.items():
                tables = self.desired(ports, groups, floating_ips, version)
                current = firewall.parse_save(linux_net.execute(save))
                text = firewall.render(tables, {t: current[t] for t in current
                                                if t in tables})
                if text:
                    linux_net.execute(restore, "--noflush", process_input=text)
