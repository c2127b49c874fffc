"""What a Prometheus scrape costs the agent: the agent's CPU time per
scrape (from /proc/<pid>/stat, over many scrapes) and the scrape's wall
time, with a few instances recorded; beside them the floor, a GET of
the image service's empty image list from the same client in the same
run.  Prints one JSON object.

    .venv/bin/python benchmarks/metrics.py [--scrapes 200] [--instances 3]

Needs libvirtd and RabbitMQ (tools/start-daemons.sh); starts its own
compute-images and compute-agent (metrics on) and removes its guests.
"""
import argparse
import json
import os
import statistics
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import smoke  # noqa: E402
from tests.harness.agent import Agent  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


# the keys its JSON always has (benchmarks/smoke.py checks them)
KEYS = ('instances', 'scrapes', 'scrape_agent_cpu_ms', 'scrape_ms_p50', 'scrape_ms_p99',
        'floor_http_get_ms_p50', 'page_bytes')


def cpu_seconds(pid):
    """User + system CPU seconds of a process and its threads."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def agent_pid(agent):
    """The compute-agent process (setpriv execs it: the pid started)."""
    return agent.procs["compute-agent"].pid


def timed(url, n):
    walls = []
    for _ in range(n):
        started = time.perf_counter()
        with urllib.request.urlopen(url, timeout=10) as page:
            page.read()
        walls.append(time.perf_counter() - started)
    return walls


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--scrapes", type=int, default=200)
    parser.add_argument("--instances", type=int, default=3)
    args = smoke.arguments(parser, scrapes=5, instances=1)
    agent = Agent().start()
    try:
        agent.upload_test_guest()
        uuids = [agent.boot(f"m{i}", wait_console=False) for i in range(args.instances)]
        url = f"http://127.0.0.1:{agent.metrics_port}/metrics"
        timed(url, 10)                                     # warm up
        pid = agent_pid(agent)
        cpu0 = cpu_seconds(pid)
        walls = timed(url, args.scrapes)
        cpu = (cpu_seconds(pid) - cpu0) / args.scrapes
        floor = timed(f"{agent.image_url}/v2/images", args.scrapes)
        page = urllib.request.urlopen(url, timeout=10).read()
        print(json.dumps({
            "instances": args.instances, "scrapes": args.scrapes,
            "scrape_agent_cpu_ms": round(cpu * 1000, 3),
            "scrape_ms_p50": round(statistics.median(walls) * 1000, 3),
            "scrape_ms_p99": round(sorted(walls)[int(len(walls) * 0.99) - 1] * 1000, 3),
            "floor_http_get_ms_p50": round(statistics.median(floor) * 1000, 3),
            "page_bytes": len(page)}))
        for u in uuids:
            agent.api.terminate_instance(agent.host, u)
            agent.wait_state(u, {"deleted"})
    finally:
        agent.close()


if __name__ == "__main__":
    main()
