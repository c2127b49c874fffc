"""Volume attach and detach latency: an iSCSI volume (tgtd on this
machine, CHAP) attached to and detached from a running guest through the
agent (the RPC call until the record says attached and the disk is in the
live definition), beside the floor measured in the same run on the same
guest and LUN: the bare libvirt calls (secret defined, attachDeviceFlags;
detachDeviceFlags until the disk left the live definition).  Prints one
JSON object.

    .venv/bin/python benchmarks/volumes.py [--rounds 5]

Needs libvirtd, RabbitMQ (tools/start-daemons.sh) and tgt
(tools/install.sh); starts its own compute-images, compute-agent and
tgtd and removes what it made.  The RBD figures the issue asks for
(rbd_guest_mb_s, rbd_bench_mb_s) are null until that measurement exists.
"""
import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import uuid

import libvirt

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests.harness.agent import LIBVIRT_URI, Agent, wait_until  # noqa: E402
from tests.harness.iscsi import IscsiTarget  # noqa: E402
from virt.libvirt import builder  # noqa: E402
from virt.libvirt.volumes import SECRET_XML, USAGE, attached_serials  # noqa: E402
from volume import base  # noqa: E402


def med(samples):
    return round(statistics.median(samples), 4)


def attached(dom, volume_id):
    return volume_id in attached_serials(dom.XMLDesc(0))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()
    workdir = tempfile.mkdtemp(prefix="bench-volumes-")
    os.chmod(workdir, 0o755)
    target = IscsiTarget(None, "127.0.0.1", workdir)
    a = Agent()
    conn = libvirt.open(LIBVIRT_URI)
    try:
        a.start()
        a.upload_test_guest()
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
        print(json.dumps({
            "rounds": args.rounds, "volume": "iscsi, CHAP, tgtd on 127.0.0.1",
            "attach_s": med(attach_s), "attach_floor_s": med(attach_floor),
            "detach_s": med(detach_s), "detach_floor_s": med(detach_floor),
            "rbd_guest_mb_s": None, "rbd_bench_mb_s": None,
            "note": "RBD throughput (guest vs rbd bench) is not measured yet",
            "run_id": str(uuid.uuid4())[:8],
        }, indent=2))
    finally:
        conn.close()
        a.close()
        target.stop()


if __name__ == "__main__":
    main()
