"""The command line of a network's dnsmasq, as a pure function of the
network: only the agent's options (no configuration file, DNS off, static
leases only, no script), bound to the network's bridge at the host's
address there, its files in one directory.  privileged.network builds it
itself from a decoded network; nothing of a caller's text reaches it."""
import ipaddress


def dnsmasq_argv(network, conf_dir, lease_seconds):
    net = ipaddress.ip_network(network.cidr)
    argv = ["dnsmasq", "--conf-file=/dev/null", "--strict-order", "--bind-interfaces",
            f"--interface={network.bridge}", "--except-interface=lo",
            f"--listen-address={network.host_address}", "--port=0",
            f"--dhcp-range={net.network_address},static,{net.netmask},"
            f"{lease_seconds}s",
            f"--dhcp-hostsfile={conf_dir}/hosts", f"--dhcp-leasefile={conf_dir}/leases",
            f"--pid-file={conf_dir}/pid", f"--log-facility={conf_dir}/log",
            "--dhcp-no-override", "--log-dhcp"]
    argv.append(f"--dhcp-option=3,{network.gateway}" if network.gateway
                else "--dhcp-option=3")
    if network.dns_servers:
        argv.append("--dhcp-option=6," + ",".join(network.dns_servers))
    if network.mtu:
        argv.append(f"--dhcp-option=26,{network.mtu}")
    return argv
