"""The agent as a service: how fast it starts and stops, how much memory it
holds, and how soon it answers again after the broker restarts.  Prints
one JSON object:

- start_to_serving_s: agent start (process spawn) to its first answer to
  ping, with 50 instances on the host (45 defined and shut off, 5 running);
- sigterm_exit_s: SIGTERM to exit while idle; sigterm_exit_busy_s: the same
  while 5 operations run (they finish, or are left to resume at start);
- idle_rss_mb / idle_threads: the agent's RSS and threads after 2 minutes
  idle with the 50 instances, from a fresh start; idle_rss_with_privileged_mb
  adds its privileged daemons (their RSS, and the PSS of all three, which
  counts each page they share once);
- floor_import_rss_mb: a process of the same Python that only imports the
  libraries the agent cannot do without (oslo.messaging on threads,
  oslo.log, SQLAlchemy's ORM, libvirt, lxml, requests, cryptography,
  jsonschema), measured in the same run;
- rss_after_1000_ops_mb / threads_after_1000_ops: after 1,000 more
  operations: queries, pauses and unpauses, and refused ones (an unknown
  instance, a malformed uuid, a method that does not exist, each answered
  with an error), and the same with the privileged daemons;
- broker_restart_recovery_s: `rabbitmqctl stop_app; start_app`, then the
  time from the broker's return until the agent answers a call.

    .venv/bin/python benchmarks/service.py [--instances 50] [--running 5] [--idle 120] [--ops 1000]

Needs libvirtd and RabbitMQ (tools/start-daemons.sh) and restarts RabbitMQ's
application: run it where nothing else uses the broker.  Every guest it
made is removed."""
import argparse
import json
import os
import subprocess
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import smoke  # noqa: E402
from tests.harness.agent import Agent, wait_until  # noqa: E402

# the keys its JSON always has (benchmarks/smoke.py checks them)
KEYS = ("instances", "running", "sigterm_exit_s", "start_to_serving_s", "idle_rss_mb",
        "idle_threads", "idle_rss_with_privileged_mb", "floor_import_rss_mb",
        "idle_pss_with_privileged_mb", "ops",
        "ops_refused", "rss_after_1000_ops_mb", "threads_after_1000_ops",
        "rss_with_privileged_after_1000_ops_mb", "sigterm_exit_busy_s",
        "broker_restart_recovery_s")

FLAVOR = {"vcpus": 1, "memory_mb": 96, "root_gb": 1}


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def agent_pid(agent):
    return agent.procs["compute-agent"].pid


def status(pid, field):
    with open(f"/proc/{pid}/status") as f:
        return next(line.split()[1] for line in f if line.startswith(field + ":"))


