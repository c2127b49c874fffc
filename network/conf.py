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
                    "from which their traffic is DNATed to the fixed IPs."),
]


def list_opts():
    return [(network_group, network_opts)]
