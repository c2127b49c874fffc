"""Live snapshot cost: a guest with a 1 GiB root disk holding 256 MiB of
data it wrote itself is snapshotted through the agent while it runs, and
the same disk is flattened by `qemu-img convert` in the same run (the
floor: the least work that yields the same flat image).

- live_s: from the request to the flat image made (the image_made event):
  the guest's writes moved to an overlay, its frozen disk converted;
- merge_s: merging the overlay back afterwards (the disk_merged event);
- total_s: to the end of the upload to compute-images;
- floor_s: `qemu-img convert -U -f qcow2 -O qcow2` of the instance disk;
- max_guest_pause_s: the longest stall of the guest's 1 s tick during the
  snapshots, by the host's clock (gap between tick lines reaching the
  console log, minus the tick; a paused guest's own clock stops).

    .venv/bin/python benchmarks/snapshot.py [--rounds 3]

Fairness on this test VM: its memory is backed by the host on first touch
and pages freed for more than a second or two go back to the host, so a
256 MiB copy into page cache costs up to 0.6 s more system time unless
pages were freed just before.  Each timed copy (snapshot and floor)
therefore starts right after an untimed warm-up convert whose output was
removed, and with no dirty pages (sync).

Prints JSON.  Needs libvirtd and RabbitMQ (tools/start-daemons.sh).
"""
import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import smoke  # noqa: E402
from tests.harness import guest  # noqa: E402
from tests.harness.agent import Agent, wait_until  # noqa: E402

FILL = """#!/bin/sh
dd if=/dev/urandom of=/dev/vda bs=1M seek=512 count=256 conv=fsync 2>/dev/null
echo "TB: filled"
"""


# the keys its JSON always has (benchmarks/smoke.py checks them)
KEYS = ('rounds', 'data_mib', 'live_s', 'merge_s', 'total_s', 'floor_s', 'ratio_to_floor',
        'total_ratio_to_floor', 'max_guest_pause_s', 'rounds_live_s', 'rounds_floor_s')


def fill_image(agent, workdir):
    """The test guest's disk with a tb-run.sh that writes 256 MiB."""
    raw = os.path.join(workdir, "fill.raw")
    shutil.copy(os.path.join(guest.build(), "disk.raw"), raw)
    script = os.path.join(workdir, "tb-run.sh")
    with open(script, "w") as f:
        f.write(FILL)
    for cmd in (f"write {script} tb-run.sh", "sif tb-run.sh mode 0100755"):
        subprocess.run(["debugfs", "-w", "-R", cmd, raw], check=True, capture_output=True)
    qcow = os.path.join(workdir, "fill.qcow2")
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw, qcow], check=True)
    return agent._upload(qcow, "qcow2", kernel_id=agent.images["kernel"],
                         ramdisk_id=agent.images["ramdisk"],
                         os_command_line="console=ttyS0 quiet tb.name=fill")


def convert(disk, workdir):
    """Seconds of the floor: qemu-img convert of disk into a file it then
    removes (freeing the page cache that file took)."""
    out = os.path.join(workdir, "floor.qcow2")
    os.sync()
    t0 = time.monotonic()
    subprocess.run(["qemu-img", "convert", "-U", "-f", "qcow2", "-O", "qcow2", disk, out],
                   check=True)
    seconds = time.monotonic() - t0
    os.unlink(out)
    return seconds


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    args = smoke.arguments(ap, rounds=1)
    agent = Agent().start()
    workdir = tempfile.mkdtemp(prefix="ca-bench-snap-")
    try:
        agent.upload_test_guest()
        image = fill_image(agent, workdir)
        u = agent.boot("fill", image=image, flavor={"vcpus": 1, "memory_mb": 128,
                                                     "root_gb": 1}, wait_console=False)
        agent.wait_console(u, lambda c: "TB: filled" in c, "256 MiB written", timeout=300)
        agent.wait_console(u, lambda c: re.search(r"^TB: tick 2 ", c, re.M), "ticking")
        disk = os.path.join(agent.instances_path, u, "disk")
        live, merge, total, floor, pauses = [], [], [], [], []
        for _ in range(args.rounds):
            convert(disk, workdir)      # warm-up, see the module docstring
            os.sync()
            with guest.TickWatcher(os.path.join(agent.instances_path, u, "console.log")) as tw:
                t0 = time.monotonic()
                agent.api.snapshot_instance(agent.host, u, "bench")
                wait_until(lambda: agent.api.get_instance(agent.host, u)["task_state"] is None,
                           600, 0.02, "snapshot")
                total.append(time.monotonic() - t0)
                time.sleep(2.5)
            events = agent.api.list_instance_actions(agent.host, u)[-1]["events"]
            made = [e for e in events if e["event"] == "image_made"]
            if not made:
                raise SystemExit(f"snapshot failed: {events}")
            live.append(float(made[0]["details"].split()[0]))
            merge.append(float([e for e in events if e["event"] == "disk_merged"][0]
                               ["details"].split()[0]))
            pauses.append(max(tw.gaps(), default=0.0) - 1.0)
            convert(disk, workdir)      # warm-up, as before the snapshot
            floor.append(convert(disk, workdir))
        med = {k: statistics.median(v) for k, v in
               (("live", live), ("merge", merge), ("total", total), ("floor", floor))}
        print(json.dumps({
            "rounds": args.rounds, "data_mib": 256,
            "live_s": round(med["live"], 3), "merge_s": round(med["merge"], 3),
            "total_s": round(med["total"], 3),
            "floor_s": round(med["floor"], 3),
            "ratio_to_floor": round(med["live"] / med["floor"], 2),
            "total_ratio_to_floor": round(med["total"] / med["floor"], 2),
            "max_guest_pause_s": round(max(0.0, max(pauses)), 3),
            "rounds_live_s": [round(x, 3) for x in live],
            "rounds_floor_s": [round(x, 3) for x in floor]}, indent=2))
    finally:
        agent.close()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
