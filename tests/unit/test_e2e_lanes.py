"""The e2e plan (tools/e2e_lanes.py): every e2e module is in the plan
once; the modules on the machine's own libvirtd run as one job; what
stops a shared daemon runs alone; the longest first."""
import importlib.util
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
spec = importlib.util.spec_from_file_location("e2e_lanes",
                                              os.path.join(ROOT, "tools", "e2e_lanes.py"))
lanes = importlib.util.module_from_spec(spec)
spec.loader.exec_module(lanes)
E2E = os.path.join(ROOT, "tests", "e2e")


def modules():
    return sorted(f for f in os.listdir(E2E) if f.startswith("test_") and f.endswith(".py"))


def text(name):
    with open(os.path.join(E2E, name)) as f:
        return f.read()


def test_every_module_is_planned_once_the_machines_together_the_stoppers_alone():
    jobs, alone = lanes.plan(modules())
    assert sorted(m for job in jobs + alone for m in job) == modules()
    assert [j for j in jobs if len(j) > 1] == [tuple(m for m in lanes.MACHINE
                                                     if m in modules())]
    assert alone == [("test_broker_outage_e2e.py",), ("test_benchmark_service_e2e.py",),
                     ("test_libvirtd_restart_e2e.py",), ("test_imagecache_e2e.py",)]
    assert set(lanes.WEIGHTS) <= set(modules()) | {"unit"}
    assert lanes.UNIT not in jobs


def test_with_unit_the_unit_and_functional_tests_are_one_more_parallel_job():
    jobs, alone = lanes.plan(modules(), with_unit=True)
    assert jobs.count(lanes.UNIT) == 1 and lanes.UNIT not in alone
    assert all(os.path.isdir(os.path.join(ROOT, d)) for d in lanes.UNIT)


def test_a_module_on_the_machine_or_stopping_a_shared_daemon_is_listed_so():
    """A module whose agents run in the machine's namespace (the `agent`
    fixture, an Agent of its own, a PostgreSQL server on the machine) is
    in MACHINE; one that stops RabbitMQ or restarts the system libvirtd
    is in ALONE."""
    for name in modules():
        body = text(name)
        if "rabbitmqctl" in body or "def restart_libvirtd" in body:
            assert name in lanes.ALONE, name
        elif "Agent(" in body or "PostgresServer(" in body or re.search(
                r"def test\w*\(agent\b", body):
            assert name in lanes.MACHINE + lanes.ALONE, name
