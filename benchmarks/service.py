"""The agent as a service: how fast it starts and stops, how much memory it
holds, and how soon it answers again after the broker restarts.  Prints
one JSON object:

- start_to_serving_s: agent start (process spawn) to its first answer to
  ping, with 50 instances on the host (45 defined and shut off, 5 running);
- sigterm_exit_s: SIGTERM to exit while idle; sigterm_exit_busy_s: the same
  while 5 operations run (they finish, or are left to resume at start);
- idle_rss_mb: the agent's RSS after 2 minutes idle with the 50 instances;
- rss_after_100_ops_mb: after 100 more operations (queries and power
  operations);
- broker_restart_recovery_s: `rabbitmqctl stop_app; start_app`, then the
  time from the broker's return until the agent answers a call.

    .venv/bin/python benchmarks/service.py [--instances 50] [--running 5] [--idle 120]

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

from tests.harness.agent import Agent, wait_until  # noqa: E402

FLAVOR = {"vcpus": 1, "memory_mb": 96, "root_gb": 1}


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def agent_pid(agent):
    return agent.procs["compute-agent"].pid


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
    args = p.parse_args()
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
        out["idle_rss_mb"] = round(rss_mb(agent_pid(agent)), 1)

        for i in range(100):
            u = uuids[i % args.running]
            if i % 10 == 0:
                agent.api.pause_instance(agent.host, u)
                agent.wait_settled(u)
                agent.api.unpause_instance(agent.host, u)
                agent.wait_settled(u)
            else:
                agent.api.get_instance(agent.host, u)
                agent.api.list_instances(agent.host)
        out["rss_after_100_ops_mb"] = round(rss_mb(agent_pid(agent)), 1)

        for u in uuids[:args.running]:                  # 5 operations in flight
            agent.api.pause_instance(agent.host, u)
        out["sigterm_exit_busy_s"] = round(sigterm_exit(agent), 3)
        agent._start_agent()
        wait_until(agent._answers, 60, 0.05, "ping")
        for u in uuids[:args.running]:
            agent.wait_settled(u)

        out["broker_restart_recovery_s"] = round(broker_recovery(agent), 3)
        out["targets"] = {"start_to_serving_s": 2, "sigterm_exit_s": 2, "idle_rss_mb": 80,
                          "broker_restart_recovery_s": 5}
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
