"""Run compute-images and compute-agent as real processes for e2e tests
and benchmarks: real RabbitMQ, real libvirtd (qemu:///system), real QEMU
guests.  Each run gets its own host name, state directory and port, so runs
never see each other's instances or messages."""
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid

from oslo_config import cfg
from oslo_privsep import capabilities

import privileged
from compute.agent import conf as compute_conf
from compute.core import exception
from compute.rpc.client import ComputeAPI
from console import tokens
from imagecache.glance import GlanceClient
from tests.harness import cloudimage, guest

BIN = os.path.dirname(sys.executable)
ROOT_DIR = guest.ROOT
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def image_service(*args):
    """(argv, env) of compute-images, the development image service, which
    lives in devtools/ (run from the checkout, never installed)."""
    return ([sys.executable, "-m", "devtools.imageservice", *args],
            {"PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", "")})
TRANSPORT_URL = os.environ.get("COMPUTE_AGENT_TRANSPORT_URL", "rabbit://guest:guest@127.0.0.1:5672/")
LIBVIRT_URI = os.environ.get("COMPUTE_AGENT_LIBVIRT_URI", "qemu:///system")
VIRT_TYPE = os.environ.get("COMPUTE_AGENT_VIRT_TYPE", "qemu")
FLAVOR = {"vcpus": 1, "memory_mb": 128, "root_gb": 1}
AGENT_USER = "compute-agent"
_CAPS = ",".join("+" + capabilities.CAPS_BYVALUE[c][4:].lower()
                 for c in privileged.CAPABILITIES)
# how etc/systemd/compute-agent.service starts the agent: its own user,
# the privsep daemons' capabilities as ambient ones, nothing else
# the console proxy's unit: its own user, no group, no capability
AS_PROXY = ["setpriv", f"--reuid={AGENT_USER}", f"--regid={AGENT_USER}", "--clear-groups",
            "--bounding-set=-all"]
