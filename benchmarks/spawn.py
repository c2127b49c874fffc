"""Spawn latency: RPC cast to ACTIVE, against the floor of doing the same
by hand (qemu-img create of the overlay + virDomainCreateXML of the same
domain XML), measured in the same run.  Prints one JSON object.

    .venv/bin/python benchmarks/spawn.py [--runs 10] [--concurrent 10]

Needs libvirtd and RabbitMQ running (tools/start-daemons.sh); starts its own
compute-images and compute-agent and removes every guest it made.
"""
import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import types
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import libvirt  # noqa: E402

from benchmarks import smoke  # noqa: E402
from tests.harness.agent import LIBVIRT_URI, Agent  # noqa: E402
from virt.libvirt import builder  # noqa: E402
from virt.libvirt.xml.domain import Domain  # noqa: E402

FLAVOR = {"vcpus": 1, "memory_mb": 128, "root_gb": 1}


# the keys its JSON always has (benchmarks/smoke.py checks them)
KEYS = ('cold_spawn_s', 'sequential_warm_median_s', 'sequential_warm_s', 'floor_median_s',
        'floor_s', 'ratio_to_floor', 'concurrent_n', 'concurrent_all_active',
        'concurrent_wall_s')


def spawn_and_time(agent, image):
    """Seconds from the cast to ACTIVE.  The end is the record's launched_at,
    stamped by the agent (same host clock) as it sets ACTIVE, so the
    client's polling interval neither adds to the figure nor loads the CPU."""
    u = str(uuid.uuid4())
    t0 = time.time()
    agent.api.build_and_run_instance(agent.host, u, "bench", FLAVOR, image)
    rec = agent.wait_state(u, {"active", "error"}, interval=0.1)
    if rec["vm_state"] != "active":
        raise RuntimeError(f"spawn failed: {rec['fault']}")
    launched = datetime.datetime.fromisoformat(rec["launched_at"].rstrip("Z"))
    return u, launched.replace(tzinfo=datetime.UTC).timestamp() - t0


def delete_all(agent, uuids):
    for u in uuids:
        agent.api.terminate_instance(agent.host, u)
    for u in uuids:
        agent.wait_state(u, {"deleted"})


def floor_once(conn, template_xml, base, workdir):
    """What a spawn cannot avoid: the overlay and createXML of the same XML."""
    u = str(uuid.uuid4())
    disk = os.path.join(workdir, u + ".qcow2")
    dom = Domain.parse(template_xml)
    dom.uuid, dom.name = u, "floor-" + u
    dom.sysinfo = builder.build_sysinfo(types.SimpleNamespace(uuid=u))   # the agent's own
    dom.devices.disks[0].source_file = disk
    dom.devices.serials[0].source_path = os.path.join(workdir, u + ".log")
    xml = dom.to_xml()
    t0 = time.perf_counter()
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", base, "-F", "raw", disk,
                    str(1024 ** 3)], check=True)
    d = conn.createXML(xml, 0)
    elapsed = time.perf_counter() - t0
    d.destroy()
    os.unlink(disk)
    return elapsed


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--concurrent", type=int, default=10)
    args = smoke.arguments(p, runs=1, concurrent=2)
    agent = Agent().start()
    try:
        image = agent.upload_test_guest()
        # Warm the cache (download + raw conversion) and take its XML as the
        # floor's template.
        u, cold = spawn_and_time(agent, image)
        with open(os.path.join(agent.instances_path, u, "libvirt.xml")) as f:
            template = f.read()
        base = subprocess.run(["qemu-img", "info", "-U", "--output=json",
                               os.path.join(agent.instances_path, u, "disk")],
                              check=True, capture_output=True, text=True).stdout
        base = json.loads(base)["backing-filename"]
        delete_all(agent, [u])

        sequential, floor = [], []
        conn = libvirt.open(LIBVIRT_URI)
        with tempfile.TemporaryDirectory(dir=agent.workdir) as workdir:
            os.chmod(workdir, 0o755)        # QEMU's user passes through to its disk
            for _ in range(args.runs):     # interleaved, so both see the same load
                u, t = spawn_and_time(agent, image)
                sequential.append(t)
                delete_all(agent, [u])
                floor.append(floor_once(conn, template, base, workdir))
        conn.close()

        uuids = [str(uuid.uuid4()) for _ in range(args.concurrent)]
        t0 = time.perf_counter()
        for u in uuids:
            agent.api.build_and_run_instance(agent.host, u, "bench-c", FLAVOR, image)
        states = [agent.wait_state(u, {"active", "error"}, timeout=300)["vm_state"]
                  for u in uuids]
        concurrent_wall = time.perf_counter() - t0
        delete_all(agent, uuids)

        seq_median, floor_median = statistics.median(sequential), statistics.median(floor)
        print(json.dumps({
            "cold_spawn_s": round(cold, 3),
            "sequential_warm_median_s": round(seq_median, 3),
            "sequential_warm_s": [round(t, 3) for t in sequential],
            "floor_median_s": round(floor_median, 3),
            "floor_s": [round(t, 3) for t in floor],
            "ratio_to_floor": round(seq_median / floor_median, 3),
            "concurrent_n": args.concurrent,
            "concurrent_all_active": all(s == "active" for s in states),
            "concurrent_wall_s": round(concurrent_wall, 3),
        }, indent=2))
    finally:
        agent.close()


if __name__ == "__main__":
    main()
