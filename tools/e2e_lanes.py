#!/usr/bin/env python3
"""Run the e2e modules side by side: `tools/e2e_lanes.py [--lanes N] [pytest args]`.

What may share the machine decides the plan:
- the modules whose agents run in the machine's own namespace, on the
  system libvirtd, run one after the other, as one job: a test there may
  count every guest its libvirtd has (the unknown-guest report), boot
  five guests at once, or run a fleet of agents and a broker cluster;
  beside one another they failed (an unknown guest counted twice, five
  boots past their timeout next to the fleet);
- every module on a test bed (its hosts in their own network and mount
  namespaces, with their own libvirtds, Ceph and iSCSI targets) is a job
  of its own;
- a module that stops what every job uses runs alone, after the others:
  one stops RabbitMQ (the broker outage), one restarts the system
  libvirtd; so does the image-cache module, whose five concurrent boots
  need the machine's 2 cores.  The chaos suite kills only its own bed's
  agents and restarts only its bed's libvirtd: it is a job like the others.

The benchmarks' --smoke runs are modules too: those on the machine's
libvirtd in its job, those on beds a job, the service benchmark (it
restarts the broker's application) alone.  --with-unit adds the unit and
functional tests as one more job (tox -e suite; not the default: under
two lanes of guests one functional crash-point test missed its 1 s peer
timeouts).

N lanes (default 2, or COMPUTE_AGENT_E2E_LANES) take the jobs longest
first from one queue, each job a pytest process with its own log; a
job's log is printed when it ends, whole when it failed.  The exit status
is pytest's worst.  Arguments naming files or node ids run just those,
in one pytest process, as before."""
import argparse
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
E2E = os.path.join(ROOT, "tests", "e2e")

# on the system libvirtd, in the machine's namespaces: one job, in order
MACHINE = ("test_spawn_e2e.py", "test_cli_e2e.py", "test_lifecycle_e2e.py",
           "test_snapshot_e2e.py", "test_image_service_e2e.py",
           "test_periodic_e2e.py", "test_privileges_e2e.py", "test_restart_e2e.py",
           "test_rescue_e2e.py", "test_console_e2e.py", "test_shared_db_e2e.py",
           "test_fleet_e2e.py", "test_benchmarks_e2e.py")
# alone, last: what stops what every job uses, and five boots at once on
# 2 cores (they timed out beside another job's load)
ALONE = ("test_broker_outage_e2e.py", "test_benchmark_service_e2e.py",
         "test_libvirtd_restart_e2e.py", "test_imagecache_e2e.py")
# --with-unit: the unit and functional tests (no guests) as one more job
UNIT = ("tests/unit", "tests/functional")
# seconds each took when run two at a time (the order of the queue; a
# module not listed counts 60 s)
WEIGHTS = {"test_chaos_e2e.py": 480, "test_volume_e2e.py": 410, "test_evacuate_e2e.py": 260,
           "test_cloud_image_e2e.py": 180, "test_isolation_e2e.py": 170,
           "test_network_e2e.py": 150, "test_migration_e2e.py": 140, "test_resize_e2e.py": 80,
           "test_guest_data_e2e.py": 55, "test_migration_tls_e2e.py": 55,
           "test_imagecache_e2e.py": 150, "test_fleet_e2e.py": 120, "test_snapshot_e2e.py": 115,
           "test_lifecycle_e2e.py": 110, "test_shared_db_e2e.py": 90, "test_restart_e2e.py": 60,
           "test_rescue_e2e.py": 30, "test_cli_e2e.py": 30, "test_console_e2e.py": 25,
           "test_image_service_e2e.py": 25, "test_periodic_e2e.py": 15,
           "test_privileges_e2e.py": 15, "test_spawn_e2e.py": 15,
           "test_benchmarks_e2e.py": 200, "test_benchmarks_beds_e2e.py": 280,
           "test_benchmark_service_e2e.py": 20, "unit": 260}


def plan(modules, with_unit=False):
    """(parallel jobs longest first, jobs run alone after): each job a
    tuple of module file names, or UNIT (pure)."""
    machine = tuple(m for m in MACHINE if m in modules)
    alone = [(m,) for m in ALONE if m in modules]
    beds = [(m,) for m in sorted(modules) if m not in MACHINE and m not in ALONE]
    weight = {machine: sum(WEIGHTS.get(m, 60) for m in machine), UNIT: WEIGHTS["unit"]}
    jobs = sorted(([machine] if machine else []) + beds + ([UNIT] if with_unit else []),
                  key=lambda j: -weight.get(j, WEIGHTS.get(j[0], 60)))
    return jobs, alone


def run_job(job, pytest_args, logdir, lane):
    name = ("the unit and functional tests" if job == UNIT else
            job[0] if len(job) == 1 else f"the machine's {len(job)} modules")
    log = os.path.join(logdir, f"{job[0].replace('/', '_')}.log")
    paths = [os.path.join(ROOT, m) if job == UNIT else os.path.join(E2E, m) for m in job]
    started = time.monotonic()
    with open(log, "w") as out:
        rc = subprocess.call([sys.executable, "-m", "pytest", *pytest_args, *paths],
                             stdout=out, stderr=subprocess.STDOUT)
    seconds = time.monotonic() - started
    with open(log, errors="replace") as f:
        text = f.read()
    lines = text.splitlines()
    shown = text if rc not in (0, 5) else "\n".join(lines[-(12 if len(job) > 1 else 8):])
    status = {0: "passed", 5: "no tests"}.get(rc, f"FAILED (exit {rc})")
    print(f"\n===== lane {lane}: {name}: {status} in {seconds:.0f} s =====\n{shown}",
          flush=True)
    return 0 if rc == 5 else rc, seconds


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lanes", type=int,
                   default=int(os.environ.get("COMPUTE_AGENT_E2E_LANES", "2")))
    p.add_argument("--with-unit", action="store_true",
                   help="the unit and functional tests as one more job, beside the others")
    args, pytest_args = p.parse_known_args(argv)
    chosen = [a for a in pytest_args if a.split("::")[0].endswith(".py")]
    if chosen:
        return subprocess.call([sys.executable, "-m", "pytest", *pytest_args])
    modules = sorted(f for f in os.listdir(E2E) if f.startswith("test_") and f.endswith(".py"))
    jobs, alone = plan(modules, args.with_unit)
    logdir = tempfile.mkdtemp(prefix="e2e-lanes-")
    todo, results, lock = queue.Queue(), {}, threading.Lock()
    for job in jobs:
        todo.put(job)
    started = time.monotonic()

    def lane(number):
        while True:
            try:
                job = todo.get_nowait()
            except queue.Empty:
                return
            outcome = run_job(job, pytest_args, logdir, number)
            with lock:
                results[job] = outcome

    threads = [threading.Thread(target=lane, args=(i + 1,)) for i in range(max(args.lanes, 1))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    parallel = time.monotonic() - started
    for job in alone:
        results[job] = run_job(job, pytest_args, logdir, "alone")
    total = time.monotonic() - started
    failed = [j[0] for j, (rc, _) in results.items() if rc]
    print(f"\ne2e: {len(results)} jobs on {args.lanes} lanes in {total:.0f} s "
          f"({parallel:.0f} s side by side; the jobs' own times add up to "
          f"{sum(s for _, s in results.values()):.0f} s); logs in {logdir}")
    if failed:
        print(f"e2e FAILED: {', '.join(failed)}")
        return max(rc for rc, _ in results.values())
    return 0


if __name__ == "__main__":
    sys.exit(main())
