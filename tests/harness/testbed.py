"""A multi-host test bed on one machine: each hypervisor host is its own
network namespace, with its own libvirtd and virtlogd in a private mount
namespace (under tools/subreaper.py), and its own compute-agent.

    netns <run>-sw : br-mgmt (10.250.0.0/24, the hosts' management and VXLAN
                     underlay) and br-data (a plain L2 "physical" segment)
    netns <run>-hN : mgmt0 10.250.0.1N (veth to br-mgmt), data0 (veth to
                     br-data, no address), the agent's bridges and taps
    netns <run>-ext: an "external" network on a host's pub0 (floating IPs)

RabbitMQ and the image service run in the machine's own namespace, on
loopback; each host reaches them at its own 127.0.0.1 through socat relays
over unix sockets, so no route leads out of the test's namespaces (see
../shared/TESTBED.md section 2).  Hosts, agents and guests are torn down
with the bed."""
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid

from tests.harness import agent as agent_mod
from tests.harness import pki
from tests.harness.agent import Agent, wait_until

SUBREAPER = os.path.join(agent_mod.ROOT_DIR, "tools", "subreaper.py")
AMQP_PORT = 5672
MGMT = "10.250.0"
CONSOLE_LOG_MAX, CONSOLE_LOG_BACKUPS = 1024 * 1024, 2


def sh(*argv, check=True, input=None):
    return subprocess.run(argv, check=check, capture_output=True, text=True,
                          input=input).stdout


def ns_exec(ns, *argv, check=True, input=None):
    return sh("ip", "netns", "exec", ns, *argv, check=check, input=input)


def kernel_has_vlan():
    """Whether this kernel can make 802.1Q sub-interfaces (these machines
    cannot: CONFIG_VLAN_8021Q is off and modules cannot be loaded)."""
    ns = "ca-vlanprobe-" + uuid.uuid4().hex[:6]
    sh("ip", "netns", "add", ns)
    try:
        sh("ip", "-n", ns, "link", "add", "d0", "type", "veth", "peer", "name", "d1")
        return subprocess.run(["ip", "-n", ns, "link", "add", "link", "d0", "name", "d0.5",
                               "type", "vlan", "id", "5"], capture_output=True).returncode == 0
    finally:
        sh("ip", "netns", "del", ns)


