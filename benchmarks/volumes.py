"""Volume attach and detach latency: an iSCSI volume (tgtd on this
machine, CHAP) attached to and detached from a running guest through the
agent (the RPC call until the record says attached and the disk is in the
live definition), beside the floor measured in the same run on the same
guest and LUN: the bare libvirt calls (secret defined, attachDeviceFlags;
detachDeviceFlags until the disk left the live definition).  Prints one
JSON object.

    .venv/bin/python benchmarks/volumes.py [--rounds 5]

Then sequential write throughput on an RBD volume: a single-node Ceph
cluster on this machine (one OSD on a sparse file), a volume attached to a
guest with a shell, `dd` of 64 MiB in 1 MiB blocks with an fsync at the
end, timed by the guest's own clock (rbd_guest_mb_s), beside `rbd bench`
writing the same pattern (1 MiB, one thread, sequential) to another image
of the same pool from the host (rbd_bench_mb_s, the floor).  The guest is
emulated (QEMU TCG): its figure is bounded by the emulation as much as
by librbd.

Needs libvirtd, RabbitMQ (tools/start-daemons.sh), tgt and Ceph
(tools/install.sh); starts its own compute-images, compute-agent,
console proxy, tgtd and Ceph daemons and removes what it made.
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

import libvirt

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import smoke  # noqa: E402
from tests.harness import serial  # noqa: E402
from tests.harness.agent import LIBVIRT_URI, Agent, wait_until  # noqa: E402
from tests.harness.ceph import POOL, CephCluster  # noqa: E402
from tests.harness.iscsi import IscsiTarget  # noqa: E402
from virt.libvirt import builder  # noqa: E402
from virt.libvirt.volumes import SECRET_XML, USAGE, attached_serials  # noqa: E402
from volume import base  # noqa: E402

# the keys its JSON always has (benchmarks/smoke.py checks them)
KEYS = ('rounds', 'volume', 'attach_s', 'attach_floor_s', 'detach_s', 'detach_floor_s',
        'rbd_guest_mb_s', 'rbd_bench_mb_s', 'rbd_write_mib', 'local_guest_mb_s')


def med(samples):
    return round(statistics.median(samples), 4)


def attached(dom, volume_id):
    return volume_id in attached_serials(dom.XMLDesc(0))


WRITE_MIB = 64


def rbd_guest_and_bench(a, workdir):
    """(guest MB/s, rbd bench MB/s, guest MB/s on its local disk) writing
    WRITE_MIB MiB sequentially."""
    cluster = CephCluster(None, "127.0.0.1", workdir)
    try:
        shell = a.upload_variant("console=ttyS0 quiet tb.name=bench tb.shell=1")
        u = a.boot("rbd", image=shell, flavor={"vcpus": 1, "memory_mb": 256, "root_gb": 1,
                                               "ephemeral_gb": 1}, wait_console=False)
        a.wait_console(u, lambda c: serial.SHELL_READY in c, "the shell")
        vol, info, _ = cluster.volume("bench-guest", size_mb=WRITE_MIB * 2)
        a.api.attach_volume(a.host, u, vol, info)
        wait_until(lambda: (r := a.find(u))["task_state"] is None and r["volumes"], 60, 0.05)
        find = (f"D=; for i in 1 2 3 4 5 6 7 8 9 10; do for d in /sys/block/vd*; do "
                f"[ \"$(cat $d/serial)\" = \"{vol[:20]}\" ] && D=/dev/${{d##*/}}; done; "
                "[ -n \"$D\" ] && break; sleep 1; done")
        guest = timed_dd(a, u, f"{find}; ")
        local = timed_dd(a, u, "D=/dev/vdb; ")         # the flavor's ephemeral disk
        cluster.volume("bench-host", size_mb=WRITE_MIB * 2)
        bench = subprocess.run(
            ["rbd", "-c", cluster.conf, "bench", "--io-type", "write", "--io-size", "1M",
             "--io-threads", "1", "--io-total", f"{WRITE_MIB}M", "--io-pattern", "seq",
             f"{POOL}/bench-host"], capture_output=True, text=True, check=True, timeout=600)
        rate = re.search(r"bytes/sec:\s*([\d.]+)\s*([KMG]?i?B?)", bench.stdout)
        a.api.terminate_instance(a.host, u)      # its volume's secret goes with it
        a.wait_state(u, {"deleted"})
        return (round(guest, 1), round(_bytes(rate.group(1), rate.group(2)) / 1e6, 1),
                round(local, 1))
    finally:
        a.cleanup_guests()
        cluster.stop()


def timed_dd(a, u, set_device):
    """MB/s of the guest writing WRITE_MIB MiB to $D (set by set_device),
    by its own clock."""
    out = serial.run(a, u, f"{set_device}s=$(cut -d' ' -f1 /proc/uptime); "
                           f"dd if=/dev/zero of=$D bs=1M count={WRITE_MIB} conv=fsync "
                           "2>/dev/null; e=$(cut -d' ' -f1 /proc/uptime); "
                           "echo TB-DD $s $e TB-$((40+2))-END", "TB-42-END", timeout=600)
    # the marker is computed in the guest: the typed line (a volume id may
    # hold "42") never matches it
    start, end = map(float, re.search(r"TB-DD ([\d.]+) ([\d.]+) TB-42-END", out).groups())
    return WRITE_MIB * 2 ** 20 / 1e6 / max(end - start, 0.01)


def _bytes(number, unit):
    """rbd bench's "bytes/sec: 12 MiB" (or a plain number) as bytes."""
    scale = {"": 1, "B": 1, "KiB": 2 ** 10, "MiB": 2 ** 20, "GiB": 2 ** 30}
    return float(number) * scale.get(unit, 1)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=5)
    args = smoke.arguments(p, rounds=1)
    workdir = tempfile.mkdtemp(prefix="bench-volumes-")
    os.chmod(workdir, 0o755)
    target = IscsiTarget(None, "127.0.0.1", workdir)
    a = Agent(extra_conf="[DEFAULT]\nvolume_allowed_networks = 127.0.0.0/8\n"
                         "[libvirt]\nserial_console = true\n"
                         "serial_port_range = 10900:10999\n")
    conn = libvirt.open(LIBVIRT_URI)
    try:
        a.start()
        a.upload_test_guest()
        a.start_console_proxy()
        u = a.boot("bench")
        dom = conn.lookupByUUIDString(u)
        vol, info, _ = target.volume("bench", user="benchuser", password="bench-secret")
        attach_s, detach_s, attach_floor, detach_floor = [], [], [], []
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            a.api.attach_volume(a.host, u, vol, info)
            wait_until(lambda: (r := a.find(u))["task_state"] is None and r["volumes"], 60, 0.005)
            attach_s.append(time.perf_counter() - t0)
            assert attached(dom, vol)
            t0 = time.perf_counter()
            a.api.detach_volume(a.host, u, vol)
            wait_until(lambda: (r := a.find(u))["task_state"] is None and not r["volumes"], 60,
                       0.005)
            detach_s.append(time.perf_counter() - t0)
            # the floor: the same disk and secret, straight through libvirt
            disk = base.volume_disk(u, {"volume_id": vol, "device": "vdd",
                                        "connection_info": info})
            xml = builder.build_volume_disk(disk).to_xml()
            flags = libvirt.VIR_DOMAIN_AFFECT_LIVE | libvirt.VIR_DOMAIN_AFFECT_CONFIG
            t0 = time.perf_counter()
            secret = conn.secretDefineXML(SECRET_XML.format(
                uuid=disk.secret_uuid, volume=vol, instance=u, type="iscsi",
                usage=USAGE["iscsi"].format(instance=u, volume=vol)))
            secret.setValue(b"bench-secret")
            dom.attachDeviceFlags(xml, flags)
            attach_floor.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            dom.detachDeviceFlags(xml, flags)
            while attached(dom, vol):
                time.sleep(0.005)
            secret.undefine()
            detach_floor.append(time.perf_counter() - t0)
        a.api.terminate_instance(a.host, u)
        a.wait_state(u, {"deleted"})
        rbd_guest, rbd_bench, local_guest = rbd_guest_and_bench(a, workdir)
        print(json.dumps({
            "rounds": args.rounds, "volume": "iscsi, CHAP, tgtd on 127.0.0.1",
            "attach_s": med(attach_s), "attach_floor_s": med(attach_floor),
            "detach_s": med(detach_s), "detach_floor_s": med(detach_floor),
            "rbd_guest_mb_s": rbd_guest, "rbd_bench_mb_s": rbd_bench,
            "rbd_write_mib": WRITE_MIB,
            # the same dd on the guest's local (qcow2) ephemeral disk: what
            # the emulated guest can write at all
            "local_guest_mb_s": local_guest,
            "note": "RBD: one OSD on a sparse file on this machine; the guest is QEMU TCG",
            "run_id": str(uuid.uuid4())[:8],
        }, indent=2))
    finally:
        conn.close()
        a.close()
        target.stop()


if __name__ == "__main__":
    main()
