"""Options of guest networking ([network]): VIF plugin, firewall, DHCP and
floating IPs."""
from oslo_config import cfg

network_group = cfg.OptGroup("network", title="Guest networking")

network_opts = [
    cfg.StrOpt("vif_plugin", default="noop",
               help="Name of the VIF plugin (entry point in compute.vif_plugins) that "
                    "plugs guest ports: linux_bridge (a Linux bridge per network with a "
                    "flat, VLAN or VXLAN uplink) or noop (no host networking)."),
    cfg.StrOpt("firewall_driver", default="iptables", choices=["iptables", "noop"],
               help="How security groups and anti-spoofing are enforced: iptables "
                    "(IPv4 and IPv6 chains per port, applied with iptables-restore) or "
                    "noop (no filtering at all; for hosts without netfilter)."),
    cfg.BoolOpt("dhcp_enabled", default=True,
                help="Run one dnsmasq per network on this host, serving the static "
                     "addresses of this host's ports, for networks with dhcp enabled "
                     "whose payload gives this host an address (host_address)."),
    cfg.IntOpt("dhcp_lease_seconds", default=86400, min=120,
               help="Lease time dnsmasq gives guests, in seconds."),
    cfg.StrOpt("public_interface", default="eth0",
               help="Interface on which floating IPs are added (as /32 addresses) and "
                    "from which their traffic is DNATed to the fixed IPs; guests of a "
                    "network whose gateway is this host reach outside through SNAT "
                    "on it."),
    cfg.DictOpt("physical_interface_mappings", default={},
                help="physical network name -> host interface, for example "
                     "'physnet1:eth1,physnet2:bond0'. A flat or VLAN network names "
                     "its physical network; the uplink is the interface mapped "
                     "here. No payload names a host interface itself."),
    cfg.IPOpt("tunnel_local_ip",
              help="This host's address for VXLAN tunnels (the source of the "
                   "encapsulated traffic). Without it the host refuses VXLAN "
                   "networks."),
    cfg.ListOpt("floating_ranges", default=[],
                help="CIDRs floating IPs may be taken from, for example "
                     "'203.0.113.0/24'. An address outside them, or one the host "
                     "already holds, is refused."),
]


def list_opts():
    return [(network_group, network_opts)]
