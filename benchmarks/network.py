"""Host-side networking cost, through RPC and in-process.

Through RPC, on a namespaced test host (tests/harness/testbed.py) whose
agent runs guests on a flat network; every figure is the wall time of the
RPC call, which answers once the host is updated:

- rpc_attach_1_s: attach_interface of one port to a running guest (bridge
  port, iptables for layer 3, nftables for layer 2, DHCP, the NIC hot-
  plugged into the guest), the first one;
- rpc_attach_median_s / rpc_attach_last_s: over the ports attached until
  --ports are on the host (each applies the whole host state, so later ones
  carry more rules);
- rpc_sg_update_N_ports_s: with N ports on the host, one security-group
  change (refresh_security_group_rules).

The floor, in a network namespace of its own with the agent's own code and
no RPC or guest (linux_bridge plugin, iptables applier, DHCP), medians of
--rounds runs:

- plug_1_s: plug one port (bridge, VXLAN uplink, host address) and apply
  the host's rules and DHCP, as a build does before defining its guest;
- plug_N_s: the same for N ports, one after another;
- sg_update_N_ports_s: with N ports on the host, one security-group change.

Prints JSON.  Needs root (ip netns), libvirtd-capable hosts and RabbitMQ
(tools/start-daemons.sh); --no-rpc measures the floor alone."""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import types
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks import smoke  # noqa: E402

# the keys its JSON always has (benchmarks/smoke.py checks them)
KEYS = ('ports', 'rounds', 'plug_1_s', 'rpc_attach_1_s', 'rpc_attach_median_s',
        'rpc_attach_last_s')


def one_round(n_ports):
    import privileged
    from network import dhcp, iptables, linux_bridge
    from network.model import Port, group_from_payload, network_from_payload

    net = network_from_payload({
        "id": "bench", "bridge": "brcabench", "cidr": "10.0.0.0/16", "dhcp": True,
        "host_address": "10.0.0.2", "gateway": "10.0.0.2",
        "segmentation": {"type": "vxlan", "vni": 300, "peers": ["10.250.0.12"]}})
    web = {"id": "web", "rules": [{"direction": "egress"},
                                  {"direction": "ingress", "protocol": "tcp",
                                   "port_range_min": 22, "port_range_max": 22}]}
    groups = {"web": group_from_payload(web)}
    conf = types.SimpleNamespace(network=types.SimpleNamespace(
        physical_interface_mappings={}, tunnel_local_ip="10.250.0.11"))
    state = tempfile.mkdtemp(prefix="ca-bench-")
    # the privileged entry points run in this process, with the roots and
    # limits the agent's daemons get from its configuration
    privileged.configure(state, os.path.join(state, "instances"), public_interface="mgmt0",
                         tunnel_ip="10.250.0.11")
    plugin, fw = linux_bridge.LinuxBridgePlugin(conf), iptables.IptablesFirewall()
    servers = dhcp.DHCPServers(state)
    ports, times = [], []
    for i in range(n_ports):
        p = Port(str(uuid.uuid4()), net.id, f"fa:16:3e:01:{i // 256:02x}:{i % 256:02x}",
                 (f"10.0.{1 + i // 250}.{1 + i % 250}",), ("web",))
        t0 = time.perf_counter()
        plugin.plug(net, plugin.describe(net, p))
        ports.append(p)
        fw.apply([(net, q) for q in ports], groups, (), [net])
        servers.sync({net.id: (net, ports)})
        times.append(time.perf_counter() - t0)
    web["rules"].append({"direction": "ingress", "protocol": "icmp"})
    groups = {"web": group_from_payload(web)}
    t0 = time.perf_counter()
    fw.apply([(net, q) for q in ports], groups, (), [net])
    update = time.perf_counter() - t0
    servers.sync({})
    fw.apply([], {})
    plugin.release(net)
    return {"plug_1_s": times[0], "plug_n_s": sum(times), "update_s": update}


def through_rpc(n_ports, guests=2):
    """The RPC figures on a two-host bed (hA used), see the docstring: the
    guests boot with a port each, the other n_ports - guests are attached."""
    if n_ports <= guests:
        raise SystemExit(f"--ports must be more than the {guests} the guests boot with")
    from tests.harness.netguests import WEB_ICMP, WEB_NO_ICMP, flat_network, port
    from tests.harness.testbed import two_hosts
    beds = two_hosts("netbench")
    bed = next(beds)
    try:
        a = bed.hosts["hA"].agent
        net = flat_network("hA")
        ips = iter(f"10.0.0.{100 + i}" for i in range(n_ports))
        uuids = [a.boot(f"nb{g}", image=bed.images.images["disk"],
                        flavor={"vcpus": 1, "memory_mb": 96, "root_gb": 1},
                        networks=[{"port": port(next(ips), ["web"]), "network": net}],
                        security_groups=[WEB_NO_ICMP]) for g in range(guests)]
        attach = []
        for i, ip in enumerate(ips):
            t0 = time.perf_counter()
            a.api.attach_interface(a.host, uuids[i % guests], port(ip, ["web"]), net)
            attach.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        a.api.refresh_security_group_rules(a.host, WEB_ICMP)
        update = time.perf_counter() - t0
        for u in uuids:
            a.api.terminate_instance(a.host, u)
        return {"rpc_attach_1_s": round(attach[0], 4),
                "rpc_attach_median_s": round(statistics.median(attach), 4),
                "rpc_attach_last_s": round(attach[-1], 4),
                f"rpc_sg_update_{n_ports}_ports_s": round(update, 4)}
    finally:
        beds.close()


def inside(args):
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    subprocess.run(["ip", "link", "add", "mgmt0", "type", "veth", "peer", "name", "mgmt1"],
                   check=True)
    subprocess.run(["ip", "addr", "add", "10.250.0.11/24", "dev", "mgmt0"], check=True)
    subprocess.run(["ip", "link", "set", "mgmt0", "up"], check=True)
    print(json.dumps(one_round(args.ports)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--ports", type=int, default=50)
    ap.add_argument("--no-rpc", action="store_true", help="the in-process floor alone")
    ap.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    args = smoke.arguments(ap, rounds=1, ports=3)   # 2 boot with theirs, 1 attached
    if args.inside:
        return inside(args)
    results = []
    for _ in range(args.rounds):
        ns = "ca-bench-" + uuid.uuid4().hex[:6]
        subprocess.run(["ip", "netns", "add", ns], check=True)
        try:
            out = subprocess.run(["ip", "netns", "exec", ns, sys.executable, __file__,
                                  "--inside", "--ports", str(args.ports)],
                                 check=True, capture_output=True, text=True).stdout
            results.append(json.loads(out.splitlines()[-1]))
        finally:
            subprocess.run(["ip", "netns", "del", ns], check=True)
    med = {k: round(statistics.median(r[k] for r in results), 4) for k in results[0]}
    out = {"ports": args.ports, "rounds": args.rounds,
           "plug_1_s": med["plug_1_s"], f"plug_{args.ports}_s": med["plug_n_s"],
           f"sg_update_{args.ports}_ports_s": med["update_s"]}
    if not args.no_rpc:
        out.update(through_rpc(args.ports))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
