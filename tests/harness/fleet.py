"""Many agents on one machine for the scale tests: each a real
compute-agent process with its own database role and its own host name,
on libvirt's test driver (everything above the driver real: RPC, claims,
database, notifications), sharing one image service and one broker
(a node or a cluster).  And the mixed load several clients drive at
them, with the figures it yields."""
import concurrent.futures
import os
import random
import statistics
import subprocess
import threading
import time
import uuid

from oslo_config import cfg

from compute.agent import conf as compute_conf
from compute.db.api import Database, service_is_up
from compute.rpc.client import ComputeAPI
from tests.harness import postgres
from tests.harness.agent import Agent, wait_until

SMALL = {"vcpus": 1, "memory_mb": 64, "root_gb": 1}


class Fleet:
    def __init__(self, size, pg, transport_url, service_down_time=10, broker_conf=""):
        self.pg = pg
        self.transport_url = transport_url
        self.broker_conf = broker_conf
        self.down_time = service_down_time
        self.agents = []
        for _ in range(size):
            self.agents.append(self._agent(first=not self.agents))
        self.image_id = None
        self._db = None
        self._clients = []              # closed with the fleet (no reconnect loops after)

    def _agent(self, first):
        a = Agent()
        a.transport_url = self.transport_url
        a.extra_conf = (self.pg.add_host(a.host) +
                        "[libvirt]\nconnection_uri = test:///default\n"
                        f"[DEFAULT]\nservice_down_time = {self.down_time}\n"
                        "ram_allocation_ratio = 1000\n" + self.broker_conf)
        if not first:
            images = self.agents[0]
            a.owns_image_service = False
            a.image_url = a.agent_image_url = images.image_url
        return a

    def start(self, agents=None, workers=8):
        """Start the agents (the first one, with the image service, first)
        a few at a time; wait until each answers."""
        agents = agents or self.agents
        if self.agents[0] in agents:
            self.agents[0].start()
            agents = [a for a in agents if a is not self.agents[0]]
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            list(pool.map(lambda a: a.start(), agents))
        if self.image_id is None:
            first = self.agents[0]
            small = os.path.join(first.workdir, "small.qcow2")
            subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", small, "8M"], check=True)
            os.chmod(small, 0o644)
            self.image_id = first._upload(small, "qcow2")
        return self

    def stop(self, agents):
        """Stop these agents' daemons (SIGTERM, as systemd would)."""
        assert self.agents[0] not in agents, "the first agent serves the images"
        for a in agents:
            a.procs["compute-agent"].terminate()
        for a in agents:
            a.procs["compute-agent"].wait(30)

    def restart(self, agents):
        """Start stopped agents again (their config and state as they were)."""
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda a: a.restart_agent(), agents))

    def switch_broker(self, transport_url):
        """Restart every agent on another broker (classic queues)."""
        self.stop(self.agents[1:])
        first = self.agents[0].procs["compute-agent"]
        first.terminate()
        first.wait(30)
        self.transport_url = transport_url
        for a in self.agents:
            a.transport_url = transport_url
            with open(a.config_file) as f:
                lines = f.read().splitlines()
            with open(a.config_file, "w") as f:
                for line in lines:
                    if line.startswith("transport_url ="):
                        line = f"transport_url = {transport_url}"
                    elif line.startswith(("rabbit_quorum_queue", "rabbit_transient_quorum")):
                        continue
                    f.write(line + "\n")
            a.api.transport.cleanup()
            a.connect()
        self.restart(self.agents)

    def close(self):
        for api in self._clients:
            api.transport.cleanup()
        if self._db is not None:
            self._db.engine.dispose()
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda a: a.close(), self.agents))

    def client(self, timeout=60):
        """A new RPC client (its own broker connection), as a caller has."""
        conf = cfg.ConfigOpts()
        compute_conf.register_opts(conf)
        conf(["--config-file", self.agents[0].config_file], project="compute-agent-fleet")
        api = ComputeAPI(conf, timeout=timeout)
        self._clients.append(api)
        return api

    def service_states(self, cli=False):
        """{host: "up"|"down"} of this fleet's hosts: as `computectl
        service-list` prints them (cli), or by the same rule read directly
        (the timing loops: a computectl start costs seconds on a machine
        this loaded)."""
        hosts = {a.host for a in self.agents}
        if cli:
            import json
            run = subprocess.run([os.path.join(os.path.dirname(os.sys.executable),
                                               "computectl"),
                                  "--config-file", self.agents[0].config_file, "--json",
                                  "service-list"], capture_output=True, text=True, timeout=120,
                                 check=True)
            return {s["host"]: s["status"] for s in json.loads(run.stdout)
                    if s["host"] in hosts}
        if self._db is None:
            self._db = Database(self.pg.url(postgres.ADMIN))
        return {s.host: "up" if service_is_up(s, self.down_time) else "down"
                for s in self._db.service_list() if s.host in hosts}

    def wait_states(self, expected, timeout):
        """Seconds until the services are as expected ({host: state}),
        which computectl service-list then shows too."""
        started = time.monotonic()
        wait_until(lambda: all(self.service_states().get(h) == s for h, s in expected.items()),
                   timeout, 0.2, f"services {expected}")
        took = time.monotonic() - started
        shown = self.service_states(cli=True)
        wrong = {h: shown.get(h) for h, s in expected.items() if shown.get(h) != s}
        assert not wrong, f"computectl service-list shows {wrong}"
        return took

    def rss_mb(self):
        """Resident memory of each agent process (not its privsep daemons)."""
        sizes = []
        for a in self.agents:
            proc = a.procs.get("compute-agent")
            if proc is None or proc.poll() is not None:
                continue
            with open(f"/proc/{proc.pid}/status") as f:
                kb = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
            sizes.append(kb / 1024)
        return sizes


