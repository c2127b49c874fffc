"""benchmarks/service.py --smoke: it restarts RabbitMQ's application, so it
runs alone, after the other jobs (tools/e2e_lanes.py)."""
from benchmarks import smoke


def test_service_benchmark_smoke():
    smoke.check("service")
