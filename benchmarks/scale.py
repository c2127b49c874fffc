"""Fifty agents on one machine: one PostgreSQL database (a role per host),
a three-node RabbitMQ cluster with quorum queues, every agent on libvirt's
test driver (RPC, claims, database and notifications real).  PostgreSQL
runs with fsync on, as an operator runs it (db_fsync names it; --db-fsync
off for the test suite's setting).  Prints one JSON object:

- agents; service_list: seconds until all show up, until five stopped
  agents show down (service_down_time 10 s) and up again after a start;
- under a mixed load of several clients (builds, power operations,
  queries, deletes): rpc_call_p50_ms / rpc_call_p99_ms (ping to a random
  agent), builds_per_s, errors;
- cores_busy: the cores each kind of process kept busy under the load
  (agents and their privileged daemons, RabbitMQ, PostgreSQL, the rest);
- heartbeat_writes_per_s (the services rows' report_count over the load),
  db_connections_peak (pg_stat_activity, sampled), agent_rss_mb_median;
- single_broker: the same load and ping figures with the agents restarted
  on one RabbitMQ node (the machine's own), in the same run;
- floor: ping of one agent with nothing else running, on that one node.

    .venv/bin/python benchmarks/scale.py [--agents 50] [--clients 4] [--seconds 60] [--db-fsync on]

Needs RabbitMQ (tools/start-daemons.sh) and PostgreSQL's binaries
(tools/install.sh); starts and removes everything else itself.
"""
import argparse
import json
import os
import statistics
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import smoke  # noqa: E402
from tests.harness.agent import TRANSPORT_URL  # noqa: E402
from tests.harness.fleet import Fleet, MixedLoad  # noqa: E402
from tests.harness.postgres import PostgresServer  # noqa: E402
from tests.harness.rabbit_cluster import RabbitCluster  # noqa: E402

QUORUM = ("[oslo_messaging_rabbit]\nrabbit_quorum_queue = true\n"
          "rabbit_transient_quorum_queue = true\nheartbeat_timeout_threshold = 10\n")
DOWN_TIME = 10


# the keys its JSON always has (benchmarks/smoke.py checks them)
KEYS = ('agents', 'clients', 'db_fsync', 'service_list', 'rpc_call_p50_ms', 'rpc_call_p99_ms',
        'builds_per_s', 'errors', 'heartbeat_writes_per_s', 'cores_busy', 'db_connections_peak',
        'agent_rss_mb_median', 'single_broker', 'floor', 'targets_met')


def heartbeats(pg):
    return int(pg.sql("SELECT coalesce(sum(report_count), 0) FROM services", db="compute"))


GROUPS = {"compute-agent": "agents", "beam.smp": "rabbitmq", "postgres": "postgresql"}


def cpu_by_group():
    """CPU seconds so far of every process, by what it is (GROUPS; the rest
    is 'other', this benchmark's clients among them): {pid: (group, s)}."""
    ticks, found = os.sysconf("SC_CLK_TCK"), {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                head, tail = f.read().rsplit(")", 1)
        except OSError:
            continue
        fields = tail.split()
        comm = head.split("(", 1)[1]
        found[entry] = (GROUPS.get(comm, "other"), (int(fields[11]) + int(fields[12])) / ticks)
    return found


def cpu_share(before, after, seconds):
    """Cores each group kept busy between two cpu_by_group() (pure)."""
    used = {}
    for pid, (group, s) in after.items():
        used[group] = used.get(group, 0.0) + s - before.get(pid, (group, 0.0))[1]
    return {g: round(v / seconds, 2) for g, v in sorted(used.items())}


def loaded(fleet, pg, clients, seconds):
    """Run the mixed load; its figures with the database's and the cores
    each kind of process kept busy."""
    peak, done = [0], threading.Event()

    def sample():
        while not done.wait(0.5):
            peak[0] = max(peak[0], pg.connections())
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    beats = heartbeats(pg)
    cpu0 = cpu_by_group()
    load = MixedLoad(fleet, clients=clients).start()
    time.sleep(seconds)
    cores = cpu_share(cpu0, cpu_by_group(), seconds)
    load.stop()
    done.set()
    sampler.join()
    figures = load.figures()
    figures["heartbeat_writes_per_s"] = round((heartbeats(pg) - beats) / load.seconds, 2)
    figures["db_connections_peak"] = peak[0]
    figures["first_errors"] = load.errors[:5]
    figures["cores_busy"] = cores
    return figures


def floor(fleet, n=200):
    api = fleet.client()
    host = fleet.agents[0].host
    api.ping(host)
    walls = []
    for _ in range(n):
        started = time.monotonic()
        api.ping(host)
        walls.append((time.monotonic() - started) * 1000)
    walls.sort()
    return {"ping_p50_ms": round(statistics.median(walls), 2),
            "ping_p99_ms": round(walls[int(n * 0.99) - 1], 2)}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--agents", type=int, default=50)
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--seconds", type=int, default=60)
    p.add_argument("--db-fsync", choices=("on", "off"), default="on",
                   help="PostgreSQL's fsync: on as an operator runs it (the default), off "
                        "as the test suite does")
    args = smoke.arguments(p, agents=2, clients=1, seconds=3)
    out = {"agents": args.agents, "clients": args.clients, "db_fsync": args.db_fsync}
    pg = PostgresServer(max_connections=args.agents * 6 + 50,
                        fsync=args.db_fsync == "on").start()
    cluster = RabbitCluster()
    fleet = None
    try:
        pg.create_schema()
        cluster.start()
        started = time.monotonic()
        fleet = Fleet(args.agents, pg, cluster.transport_url(), DOWN_TIME, QUORUM).start()
        out["fleet_start_s"] = round(time.monotonic() - started, 1)
        everyone = {a.host: "up" for a in fleet.agents}
        svc = {"all_up_s": round(fleet.wait_states(everyone, 60), 1)}
        five = fleet.agents[1:6]
        fleet.stop(five)
        svc["five_down_s"] = round(fleet.wait_states(
            {**everyone, **{a.host: "down" for a in five}}, DOWN_TIME + 30), 1)
        fleet.restart(five)
        svc["five_up_again_s"] = round(fleet.wait_states(everyone, 60), 1)
        svc["up"] = sum(1 for s in fleet.service_states().values() if s == "up")
        out["service_list"] = svc
        out.update(loaded(fleet, pg, args.clients, args.seconds))
        sizes = fleet.rss_mb()
        out["agent_rss_mb_median"] = round(statistics.median(sizes), 1)
        print(json.dumps(out), file=sys.stderr, flush=True)   # in case the rest fails
        # the same agents on one broker node: restarted with its URL
        fleet.switch_broker(TRANSPORT_URL)
        single = loaded(fleet, pg, args.clients, args.seconds)
        out["single_broker"] = {k: single[k] for k in (
            "rpc_call_p50_ms", "rpc_call_p99_ms", "builds_per_s", "errors", "first_errors",
            "cores_busy")}
        out["floor"] = floor(fleet)
    finally:
        if fleet is not None:
            fleet.close()
        cluster.remove()
        pg.remove()
    out["targets_met"] = bool(out.get("rpc_call_p99_ms") is not None
                              and out["rpc_call_p99_ms"] <= 100 and out["errors"] == 0)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