class Host:
    """One namespaced hypervisor host: libvirtd, virtlogd, and an Agent."""

    def __init__(self, bed, name, index, extra_conf="", ca="bed"):
        self.bed, self.name, self.index = bed, name, index
        self.ca = ca            # who signs its migration TLS certificates
        self.ns = f"{bed.run}-{name}"
        self.dir = os.path.join(bed.dir, "hosts", name)
        self.mgmt_ip = f"{MGMT}.{10 + index}"
        self.extra_conf = extra_conf
        self.agent = None

    # -- namespaces and daemons ---------------------------------------------------

    def start(self):
        sw = self.bed.sw
        sh("ip", "netns", "add", self.ns)
        sh("ip", "-n", self.ns, "link", "set", "lo", "up")
        for short, dev, bridge in (("m", "mgmt0", "br-mgmt"), ("d", "data0", "br-data")):
            peer = f"{self.name}{short}"
            sh("ip", "-n", sw, "link", "add", peer, "type", "veth", "peer", "name", dev,
               "netns", self.ns)
            sh("ip", "-n", sw, "link", "set", peer, "master", bridge, "up")
            sh("ip", "-n", self.ns, "link", "set", dev, "up")
        sh("ip", "-n", self.ns, "addr", "add", f"{self.mgmt_ip}/24", "dev", "mgmt0")
        # a baseline of the operator's own rules, which the agent must keep
        for tool in ("iptables", "ip6tables"):
            ns_exec(self.ns, tool, "-A", "FORWARD", "-m", "comment", "--comment",
                    "tb-operator-rule", "-j", "ACCEPT")
        ns_exec(self.ns, "iptables", "-t", "nat", "-A", "POSTROUTING", "-m", "comment",
                "--comment", "tb-operator-rule", "-j", "RETURN")
        self._write_libvirt_conf()
        self._start_libvirtd()
        self.bed.relay_into(self.ns)

    def _write_libvirt_conf(self):
        for sub in ("run", "lib", "log", "cache", "etc", "local", "state"):
            os.makedirs(os.path.join(self.dir, sub), exist_ok=True)
        # the system libvirtd's settings, but none of its domain or network
        # definitions (/etc/libvirt/qemu) or secrets: a host starts with no
        # guests and no credentials
        shutil.copytree("/etc/libvirt", os.path.join(self.dir, "etc"), dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("*.pid", "qemu", "secrets"))
        n = 10 + self.index
        with open(os.path.join(self.dir, "etc", "libvirtd.conf"), "w") as f:
            f.write(f'host_uuid = "7b000000-0000-4000-8000-0000000000{n:02d}"\n'
                    f'listen_tls = 0\nlisten_tcp = 1\nlisten_addr = "{self.mgmt_ip}"\n'
                    'auth_tcp = "none"\n'
                    # the agent runs as compute-agent, in the libvirt group
                    'unix_sock_group = "libvirt"\nunix_sock_rw_perms = "0770"\n'
                    'auth_unix_rw = "none"\n'
                    'log_outputs = "3:file:/var/log/libvirt/libvirtd.log"\n')
        # a guest's serial log: at most 1 MiB, plus 2 rotated copies
        with open(os.path.join(self.dir, "etc", "virtlogd.conf"), "w") as f:
            f.write(f"max_size = {CONSOLE_LOG_MAX}\nmax_backups = {CONSOLE_LOG_BACKUPS}\n")
        self.pki = os.path.join(self.dir, "pki")
        self.bed.ca(self.ca).issue(self.pki, self.name, self.mgmt_ip)
        pki.readable_by_qemu(self.pki)
        with open(os.path.join(self.dir, "etc", "qemu.conf"), "w") as f:
            # QEMU as libvirt-qemu with no capabilities, swtpm as tss (libvirt's
            # default), libvirt handing each guest its files for the run
            # (dynamic ownership), as on a Debian host; no sVirt profile here
            f.write('user = "libvirt-qemu"\ngroup = "libvirt-qemu"\n'
                    'dynamic_ownership = 1\nremember_owner = 1\n'
                    'security_driver = "none"\n'
                    f'cgroup_controllers = [ ]\nmigration_host = "{self.mgmt_ip}"\n'
                    # live migrations over TLS (VIR_MIGRATE_TLS), peers verified
                    f'migrate_tls_x509_cert_dir = "{self.pki}"\n'
                    'migrate_tls_x509_verify = 1\n'
                    # guests' VNC servers from 5900 up, within the proxy's range;
                    # serial consoles plain TCP (QEMU 7.2's TLS chardev passes the
                    # guest only the first bytes of what is typed: docs/consoles.md)
                    'remote_display_port_min = 5900\nremote_display_port_max = 6099\n')

    def _start_libvirtd(self, virtlogd=True):
        d = self.dir
        # each host's own files behind the one path every agent uses
        # (bed.local), as on real hosts: a path that names what only
        # another host has does not resolve here
        mounts = " ".join(f"mount --bind {d}/{src} {dst};" for src, dst in (
            ("run", "/run/libvirt"), ("lib", "/var/lib/libvirt"), ("log", "/var/log/libvirt"),
            ("cache", "/var/cache/libvirt"), ("etc", "/etc/libvirt"),
            ("local", self.bed.local)))
        script = (f"{mounts} hostname {self.name}; "
                  + ("virtlogd -d -p /run/libvirt/virtlogd.pid; " if virtlogd else "")
                  + "libvirtd -d -l -p /run/libvirt/libvirtd.pid")
        sh("ip", "netns", "exec", self.ns, "unshare", "-m", "-u", "--propagation", "slave",
           sys.executable, SUBREAPER, os.path.join(d, "reaper.pid"), "sh", "-ec", script)
        sock = os.path.join(d, "run", "libvirt-sock")
        wait_until(lambda: subprocess.run(
            ["virsh", "-c", f"qemu:///system?socket={sock}", "version"],
            capture_output=True).returncode == 0, 30, 0.1, f"libvirtd of {self.name}")

    def stop_libvirtd(self):
        os.kill(self.libvirtd_pid(), signal.SIGTERM)
        sock = os.path.join(self.dir, "run", "libvirt-sock")
        wait_until(lambda: subprocess.run(
            ["virsh", "-c", f"qemu:///system?socket={sock}", "version"],
            capture_output=True).returncode != 0, 30, 0.1, f"libvirtd of {self.name} to stop")

    def restart_libvirtd(self):
        """Stop libvirtd (its guests keep running) and start it again, as
        `systemctl restart libvirtd` would; virtlogd keeps running."""
        self.stop_libvirtd()
        self._start_libvirtd(virtlogd=False)

    def libvirtd_pid(self):
        with open(os.path.join(self.dir, "run", "libvirtd.pid")) as f:
            return int(f.read().strip())

    def run(self, *argv, check=True):
        """Run a command in this host's network namespace."""
        return ns_exec(self.ns, *argv, check=check)

    def run_in_mounts(self, *argv, check=True):
        """Run a command as this host's agent sees the world: its network and
        mount namespaces (its own instances_path)."""
        return sh("nsenter", "-t", str(self.libvirtd_pid()), "-n", "-m", "-u", "--", *argv,
                  check=check)

    def virsh(self, *args):
        sock = os.path.join(self.dir, "run", "libvirt-sock")
        return sh("virsh", "-c", f"qemu:///system?socket={sock}", *args)

    # -- the agent ------------------------------------------------------------------

    def start_agent(self, image_port):
        """compute-agent inside this host's namespaces (network, mount, UTS)."""
        a = HostAgent(self, image_port)
        a.start()
        self.agent = a
        return a

    def snapshot(self):
        """What the agent may leave behind on the host, for residue checks."""
        def clean(text):
            # chain counters ([packets:bytes]) move with any traffic: not residue;
            # nor is the console guard (ca-consoles), the host's configuration
            # for as long as its agent runs, whatever guests come and go
            return [re.sub(r"\[\d+:\d+\]$", "[0:0]", line)
                    for line in text.splitlines()
                    if not line.startswith("#") and "ca-consoles" not in line]
        links = sorted(line.split(":")[1].strip().split("@")[0]
                       for line in self.run("ip", "-o", "link").splitlines())
        dnsmasqs = sorted(p for p in self.run("ip", "netns", "pids", self.ns).split()
                          if _comm(p) == "dnsmasq")
        return {"iptables": clean(self.run("iptables-save")),
                "ip6tables": clean(self.run("ip6tables-save")),
                "nft": self.run("nft", "list", "tables").splitlines() + (
                    self.run("nft", "list", "table", "bridge", "compute_agent").splitlines()
                    if "table bridge compute_agent" in self.run("nft", "list", "tables")
                    else []),
                "links": links, "dnsmasq": dnsmasqs,
                # link-local addresses are the kernel's, and appear late
                "addresses": sorted(line for line in self.run("ip", "-o", "addr").splitlines()
                                    if "scope link" not in line)}

    def stop(self):
        if self.agent is not None:
            self.agent.stop()
        with contextlib.suppress(Exception):
            for dom in self.virsh("list", "--all", "--name").split():
                self.virsh("destroy", dom) if dom else None
        pids = ns_exec(self.ns, "ip", "netns", "pids", self.ns, check=False).split()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)
        with contextlib.suppress(OSError, ValueError):
            with open(os.path.join(self.dir, "reaper.pid")) as f:
                os.kill(int(f.read()), signal.SIGKILL)
        sh("ip", "netns", "del", self.ns, check=False)