AS_SERVICE = ["setpriv", f"--reuid={AGENT_USER}", f"--regid={AGENT_USER}", "--init-groups",
              f"--inh-caps={_CAPS}", f"--ambient-caps={_CAPS}", f"--bounding-set=-all,{_CAPS}"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_hosts_file(path, hosts):
    """A console proxy's hosts file, readable by the proxy's user only."""
    import json
    with open(path, "w") as f:
        json.dump(hosts, f)
    shutil.chown(path, AGENT_USER, AGENT_USER)
    os.chmod(path, 0o600)


def wait_until(predicate, timeout, interval=0.1, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


def _answers_http(requests, url):
    try:
        return requests.get(url + "/v2/images", timeout=1).ok
    except requests.RequestException:
        return False


class Agent:
    """compute-images + compute-agent + a ComputeAPI client, in a temp dir."""

    def __init__(self, workdir=None, extra_conf="", image_service_args=()):
        if workdir is None:
            workdir = tempfile.mkdtemp(prefix="ca-e2e-")
            os.chmod(workdir, 0o755)      # the agent runs as compute-agent
        self.workdir = workdir
        self.host = "e2e-" + uuid.uuid4().hex[:8]
        self.state_path = os.path.join(self.workdir, "state")
        self.instances_path = os.path.join(self.state_path, "instances")
        self.port = free_port()
        self.image_url = f"http://127.0.0.1:{self.port}"
        self.agent_image_url = self.image_url     # what the agent is told (a proxy?)
        self.config_file = os.path.join(self.workdir, "agent.conf")
        self.extra_conf = extra_conf
        self.procs = {}
        self.images = {}
        self.owns_image_service = True
        self.image_service_args = list(image_service_args)
        self.agent_env = {}            # extra environment of compute-agent
        self.console_key = tokens.new_key()      # shared with start_console_proxy's
        self.console_port = free_port()
        self.console_host = "127.0.0.1"          # where the agent tells users to go
        self.metrics_port = free_port()          # every e2e agent serves its metrics
        self.transport_url = TRANSPORT_URL

    def _spawn(self, name, argv, env=None):
        log = open(os.path.join(self.workdir, f"{name}.log"), "ab")
        self.procs[name] = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                            env={**os.environ, **(env or {})})

    def log(self, name="compute-agent"):
        with open(os.path.join(self.workdir, f"{name}.log"), errors="replace") as f:
            return f.read()

    def hypervisor_log(self):
        """libvirtd's own log (warnings and errors) for this agent's host."""
        try:
            with open("/var/log/libvirt/libvirtd.log", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def diagnostics(self, uuid_):
        """What a failure report needs: the agent's and libvirtd's lines
        about uuid_, and libvirtd's last lines."""
        agent = [line for line in self.log().splitlines() if uuid_ in line]
        hyper = self.hypervisor_log().splitlines()
        return "\n".join(["-- agent:", *agent[-40:],
                          "-- libvirtd (about it):", *[x for x in hyper if uuid_ in x][-20:],
                          "-- libvirtd (last lines):", *hyper[-15:]])

    def own_dirs(self, *paths):
        """Directories the agent's user must own (StateDirectory= would)."""
        for path in paths:
            os.makedirs(path, exist_ok=True)
            shutil.chown(path, AGENT_USER, AGENT_USER)

    def start(self):
        self.write_config()
        if self.owns_image_service:
            self._start_image_service()
        self._start_agent()
        self.connect()
        wait_until(self._answers, 60, 0.2, "compute-agent to answer ping")
        return self

    def write_config(self):
        """The agent's directories and config file, as an install leaves them."""
        self.own_dirs(self.state_path, self.instances_path)
        with open(self.config_file, "w") as f:
            f.write(f"""[DEFAULT]
host = {self.host}
state_path = {self.state_path}
transport_url = {self.transport_url}
report_interval = 2
wait_soft_reboot_seconds = 6
shutdown_timeout = 10
shutdown_retry_interval = 2
[libvirt]
lifecycle_event_delay = 2
connection_uri = {LIBVIRT_URI}
virt_type = {VIRT_TYPE}
[image]
api_servers = {self.agent_image_url}
[console]
token_key = {self.console_key}
serial_proxy_url = ws://{self.console_host}:{self.console_port}/serial
vnc_proxy_url = ws://{self.console_host}:{self.console_port}/vnc
novnc_url = http://{self.console_host}:{self.console_port}/novnc/vnc_lite.html
[metrics]
enabled = true
port = {self.metrics_port}
{self.extra_conf}
""")

    def connect(self):
        """The test's RPC client (self.api) from the agent's config file."""
        conf = cfg.ConfigOpts()
        compute_conf.register_opts(conf)
        conf(["--config-file", self.config_file], project="compute-agent-e2e")
        self.conf = conf
        self.api = ComputeAPI(conf, timeout=30)

    def metrics(self):
        """The agent's /metrics page."""
        import urllib.request
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as page:
            return page.read().decode()

    def _start_image_service(self):
        argv, env = image_service("serve", "--data-dir", os.path.join(self.workdir, "images"),
                                  "--port", str(self.port), *self.image_service_args)
        self._spawn("compute-images", argv, env)
        import requests
        wait_until(lambda: _answers_http(requests, self.image_url), 30, 0.1,
                   "compute-images")

    def restart_image_service(self, *args):
        """compute-images again on the same data and port, with args."""
        proc = self.procs.pop("compute-images")
        proc.terminate()
        proc.wait()
        self.image_service_args = list(args)
        self._start_image_service()

    def console_host_entry(self, address="127.0.0.1"):
        """This agent's entry in a console proxy's hosts file: its own key,
        its console address, the default port ranges."""
        return {"token_key": self.console_key, "addresses": [address],
                "serial_ports": "10000:10999", "vnc_ports": "5900:6099"}

    def start_console_proxy(self, name="console-proxy", port=None, token_ttl=600,
                            novnc_dir="", hosts=None):
        """compute-console-proxy as its own unprivileged user, knowing this
        agent's consoles (and those of hosts: {name: entry}; on console_port
        unless port); its port."""
        port = port or self.console_port
        path = os.path.join(self.workdir, f"{name}.conf")
        hosts_file = os.path.join(self.workdir, f"{name}-hosts.json")
        write_hosts_file(hosts_file, {self.host: self.console_host_entry(), **(hosts or {})})
        with open(path, "w") as f:
            f.write(f"[console_proxy]\nhost = 127.0.0.1\nport = {port}\n"
                    f"hosts_file = {hosts_file}\ntoken_ttl = {token_ttl}\n"
                    f"novnc_dir = {novnc_dir}\n")
        self._spawn(name, [*AS_PROXY, os.path.join(BIN, "compute-console-proxy"),
                           "--config-file", path])

        def listening():
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                return True
            return False
        wait_until(listening, 30, 0.1, f"{name} to listen")
        return port

    def _start_agent(self, env=None):
        self._spawn("compute-agent", [*AS_SERVICE, os.path.join(BIN, "compute-agent"),
                                      "--config-file", self.config_file],
                    {**self.agent_env, **(env or {})})

    def kill_agent(self):
        """kill -9 the agent, as a crash would."""
        proc = self.procs["compute-agent"]
        proc.kill()
        proc.wait()

    def restart_agent(self, crash_at=None):
        """Start the agent again (after kill_agent) and wait until it answers;
        crash_at: a step of compute.core.faults where it will kill itself."""
        self._start_agent({"COMPUTE_AGENT_CRASH_AT": crash_at} if crash_at else None)
        wait_until(self._answers, 60, 0.2, "compute-agent to answer ping")

    def wait_crashed(self, timeout=180):
        """Wait for the agent to die at its crash point (SIGKILL)."""
        proc = self.procs["compute-agent"]
        wait_until(lambda: proc.poll() is not None, timeout, 0.1, "the agent to crash")
        return proc.returncode

    def _answers(self):
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{self.log(name)}")
        try:
            return self.api.ping(self.host, timeout=1)
        except Exception:
            return None

    def _upload(self, path, fmt, **props):
        client = GlanceClient([self.image_url])
        meta = client.create(name=os.path.basename(path), disk_format=fmt,
                             container_format="bare", **props)
        with open(path, "rb") as f:
            client.upload(meta["id"], f)
        return meta["id"]

    def upload_test_guest(self, cmdline="console=ttyS0 quiet tb.name=e2e"):
        """Register the test guest's kernel, ramdisk and disk; the disk's id."""
        files = guest.build()
        kernel = self._upload(os.path.join(files, "vmlinux"), "aki")
        ramdisk = self._upload(os.path.join(files, "initrd.img"), "ari")
        disk = self._upload(os.path.join(files, "disk.qcow2"), "qcow2", kernel_id=kernel,
                            ramdisk_id=ramdisk, os_command_line=cmdline)
        self.images.update(kernel=kernel, ramdisk=ramdisk, disk=disk)
        return disk

    def upload_variant(self, cmdline, **props):
        """The test guest's disk again, booted with another command line."""
        return self._upload(os.path.join(guest.build(), "disk.qcow2"), "qcow2",
                            kernel_id=self.images["kernel"], ramdisk_id=self.images["ramdisk"],
                            os_command_line=cmdline, **props)

    def upload_disk(self, path, cmdline):
        """Another qcow2 disk booted with the test guest's kernel and ramdisk."""
        return self._upload(path, "qcow2", kernel_id=self.images["kernel"],
                            ramdisk_id=self.images["ramdisk"], os_command_line=cmdline)

    def upload_uefi_variant(self, cmdline, **props):
        """The test guest booted by OVMF (q35): vmlinuz through its EFI stub."""
        if "vmlinuz" not in self.images:
            self.images["vmlinuz"] = self._upload(os.path.join(guest.build(), "vmlinuz"), "aki")
        return self._upload(os.path.join(guest.build(), "disk.qcow2"), "qcow2",
                            kernel_id=self.images["vmlinuz"], ramdisk_id=self.images["ramdisk"],
                            os_command_line=cmdline, hw_firmware_type="uefi",
                            hw_machine_type="q35", **props)

    def upload_cloud_image(self):
        """Register the Debian cloud image (its own kernel and initrd, the
        guest agent on); the disk's id."""
        files = cloudimage.build()
        kernel = self._upload(os.path.join(files, "vmlinuz"), "aki")
        ramdisk = self._upload(os.path.join(files, "initrd.img"), "ari")
        return self._upload(os.path.join(files, "disk.qcow2"), "qcow2", kernel_id=kernel,
                            ramdisk_id=ramdisk, os_command_line=cloudimage.CMDLINE,
                            hw_qemu_guest_agent="yes")

    def boot(self, name="e2e", image=None, flavor=None, wait_console=True, **kwargs):
        """Spawn an instance and (by default) wait for its guest to boot.
        kwargs: networks, security_groups of build_and_run_instance."""
        u = str(uuid.uuid4())
        self.api.build_and_run_instance(self.host, u, name, flavor or dict(FLAVOR),
                                        image or self.images["disk"], **kwargs)
        rec = self.wait_state(u, {"active", "error"})
        if rec["vm_state"] != "active":
            raise AssertionError(f"spawn failed: {rec['fault']}\n{self.diagnostics(u)}")
        if wait_console:
            self.wait_console(u, lambda c: guest.last_tick(c) >= 1, "first tick")
        return u

    def file_downloads(self, image_id):
        """How many times compute-images served the data of image_id."""
        return self.log("compute-images").count(f"GET /v2/images/{image_id}/file ")

    def wait_console(self, uuid_, predicate, what, timeout=90):
        return wait_until(lambda: (c := self.console(uuid_)) and predicate(c) and c,
                          timeout, 0.2, f"{uuid_}: {what}")

    def find(self, uuid_):
        """The instance's record on this host, or None (not recorded yet: a
        build cast still in flight, or a migration not arrived)."""
        try:
            return self.api.get_instance(self.host, uuid_)
        except exception.InstanceNotFound:
            return None

    def wait_settled(self, uuid_, timeout=120):
        """The record once no operation is in progress."""
        def settled():
            rec = self.find(uuid_)
            return rec if rec and rec["task_state"] is None and rec["vm_state"] != "building" \
                else None
        return wait_until(settled, timeout, 0.1, f"{uuid_} to settle")

    def wait_state(self, uuid_, vm_states, timeout=120, interval=0.05):
        def reached():
            rec = self.find(uuid_)
            return rec if rec and rec["vm_state"] in vm_states else None
        return wait_until(reached, timeout, interval, f"{uuid_} to reach {vm_states}")

    def console(self, uuid_):
        path = os.path.join(self.instances_path, uuid_, "console.log")
        try:
            with open(path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def stop(self):
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        with contextlib.suppress(Exception):
            self.api.transport.cleanup()

    def cleanup_guests(self):
        """Destroy any guest this run left behind (after a failed test)."""
        import libvirt
        conn = libvirt.open(LIBVIRT_URI)
        try:
            for dom in conn.listAllDomains(0):
                uuid_ = dom.UUIDString()
                if os.path.isdir(os.path.join(self.instances_path, uuid_)):
                    with contextlib.suppress(libvirt.libvirtError):
                        dom.destroy()
                    with contextlib.suppress(libvirt.libvirtError):
                        dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
                                          | libvirt.VIR_DOMAIN_UNDEFINE_KEEP_NVRAM)
        finally:
            conn.close()

    def remove(self):
        if not os.environ.get("COMPUTE_AGENT_KEEP_WORKDIR"):
            shutil.rmtree(self.workdir, ignore_errors=True)

    def close(self):
        """Stop the processes, destroy guests left behind, remove the dir."""
        self.stop()
        self.cleanup_guests()
        self.remove()
