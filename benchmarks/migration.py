"""Live migration between two namespaced hosts (tests/harness/testbed.py),
agent to agent over RPC, of a 256 MiB guest:

- live_shared_*: instances_path on a shared (bindfs fuse.glusterfs) mount;
- live_block_*: no shared storage, the disk is copied (NON_SHARED_INC);
- live_*_tls_*: the same over libvirt's native TLS (VIR_MIGRATE_TLS:
  memory stream and NBD copy encrypted, certificates of the bed's CA),
  in the same run; the others have live_migration_with_native_tls off;
  live_block_tls_overhead: live_block_tls_total_s / live_block_total_s;
- *_total_s: from the live_migrate_instance call until the instance is
  settled on the destination; *_downtime_ms: the guest's pause as the
  destination's libvirt reports it (domjobinfo --completed).

- cold_transfer_mb_s: a stopped guest's 1 GiB root overlay holding 256 MiB
  written (qemu-io) is cold-migrated back and forth; the rate is the
  overlay file's size over the source's `disks_sent` time (connect,
  authenticate, stream encrypted, the receiver's answer; no fsync, which
  waits for the confirm);
- cold_floor_mb_s: `cp --sparse=always` of the same file on the same
  machine right after each transfer (no network, no encryption, no fsync);
  cold_ratio_to_floor: the medians' ratio.  Both are warm: each timed
  transfer and each timed cp starts right after an untimed warm-up cp of
  the file (its copy removed) with no dirty pages, because on this VM the
  first copy into memory not touched lately runs at a quarter of the speed
  of the next one, and whichever came first would lose;
  cold_floor_synced_mb_s: a cp followed by an fsync of the copy;
  *_rounds_mb_s: each round's figure.

    .venv/bin/python benchmarks/migration.py [--rounds 3]

Prints JSON.  Needs root, libvirtd and RabbitMQ (tools/start-daemons.sh).
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import smoke  # noqa: E402
from tests.harness import guest  # noqa: E402
from tests.harness.agent import wait_until  # noqa: E402
from tests.harness.testbed import TestBed  # noqa: E402

FLAVOR = {"vcpus": 1, "memory_mb": 256, "root_gb": 1}


# the keys its JSON always has (benchmarks/smoke.py checks them)
KEYS = ('rounds', 'guest_memory_mb', 'live_shared_total_s', 'live_shared_downtime_ms',
        'live_shared_tls_total_s', 'live_block_total_s', 'live_block_tls_total_s',
        'live_block_tls_overhead', 'cold_floor_synced_mb_s', 'cold_rounds_mb_s',
        'cold_floor_rounds_mb_s')


def settled_on(agent, u):
    rec = agent.find(u)
    return rec if rec and rec["task_state"] is None and rec["host"] == agent.host else None


NO_TLS = "[libvirt]\nlive_migration_with_native_tls = false\n"


def measure(shared, rounds, tls):
    bed = TestBed(shared_instances=shared).start()
    try:
        hosts = [bed.add_host(n, "" if tls else NO_TLS) for n in ("hA", "hB")]
        for h in hosts:
            h.start_agent(bed.image_port)
        bed.upload_test_guest("console=ttyS0 quiet tb.name=bench")
        src, dst = hosts
        u = src.agent.boot("bench", image=bed.images.images["disk"], flavor=dict(FLAVOR),
                           wait_console=False)
        src.agent.wait_console(u, lambda c: guest.last_tick(c) >= 2, "ticking")
        totals, downtimes = [], []
        for _ in range(rounds):
            t0 = time.monotonic()
            src.agent.api.live_migrate_instance(src.agent.host, u, dst.agent.host,
                                                block_migration=not shared)
            wait_until(lambda a=dst.agent: settled_on(a, u), 300, 0.02, "migration")
            totals.append(time.monotonic() - t0)
            info = dst.virsh("domjobinfo", "--completed", f"instance-{u}")
            downtimes.append(int(re.search(r"Total downtime:\s+(\d+)\s+ms", info).group(1)))
            src, dst = dst, src           # and back again
            time.sleep(1)
        return statistics.median(totals), statistics.median(downtimes)
    finally:
        bed.close()


def measure_cold(rounds):
    bed = TestBed().start()
    try:
        hosts = [bed.add_host(n) for n in ("hA", "hB")]
        for h in hosts:
            h.start_agent(bed.image_port)
        bed.upload_test_guest("console=ttyS0 quiet tb.name=bench")
        src, dst = (h.agent for h in hosts)
        u = src.boot("cold", image=bed.images.images["disk"], flavor=dict(FLAVOR))
        src.api.stop_instance(src.host, u)
        src.wait_state(u, {"stopped"})
        hosts[0].run_in_mounts("qemu-io", "-f", "qcow2", "-c", "write -P 0x5a 512M 256M",
                               os.path.join(src.instances_path, u, "disk"))
        rates, floors, synced = [], [], []
        copy = os.path.join(bed.dir, "floor-copy")

        def cp(path, sync=False):
            """Seconds to copy path (and fsync the copy if sync)."""
            os.sync()
            t0 = time.monotonic()
            subprocess.run(["cp", "--sparse=always", path, copy], check=True)
            if sync:
                fd = os.open(copy, os.O_RDONLY)
                os.fsync(fd)
                os.close(fd)
            seconds = time.monotonic() - t0
            os.unlink(copy)
            return seconds

        for _ in range(rounds):
            cp(os.path.join(src.instances_path, u, "disk"))      # warm-up
            os.sync()
            src.api.migrate_instance(src.host, u, dst.host)
            wait_until(lambda a=dst: (r := settled_on(a, u)) and r["vm_state"] == "resized",
                       300, 0.05, "cold migration")
            events = src.api.list_instance_actions(src.host, u)[-1]["events"]
            details = next((e["details"] for e in events if e["event"] == "disks_sent"), None)
            if details is None:
                raise SystemExit(f"no disks_sent event: {events}")
            seconds = float(re.search(r"in ([\d.]+) s", details).group(1))
            aside = os.path.join(src.instances_path, u + "_resize", "disk")
            size = os.path.getsize(aside)
            rates.append(size / seconds / 1e6)
            cp(aside)                                             # warm-up
            floors.append(size / cp(aside) / 1e6)
            cp(aside)
            synced.append(size / cp(aside, sync=True) / 1e6)
            dst.api.confirm_resize(dst.host, u)
            wait_until(lambda a=dst: (r := settled_on(a, u)) and r["vm_state"] == "stopped",
                       120, 0.05, "confirm")
            src, dst = dst, src
        return {"cold_transfer_mb_s": round(statistics.median(rates), 1),
                "cold_floor_mb_s": round(statistics.median(floors), 1),
                "cold_ratio_to_floor": round(statistics.median(rates)
                                             / statistics.median(floors), 2),
                "cold_floor_synced_mb_s": round(statistics.median(synced), 1),
                "cold_rounds_mb_s": [round(x) for x in rates],
                "cold_floor_rounds_mb_s": [round(x) for x in floors]}
    finally:
        bed.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--cold-only", action="store_true", help="only the cold transfer keys")
    args = smoke.arguments(ap, rounds=1)
    if args.cold_only:
        print(json.dumps({"rounds": args.rounds, **measure_cold(args.rounds)}, indent=2))
        return
    live = {}
    for kind, shared in (("shared", True), ("block", False)):
        for tls in (False, True):
            total, down = measure(shared, args.rounds, tls)
            name = f"live_{kind}{'_tls' if tls else ''}"
            live.update({f"{name}_total_s": round(total, 3), f"{name}_downtime_ms": down})
    live["live_block_tls_overhead"] = round(live["live_block_tls_total_s"]
                                            / live["live_block_total_s"], 2)
    print(json.dumps({
        "rounds": args.rounds, "guest_memory_mb": FLAVOR["memory_mb"], **live,
        **measure_cold(args.rounds)}, indent=2))

if __name__ == "__main__":
    main()
