"""Three RabbitMQ nodes clustered on this machine for the broker tests:
Debian's rabbitmq-server run as the rabbitmq user under node names
ca<N>-<id>@localhost, each on its own AMQP and distribution port with its
own database and logs in a temp dir (the machine's own broker is left
alone).  They share the rabbitmq user's Erlang cookie."""
import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid

from tests.harness.agent import free_port

RABBIT_BIN = "/usr/lib/rabbitmq/bin"
AS_RABBIT = ["setpriv", "--reuid=rabbitmq", "--regid=rabbitmq", "--init-groups"]
USER, PASSWORD = "compute", "compute-secret"


class Node:
    def __init__(self, cluster, index):
        self.name = f"ca{index}-{cluster.id}@localhost"
        self.port = free_port()
        self.dist_port = free_port()
        self.dir = os.path.join(cluster.dir, f"n{index}")
        os.makedirs(self.dir)
        shutil.chown(self.dir, "rabbitmq", "rabbitmq")
        self.proc = None

    def env(self):
        return {**os.environ, "HOME": "/var/lib/rabbitmq", "RABBITMQ_NODENAME": self.name,
                "RABBITMQ_NODE_PORT": str(self.port), "RABBITMQ_DIST_PORT": str(self.dist_port),
                "RABBITMQ_MNESIA_BASE": os.path.join(self.dir, "mnesia"),
                "RABBITMQ_LOG_BASE": self.dir,
                "RABBITMQ_ENABLED_PLUGINS_FILE": os.path.join(self.dir, "enabled_plugins"),
                "RABBITMQ_CONFIG_FILE": os.path.join(self.dir, "rabbitmq"),
                "RABBITMQ_PID_FILE": os.path.join(self.dir, "pid")}

    def ctl(self, *args, check=True, timeout=120):
        """rabbitmqctl against this node: its output (check=False: None
        when it failed)."""
        run = subprocess.run([*AS_RABBIT, os.path.join(RABBIT_BIN, "rabbitmqctl"), "-n",
                              self.name, *args], env=self.env(), capture_output=True,
                             text=True, timeout=timeout)
        if check and run.returncode:
            raise RuntimeError(f"rabbitmqctl {args} on {self.name}: {run.stderr or run.stdout}")
        return run.stdout if run.returncode == 0 else None

    def start(self):
        with open(os.path.join(self.dir, "enabled_plugins"), "w") as f:
            f.write("[].\n")
        with open(os.path.join(self.dir, "rabbitmq.conf"), "w") as f:
            f.write(f"loopback_users = none\nlisteners.tcp.default = 127.0.0.1:{self.port}\n")
        for name in ("enabled_plugins", "rabbitmq.conf"):
            shutil.chown(os.path.join(self.dir, name), "rabbitmq", "rabbitmq")
        log = open(os.path.join(self.dir, "server.out"), "ab")
        self.proc = subprocess.Popen([*AS_RABBIT, os.path.join(RABBIT_BIN, "rabbitmq-server")],
                                     env=self.env(), stdout=log, stderr=subprocess.STDOUT,
                                     cwd=self.dir)
        deadline = time.monotonic() + 120
        while True:       # await_startup fails at once until the node is registered
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited: see {self.dir}")
            if self.ctl("await_startup", "--timeout", "60", check=False, timeout=90) is not None:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name} did not start: see {self.dir}")
            time.sleep(1)

    def stop(self):
        """Stop the node (its Erlang VM exits), as a failed node would."""
        if self.proc is not None and self.proc.poll() is None:
            self.ctl("stop", check=False)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class RabbitCluster:
    def __init__(self, size=3):
        self.id = uuid.uuid4().hex[:6]
        self.dir = tempfile.mkdtemp(prefix="ca-rabbit-")
        os.chmod(self.dir, 0o755)
        self.nodes = [Node(self, i + 1) for i in range(size)]

    def start(self):
        first, *rest = self.nodes
        first.start()
        for node in rest:
            node.start()
            node.ctl("stop_app")
            node.ctl("join_cluster", first.name)
            node.ctl("start_app")
        first.ctl("add_user", USER, PASSWORD)
        first.ctl("set_permissions", "-p", "/", USER, ".*", ".*", ".*")
        return self

    def running(self):
        """Names of the nodes the cluster reports running."""
        for node in self.nodes:
            if node.proc.poll() is None:
                out = node.ctl("cluster_status", "--formatter", "json", check=False)
                if out is not None:
                    return sorted(json.loads(out)["running_nodes"])
        return []

    def transport_url(self, nodes=None):
        hosts = ",".join(f"{USER}:{PASSWORD}@127.0.0.1:{n.port}" for n in nodes or self.nodes)
        return f"rabbit://{hosts}/"

    def remove(self):
        for node in self.nodes:
            node.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def wait_nodes(cluster, count, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(cluster.running()) == count:
            return
        time.sleep(1)
    raise TimeoutError(f"the cluster did not reach {count} running nodes")