def children(pid):
    """The agent's child processes: its privileged daemons."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat") as f:
                if entry.isdigit() and f.read().rsplit(")", 1)[1].split()[1] == str(pid):
                    found.append(int(entry))
        except (OSError, IndexError):
            pass
    return found


def pss_mb(pid):
    with open(f"/proc/{pid}/smaps_rollup") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("Pss:")) / 1024


def memory(agent, name):
    """The agent's RSS and threads; with its privileged daemons, RSS and PSS.
    name(what, unit) is each key."""
    pid = agent_pid(agent)
    family = [pid, *children(pid)]
    return {name("rss", "_mb"): round(rss_mb(pid), 1),
            name("threads", ""): int(status(pid, "Threads")),
            name("rss_with_privileged", "_mb"): round(sum(rss_mb(p) for p in family), 1),
            name("pss_with_privileged", "_mb"): round(sum(pss_mb(p) for p in family), 1),
            name("privileged_daemons", ""): len(family) - 1}


FLOOR_IMPORTS = ("compute", "oslo_messaging", "oslo_log.log", "sqlalchemy.orm", "libvirt",
                 "lxml.etree", "requests", "cryptography.fernet", "jsonschema")


def floor_import_rss_mb():
    code = (f"import {', '.join(FLOOR_IMPORTS)}\n"
            "print(next(line.split()[1] for line in open('/proc/self/status')\n"
            "           if line.startswith('VmRSS:')))")
    out = subprocess.run([sys.executable, "-W", "ignore", "-c", code], capture_output=True,
                         text=True, check=True).stdout
    return round(int(out.split()[-1]) / 1024, 1)


def mixed_ops(agent, uuids, n):
    """n operations on the running instances uuids; how many were refused
    (the refused ones are sent past the client's own checks)."""
    raw = agent.api.client.prepare(server=agent.host, timeout=30)
    refused = 0
    for i in range(n):
        u = uuids[i % len(uuids)]
        kind = i % 10
        try:
            if kind == 0:
                agent.api.pause_instance(agent.host, u)
                agent.wait_settled(u)
                agent.api.unpause_instance(agent.host, u)
                agent.wait_settled(u)
            elif kind == 1:
                agent.api.get_instance(agent.host, str(uuid.uuid4()))
            elif kind == 2:
                raw.call(agent.api._ctxt(), "get_instance", instance_uuid="../../etc/passwd")
            elif kind == 3:
                raw.call(agent.api._ctxt(), "no_such_method", instance_uuid=u)
            elif kind % 2:
                agent.api.get_instance(agent.host, u)
            else:
                agent.api.list_instances(agent.host)
        except Exception:               # noqa: BLE001 - counted: the refused ones
            refused += 1
    return refused


def populate(agent, image, total, running):
    """total instances: running of them left running, the others stopped."""
    uuids = [str(uuid.uuid4()) for _ in range(total)]
    for u in uuids:
        agent.api.build_and_run_instance(agent.host, u, "svc", FLAVOR, image)
    for u in uuids:
        rec = agent.wait_state(u, {"active", "error"}, timeout=600)
        if rec["vm_state"] != "active":
            raise RuntimeError(f"build failed: {rec['fault']}")
    for u in uuids[running:]:
        agent.api.stop_instance(agent.host, u)
    for u in uuids[running:]:
        wait_until(lambda u=u: agent.api.get_instance(agent.host, u)["vm_state"] == "stopped",
                   300, 0.5, "stopped")
    return uuids


def start_to_serving(agent):
    t0 = time.monotonic()
    agent._start_agent()
    wait_until(agent._answers, 60, 0.01, "ping")
    return time.monotonic() - t0


def sigterm_exit(agent):
    proc = agent.procs["compute-agent"]
    t0 = time.monotonic()
    proc.terminate()
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:       # what it was doing, before the kill
        sys.stderr.write("the agent did not exit in 60 s after SIGTERM; its log ends:\n"
                         + agent.log()[-8000:] + "\n")
        proc.kill()
        raise
    return time.monotonic() - t0


def broker_recovery(agent):
    subprocess.run(["rabbitmqctl", "-q", "stop_app"], check=True, capture_output=True)
    time.sleep(2)
    subprocess.run(["rabbitmqctl", "-q", "start_app"], check=True, capture_output=True)
    back = time.monotonic()
    wait_until(lambda: answers(agent), 300, 0.1, "an answer after the broker restart")
    return time.monotonic() - back


def answers(agent):
    try:
        return agent.api.ping(agent.host, timeout=1)
    except Exception:                   # noqa: BLE001 - not yet
        return None


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--instances", type=int, default=50)
    p.add_argument("--running", type=int, default=5)
    p.add_argument("--idle", type=int, default=120)
    p.add_argument("--ops", type=int, default=1000)
    args = smoke.arguments(p, instances=2, running=1, idle=1, ops=20)
    agent = Agent(extra_conf="[DEFAULT]\nshutdown_timeout = 0\nmax_concurrent_builds = 4\n"
                             "ram_allocation_ratio = 4.0\ncpu_allocation_ratio = 32.0\n").start()
    out = {"instances": args.instances, "running": args.running}
    uuids = []
    try:
        agent.upload_test_guest()
        image = agent.upload_variant("console=ttyS0 quiet tb.name=svc")
        uuids = populate(agent, image, args.instances, args.running)

        out["sigterm_exit_s"] = round(sigterm_exit(agent), 3)
        out["start_to_serving_s"] = round(start_to_serving(agent), 3)
        time.sleep(args.idle)
        out.update(memory(agent, lambda what, unit: f"idle_{what}{unit}"))
        out["floor_import_rss_mb"] = floor_import_rss_mb()

        out["ops"] = args.ops
        out["ops_refused"] = mixed_ops(agent, uuids[:args.running], args.ops)
        out.update(memory(agent, lambda what, unit: f"{what}_after_1000_ops{unit}"))

        for u in uuids[:args.running]:                  # 5 operations in flight
            agent.api.pause_instance(agent.host, u)
        out["sigterm_exit_busy_s"] = round(sigterm_exit(agent), 3)
        agent._start_agent()
        wait_until(agent._answers, 60, 0.05, "ping")
        for u in uuids[:args.running]:
            agent.wait_settled(u)

        out["broker_restart_recovery_s"] = round(broker_recovery(agent), 3)
        out["targets"] = {"start_to_serving_s": 2, "sigterm_exit_s": 2, "idle_rss_mb": 80,
                          "rss_after_1000_ops_mb": 100, "broker_restart_recovery_s": 5}
    finally:
        for u in uuids:
            try:
                agent.api.terminate_instance(agent.host, u)
            except Exception:           # noqa: BLE001 - best effort; close() reaps the rest
                pass
        for u in uuids:
            try:
                agent.wait_state(u, {"deleted"}, timeout=120)
            except Exception:           # noqa: BLE001
                pass
        agent.close()
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
