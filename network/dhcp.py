"""DHCP for guest networks: one dnsmasq per network on this host, serving
only the static MAC -> IP entries of this host's ports on that network (so
several hosts on one segment answer each their own guests).  It listens on
the network's bridge at the host's address, with DNS off.  A change of
entries rewrites the hosts file and sends SIGHUP (dnsmasq re-reads it
without restarting); a network with no port left has its dnsmasq stopped
and its directory removed.  State lives under $state_path/dhcp/<network>."""
import logging
import os
import shutil
import threading
import time

from network import hoststate
from privileged import network as priv

LOG = logging.getLogger(__name__)


def hosts_file_text(ports):
    return "".join(f"{p.mac},{ip}\n" for p in sorted(ports, key=lambda p: p.mac)
                   for ip in p.ips(4))


def serves(network):
    """Whether this host runs DHCP for network."""
    return network.dhcp and network.host_address is not None \
        and ":" not in network.host_address


class DHCPServers:
    def __init__(self, state_dir, lease_seconds=86400):
        self.root = os.path.join(state_dir, "dhcp")
        self.lease_seconds = lease_seconds
        self._lock = threading.Lock()

    def _dir(self, network_id):
        return os.path.join(self.root, network_id)

    def _pid(self, network_id):
        """The pid of the network's dnsmasq if it is alive, else None."""
        try:
            with open(os.path.join(self._dir(network_id), "pid")) as f:
                pid = int(f.read().strip())
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read().split(b"\0")
        except (OSError, ValueError):
            return None
        marker = f"--pid-file={self._dir(network_id)}/pid".encode()
        return pid if marker in cmdline else None

    def sync(self, networks):
        """networks: {network id: (Network, [ports on this host])}.  Start,
        reload or stop dnsmasqs so exactly those that serve DHCP run."""
        with self._lock:
            wanted = {nid: v for nid, v in networks.items() if serves(v[0]) and v[1]}
            for network, ports in wanted.values():
                self._ensure(network, ports)
            existing = os.listdir(self.root) if os.path.isdir(self.root) else []
            for nid in existing:
                if nid not in wanted:
                    self._stop(nid)

    def _ensure(self, network, ports):
        d = self._dir(network.id)
        os.makedirs(d, exist_ok=True)
        for path in (self.root, d):      # dnsmasq re-reads its files as nobody
            os.chmod(path, 0o755)
        path = os.path.join(d, "hosts")
        text = hosts_file_text(ports)
        try:
            with open(path) as f:
                changed = f.read() != text
        except FileNotFoundError:
            changed = True
        if changed:     # dnsmasq re-reads it after dropping root: world-readable
            with open(path + ".tmp", "w") as f:
                f.write(text)
            os.chmod(path + ".tmp", 0o644)
            os.rename(path + ".tmp", path)
        pid = self._pid(network.id)
        if pid is None:
            priv.start_dnsmasq(network.id, hoststate.network_doc(network), self.lease_seconds)
            LOG.info("dnsmasq started for network %s on %s", network.id, network.bridge)
        elif changed:
            priv.signal_dnsmasq(network.id, "HUP")
            LOG.info("dnsmasq of network %s reloaded", network.id)

    def _stop(self, network_id):
        pid = self._pid(network_id)
        if pid is not None:
            priv.signal_dnsmasq(network_id, "TERM")
            for _ in range(100):
                if self._pid(network_id) is None:
                    break
                time.sleep(0.02)
            LOG.info("dnsmasq of network %s stopped", network_id)
        shutil.rmtree(self._dir(network_id), ignore_errors=True)

    def running(self):
        return {nid: self._pid(nid) for nid in
                (os.listdir(self.root) if os.path.isdir(self.root) else [])}
