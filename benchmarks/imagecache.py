"""Image cache: cold fetch throughput of a 1 GiB image through the agent
(download bounded and hashed, fsync, inspect, rename) against the same work
done by standard tools from the same image service in the same run: curl
writing the file (through tee) while `openssl dgst` computes the hash the
agent verifies (the image's os_hash_algo, sha512 from compute-images) on
the same stream, then an fsync of the file; and how many downloads 10
concurrent spawns of one uncached image cause.  Prints one JSON object.

    .venv/bin/python benchmarks/imagecache.py [--size-mb 1024]

Needs libvirtd and RabbitMQ (tools/start-daemons.sh); starts its own
compute-images and compute-agent and removes every guest it made.
"""
import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import smoke  # noqa: E402
from tests.harness.agent import FLAVOR, Agent, wait_until  # noqa: E402

MiB = 1024 * 1024


# the keys its JSON always has (benchmarks/smoke.py checks them)
KEYS = ('image_mb', 'fetch_s', 'floor_s', 'floor_runs_s', 'fetch_mb_s', 'floor_mb_s',
        'ratio_to_floor', 'concurrent_n', 'concurrent_all_active',
        'downloads_for_10_concurrent')


def make_image(path, size_mb):
    block = os.urandom(MiB)
    with open(path, "wb") as f:
        for i in range(size_mb):
            f.write(block[i % 7:] + block[:i % 7])     # every MiB distinct


def floor_s(url, path, algorithm="sha512"):
    """curl -s URL | tee PATH | openssl dgst -ALGO, then fsync(PATH)."""
    if os.path.exists(path):
        os.unlink(path)
    t0 = time.perf_counter()
    curl = subprocess.Popen(["curl", "-s", url], stdout=subprocess.PIPE)
    tee = subprocess.Popen(["tee", path], stdin=curl.stdout, stdout=subprocess.PIPE)
    curl.stdout.close()
    digest = subprocess.run(["openssl", "dgst", f"-{algorithm}"], stdin=tee.stdout,
                            capture_output=True, check=True)
    tee.stdout.close()
    curl.wait()
    tee.wait()
    fd = os.open(path, os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)
    elapsed = time.perf_counter() - t0
    assert len(digest.stdout.split()[-1]) == hashlib.new(algorithm).digest_size * 2
    os.unlink(path)
    return elapsed


def agent_fetch_s(agent, image_id):
    t0 = time.perf_counter()
    agent.api.cache_images(agent.host, [image_id])
    wait_until(lambda: any(i["image_id"] == image_id and i["present"] for i in
                           agent.api.get_image_cache_status(agent.host)["images"]),
               600, 0.02, "the image in the cache")
    return time.perf_counter() - t0


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size-mb", type=int, default=1024)
    p.add_argument("--concurrent", type=int, default=10)
    args = smoke.arguments(p, size_mb=16, concurrent=2)
    agent = Agent(extra_conf="[image]\ncache_free_space_reserve_mb = 0").start()
    try:
        agent.upload_test_guest()
        path = os.path.join(agent.workdir, "big.raw")
        make_image(path, args.size_mb)
        big = agent._upload(path, "raw")
        os.unlink(path)
        os.sync()           # the service's copy on disk now, not during a measurement
        url = f"{agent.image_url}/v2/images/{big}/file"
        scratch = os.path.join(agent.instances_path, "floor.raw")   # the cache's filesystem
        floor_s(url, scratch)                         # warm the server's page cache
        floors = [floor_s(url, scratch) for _ in range(2)]
        fetch = agent_fetch_s(agent, big)
        floors.append(floor_s(url, scratch))          # after, too: this VM drifts
        floor = min(floors)
        mb = args.size_mb * MiB / 1e6

        image = agent.upload_variant("console=ttyS0 quiet tb.name=bench")
        uuids = [str(uuid.uuid4()) for _ in range(args.concurrent)]
        for u in uuids:
            agent.api.build_and_run_instance(agent.host, u, "bench-ic", dict(FLAVOR), image)
        states = [agent.wait_state(u, {"active", "error"}, timeout=300)["vm_state"]
                  for u in uuids]
        downloads = agent.file_downloads(image)
        for u in uuids:
            agent.api.terminate_instance(agent.host, u)
        for u in uuids:
            agent.wait_state(u, {"deleted"}, timeout=300)
        print(json.dumps({
            "image_mb": round(mb, 1),
            "fetch_s": round(fetch, 3), "floor_s": round(floor, 3),
            "floor_runs_s": [round(f, 3) for f in floors],
            "fetch_mb_s": round(mb / fetch, 1), "floor_mb_s": round(mb / floor, 1),
            "ratio_to_floor": round(floor / fetch, 3),
            "concurrent_n": args.concurrent,
            "concurrent_all_active": all(s == "active" for s in states),
            "downloads_for_10_concurrent": downloads,
        }, indent=2))
    finally:
        agent.close()


if __name__ == "__main__":
    main()