def _comm(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return None


class HostAgent(Agent):
    """An Agent whose compute-agent runs inside a Host; the images service is
    the bed's (shared by every host), reached through the host's relay."""

    def __init__(self, host, image_port):
        # what the agent sees (in its host's mount namespace) ...
        instances = (f"{host.bed.shared}/instances" if host.bed.shared_instances
                     else f"{host.bed.local}/instances")
        super().__init__(workdir=os.path.join(host.dir, "agent"), extra_conf=f"""
[DEFAULT]
instances_path = {instances}
[libvirt]
live_migration_inbound_addr = {host.mgmt_ip}
live_migration_tls_cert_dir = {host.pki}
serial_listen = {host.mgmt_ip}
vnc_listen = {host.mgmt_ip}
vnc_port_range = 5900:6099
[console]
proxy_addresses = {MGMT}.1
[network]
vif_plugin = linux_bridge
public_interface = pub0
physical_interface_mappings = physnet1:data0
tunnel_local_ip = {host.mgmt_ip}
floating_ranges = 203.0.113.0/24
{host.extra_conf}""")
        os.makedirs(self.workdir, exist_ok=True)
        # ... and where the test finds those files, from the machine's namespace
        self.instances_path = (instances if host.bed.shared_instances
                               else os.path.join(host.dir, "local", "instances"))
        self.agent_instances_path = instances
        self.tb_host = host
        self.host = f"{host.name}-{host.bed.run}"
        self.port = image_port
        self.image_url = self.agent_image_url = f"http://127.0.0.1:{image_port}"
        self.owns_image_service = False
        # the bed's one console proxy, on the management switch (start_console_proxy);
        # each host signs its tokens with its own key (Agent's)
        self.console_port = host.bed.console_port
        self.console_host = f"{MGMT}.1"

    def _start_agent(self, env=None):
        pid = self.tb_host.libvirtd_pid()
        self._spawn("compute-agent", ["nsenter", "-t", str(pid), "-n", "-m", "-u", "--",
                                      *agent_mod.AS_SERVICE,
                                      os.path.join(agent_mod.BIN, "compute-agent"),
                                      "--config-file", self.config_file],
                    {**self.agent_env, **(env or {})})

    def cleanup_guests(self):
        pass        # the host's teardown destroys its guests

    def hypervisor_log(self):
        try:
            with open(os.path.join(self.tb_host.dir, "log", "libvirtd.log"),
                      errors="replace") as f:
                return f.read()
        except OSError:
            return ""


def two_hosts(guest_name, shared_instances=False, external=False, extra_conf=None,
              shared_db=False):
    """A bed of hosts hA and hB with agents and the test guest uploaded,
    for a module-scoped fixture (yield from two_hosts(...)).  external: an
    external namespace on hA's pub0 (bed.external); bed.before: each
    host's snapshot() before its agent started; extra_conf: {host name:
    agent config}; shared_db: both agents keep their state in one
    database (a SQLite file both hosts see, bed.db_url)."""
    tb = TestBed(shared_instances=shared_instances).start()
    try:
        shared = ""
        if shared_db:
            db_dir = os.path.join(tb.dir, "db")
            os.makedirs(db_dir)
            shutil.chown(db_dir, agent_mod.AGENT_USER, agent_mod.AGENT_USER)
            tb.db_url = f"sqlite:///{db_dir}/compute.sqlite"
            shared = f"[database]\nconnection = {tb.db_url}\n"
        for name in ("hA", "hB"):
            tb.add_host(name, shared + (extra_conf or {}).get(name, ""))
        if external:
            tb.external = tb.add_external(tb.hosts["hA"])
        tb.before = {name: h.snapshot() for name, h in tb.hosts.items()}
        for h in tb.hosts.values():
            h.start_agent(tb.image_port)
        tb.upload_test_guest(f"console=ttyS0 quiet tb.name={guest_name}")
        yield tb
    finally:
        tb.close()


class TestBed:
    __test__ = False      # not a pytest class

    def __init__(self, shared_instances=False):
        """shared_instances: every host's instances_path is one directory
        on a bindfs mount typed fuse.glusterfs, which libvirt 9.0 takes for
        shared storage (TESTBED section 3)."""
        self.shared_instances = shared_instances
        self.run = "ca" + uuid.uuid4().hex[:5]
        self.dir = tempfile.mkdtemp(prefix=f"{self.run}-")
        os.chmod(self.dir, 0o755)     # dnsmasq reads its hosts file as nobody
        self.sw = f"{self.run}-sw"
        self.local = os.path.join(self.dir, "local")      # every host's own, at one path
        os.makedirs(self.local)
        self.hosts = {}
        self.extra_ns = []
        self.relays = []
        self.image_port = agent_mod.free_port()
        self.images = None
        self.cas = {}
        self.console_port = agent_mod.free_port()

    def start(self):
        sh("ip", "netns", "add", self.sw)
        for br in ("br-mgmt", "br-data"):
            sh("ip", "-n", self.sw, "link", "add", br, "type", "bridge", "forward_delay", "0")
            sh("ip", "-n", self.sw, "link", "set", br, "up")
        sh("ip", "-n", self.sw, "link", "set", "lo", "up")
        sh("ip", "-n", self.sw, "addr", "add", f"{MGMT}.1/24", "dev", "br-mgmt")
        if self.shared_instances:      # before any host copies the mount table
            backing, self.shared = (os.path.join(self.dir, n) for n in ("gbacking", "gshared"))
            os.makedirs(backing)
            os.makedirs(self.shared)
            sh("bindfs", "-o", "subtype=glusterfs,fsname=tbgluster", backing, self.shared)
        # the images service: one Agent-owned process in the machine's netns
        self.images = Agent(workdir=os.path.join(self.dir, "images"))
        os.makedirs(self.images.workdir, exist_ok=True)
        self.images.port = self.image_port
        self.images.image_url = f"http://127.0.0.1:{self.image_port}"
        argv, env = agent_mod.image_service("serve", "--data-dir",
                                            os.path.join(self.images.workdir, "data"),
                                            "--port", str(self.image_port))
        self.images._spawn("compute-images", argv, env)
        for port in (AMQP_PORT, self.image_port):
            sock = self._sock(port)
            self.relays.append(subprocess.Popen(
                ["socat", f"UNIX-LISTEN:{sock},fork,reuseaddr", f"TCP:127.0.0.1:{port}"],
                stderr=subprocess.DEVNULL))
            wait_until(lambda s=sock: os.path.exists(s), 10, 0.05, "socat relay")
        wait_until(self._images_up, 30, 0.1, "compute-images")
        return self

    def _images_up(self):
        import requests
        try:
            return requests.get(self.images.image_url + "/v2/images", timeout=1).ok
        except requests.RequestException:
            return False

    def _sock(self, port):
        return os.path.join(self.dir, f"relay-{port}.sock")

    def relay_into(self, ns):
        """Make RabbitMQ and the images service answer on ns's loopback."""
        for port in (AMQP_PORT, self.image_port):
            self.relays.append(subprocess.Popen(
                ["ip", "netns", "exec", ns, "socat",
                 f"TCP-LISTEN:{port},bind=127.0.0.1,fork,reuseaddr",
                 f"UNIX-CONNECT:{self._sock(port)}"], stderr=subprocess.DEVNULL))
        for port in (AMQP_PORT, self.image_port):
            wait_until(lambda p=port: subprocess.run(
                ["ip", "netns", "exec", ns, "bash", "-c", f"exec 3<>/dev/tcp/127.0.0.1/{p}"],
                capture_output=True).returncode == 0, 10, 0.05, f"relay of {port} in {ns}")

    def ca(self, name):
        """The certificate authority called name (made at first use)."""
        if name not in self.cas:
            self.cas[name] = pki.CA(f"{self.run} {name} CA")
        return self.cas[name]

    def add_host(self, name, extra_conf="", ca="bed"):
        """ca: who signs the host's migration certificates (another name
        than "bed": a host the others do not trust)."""
        host = Host(self, name, len(self.hosts) + 1, extra_conf, ca)
        self.hosts[name] = host
        host.start()
        return host

    def add_external(self, host, host_cidr="203.0.113.1/24", ext_cidr="203.0.113.254/24"):
        """An "external" namespace linked to host's pub0; its name."""
        ns = f"{self.run}-ext{len(self.extra_ns)}"
        sh("ip", "netns", "add", ns)
        self.extra_ns.append(ns)
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "-n", ns, "link", "add", "ext0", "type", "veth", "peer", "name", "pub0",
           "netns", host.ns)
        sh("ip", "-n", ns, "addr", "add", ext_cidr, "dev", "ext0")
        sh("ip", "-n", ns, "link", "set", "ext0", "up")
        sh("ip", "-n", host.ns, "addr", "add", host_cidr, "dev", "pub0")
        sh("ip", "-n", host.ns, "link", "set", "pub0", "up")
        sh("ip", "-n", ns, "route", "add", "default", "via", host_cidr.split("/")[0])
        return ns

    def start_console_proxy(self):
        """compute-console-proxy for every host, on the management switch
        (it reaches the hosts' console addresses there, as in a cloud);
        once per bed."""
        proc = self.images.procs.get("console-proxy")
        if proc is not None and proc.poll() is None:
            return
        path = os.path.join(self.dir, "console-proxy.conf")
        hosts_file = os.path.join(self.dir, "console-hosts.json")
        agent_mod.write_hosts_file(hosts_file, {
            h.agent.host: h.agent.console_host_entry(h.mgmt_ip)
            for h in self.hosts.values() if h.agent is not None})
        with open(path, "w") as f:
            f.write(f"[console_proxy]\nhost = {MGMT}.1\nport = {self.console_port}\n"
                    f"hosts_file = {hosts_file}\nnovnc_dir =\n")
        os.chmod(path, 0o644)
        self.images._spawn("console-proxy", [
            "ip", "netns", "exec", self.sw, *agent_mod.AS_PROXY,
            os.path.join(agent_mod.BIN, "compute-console-proxy"), "--config-file", path])
        wait_until(lambda: "console proxy listening" in self.images.log("console-proxy"),
                   30, 0.1, "the console proxy")

    def console(self, url, typed, linger=8):
        """What a user on the management network sees after typing `typed`
        into the console at url (through the bed's proxy)."""
        run = subprocess.run(["ip", "netns", "exec", self.sw, sys.executable, "-m",
                              "compute.client.terminal", "--linger", str(linger), url],
                             input=typed, capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr
        return run.stdout

    def upload_test_guest(self, cmdline):
        return self.images.upload_test_guest(cmdline)

    def upload_variant(self, cmdline):
        return self.images.upload_variant(cmdline)

    def close(self):
        for host in self.hosts.values():
            with contextlib.suppress(Exception):
                host.stop()
        for proc in self.relays:
            proc.kill()
        for ns in self.extra_ns + [self.sw]:
            sh("ip", "netns", "del", ns, check=False)
        if self.shared_instances:
            sh("umount", "-l", self.shared, check=False)
        self.images.stop()
        if os.environ.get("COMPUTE_AGENT_KEEP_WORKDIR"):       # to read the agents' logs
            for host in self.hosts.values():
                shutil.copytree(os.path.join(host.dir, "agent"), self.dir + "-" + host.name,
                                ignore=shutil.ignore_patterns("instances"), dirs_exist_ok=True)
            shutil.copytree(self.images.workdir, self.dir + "-images",      # and the proxy's
                            ignore=shutil.ignore_patterns("data"), dirs_exist_ok=True)
        shutil.rmtree(self.dir, ignore_errors=True)
