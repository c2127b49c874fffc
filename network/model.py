"""What the agent knows of guest networking, as plain immutable data:
networks, ports and security groups, as they arrive in RPC payloads."""
import dataclasses


@dataclasses.dataclass(frozen=True)
class Rule:
    """One security-group rule; traffic it matches is allowed."""

    direction: str                    # ingress (to the guest) | egress (from it)
    ethertype: str = "IPv4"           # IPv4 | IPv6
    protocol: str | None = None       # tcp | udp | icmp | icmpv6 | None (any)
    port_min: int | None = None
    port_max: int | None = None
    remote_ip_prefix: str | None = None
    remote_group_id: str | None = None


@dataclasses.dataclass(frozen=True)
class SecurityGroup:
    id: str
    rules: tuple = ()


@dataclasses.dataclass(frozen=True)
class Port:
    id: str
    network_id: str
    mac: str
    fixed_ips: tuple = ()             # "10.0.0.5", "fd00::5"
    security_groups: tuple = ()       # SecurityGroup ids

    @property
    def devname(self):
        """The guest's tap device: 'tap' + 11 characters of the port id, as
        Nova names it (IFNAMSIZ allows 15)."""
        return "tap" + self.id[:11]

    def ips(self, version):
        return tuple(ip for ip in self.fixed_ips if (":" in ip) == (version == 6))
