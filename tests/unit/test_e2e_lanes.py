"""The e2e plan (tools/e2e_lanes.py): every e2e module is in the plan
once, what stops a shared daemon runs alone, the longest first."""
import importlib.util
import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
spec = importlib.util.spec_from_file_location("e2e_lanes",
                                              os.path.join(ROOT, "tools", "e2e_lanes.py"))
lanes = importlib.util.module_from_spec(spec)
spec.loader.exec_module(lanes)
E2E = os.path.join(ROOT, "tests", "e2e")


def test_every_module_is_planned_once_and_what_stops_a_daemon_runs_alone():
    modules = sorted(f for f in os.listdir(E2E) if f.startswith("test_") and f.endswith(".py"))
    jobs, alone = lanes.plan(modules)
    assert sorted(m for job in jobs + alone for m in job) == modules
    assert alone == [("test_chaos_e2e.py",), ("test_libvirtd_restart_e2e.py",)]
    weights = [lanes.WEIGHTS.get(j[0], 60) for j in jobs]
    assert weights == sorted(weights, reverse=True)
    assert set(lanes.WEIGHTS) <= set(modules)


def test_a_module_that_stops_a_shared_daemon_is_alone():
    """RabbitMQ and the system libvirtd serve every job: a module that
    stops or restarts one of them must be in ALONE (a bed's own libvirtd
    is its own)."""
    for name in os.listdir(E2E):
        if name.startswith("test_") and name.endswith(".py"):
            with open(os.path.join(E2E, name)) as f:
                text = f.read()
            stops = ("rabbitmqctl" in text or "stop_app" in text
                     or "def restart_libvirtd" in text)
            if stops:
                assert name in lanes.ALONE, name