class MixedLoad:
    """clients threads, each: build an instance on a random host and wait
    for it, a power operation (hard reboot, or stop then start), queries,
    a delete; a pinger measuring call latency to random hosts meanwhile.
    Every failure is kept (errors)."""

    def __init__(self, fleet, clients=4, ping_interval=0.02):
        self.fleet, self.clients, self.ping_interval = fleet, clients, ping_interval
        self.stopping = threading.Event()
        self.ping_ms, self.errors = [], []
        self.builds_accepted = self.builds_done = self.operations = 0
        self.accepted = []              # (host, uuid) of every build the broker took
        self._lock = threading.Lock()
        self._threads = []

    def start(self):
        self.started = time.monotonic()
        for i in range(self.clients):
            self._threads.append(threading.Thread(target=self._client, args=(i,), daemon=True))
        self._threads.append(threading.Thread(target=self._pinger, daemon=True))
        for t in self._threads:
            t.start()
        return self

    def stop(self, timeout=300):
        """Stop after the current round of each client (its builds finish)."""
        self.stopping.set()
        for t in self._threads:
            t.join(timeout)
        self.seconds = time.monotonic() - self.started
        return self

    def _count(self, **what):
        with self._lock:
            for k, v in what.items():
                setattr(self, k, getattr(self, k) + v)

    def _wait(self, api, host, u, states, timeout=120):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                rec = api.get_instance(host, u)
            except Exception as e:
                if type(e).__name__.startswith("InstanceNotFound"):
                    time.sleep(0.1)
                    continue
                raise
            if rec["vm_state"] in states and rec["task_state"] is None:
                return rec
            if rec["vm_state"] == "error":
                raise AssertionError(f"{u} on {host} went to ERROR: {rec['fault']}")
            time.sleep(0.1)
        raise TimeoutError(f"{u} on {host} did not reach {states}")

    def _client(self, index):
        api = self.fleet.client()
        rnd = random.Random(index)
        while not self.stopping.is_set():
            host = rnd.choice(self.fleet.agents).host
            u = str(uuid.uuid4())
            try:
                api.build_and_run_instance(host, u, f"load-{index}", dict(SMALL),
                                           self.fleet.image_id)
                self._count(builds_accepted=1)
                with self._lock:
                    self.accepted.append((host, u))
                self._wait(api, host, u, {"active"})
                self._count(builds_done=1)
                if rnd.random() < 0.5:
                    api.reboot_instance(host, u, "HARD")
                    self._wait(api, host, u, {"active"})
                else:
                    api.stop_instance(host, u)
                    self._wait(api, host, u, {"stopped"})
                    api.start_instance(host, u)
                    self._wait(api, host, u, {"active"})
                api.list_instances(host)
                api.terminate_instance(host, u)
                self._wait(api, host, u, {"deleted"})
                self._count(operations=5)
            except Exception as e:
                with self._lock:
                    self.errors.append(f"{host} {u}: {type(e).__name__}: {e}")

    def _pinger(self):
        api = self.fleet.client(timeout=30)
        rnd = random.Random(99)
        while not self.stopping.is_set():
            host = rnd.choice(self.fleet.agents).host
            started = time.monotonic()
            try:
                api.ping(host, timeout=30)
                with self._lock:
                    self.ping_ms.append((time.monotonic() - started) * 1000)
            except Exception as e:
                with self._lock:
                    self.errors.append(f"ping {host}: {type(e).__name__}: {e}")
            self.stopping.wait(self.ping_interval)

    def figures(self):
        pings = sorted(self.ping_ms)
        return {"rpc_call_p50_ms": round(statistics.median(pings), 2) if pings else None,
                "rpc_call_p99_ms": round(pings[int(len(pings) * 0.99) - 1], 2)
                if pings else None,
                "pings": len(pings),
                "builds_accepted": self.builds_accepted, "builds_done": self.builds_done,
                "builds_per_s": round(self.builds_done / self.seconds, 2),
                "seconds": round(self.seconds, 1), "errors": len(self.errors)}
