"""The metrics: counted operations and RPC handling, the families read at
scrape time, the broker-reconnect count, and the HTTP endpoint."""
import logging
import socket
import urllib.request

from prometheus_client import generate_latest

from compute.agent import metrics
from compute.core.operation import Operations

STATE = {"instances": {"active": 2, "error": 1},
         "capacity": {"vcpus": 16, "memory_mb": 8192, "disk_gb": 100},
         "claimed": {"vcpus": 3, "memory_mb": 384, "disk_gb": 3},
         "image_cache": {"size_bytes": 4096, "bases": 1, "hits": 5, "misses": 2}}


def scrape(m):
    return generate_latest(m.registry).decode()


def test_operations_are_counted_with_failures_and_latency():
    m = metrics.Metrics()
    m.operation("create", 0.2, failed=False)
    m.operation("create", 1.5, failed=True)
    text = scrape(m)
    assert 'compute_agent_operations_total{action="create"} 2.0' in text
    assert 'compute_agent_operation_failures_total{action="create"} 1.0' in text
    assert 'compute_agent_operation_seconds_count{action="create"} 2.0' in text
    assert 'compute_agent_operation_seconds_bucket{action="create",le="0.25"} 1.0' in text


class FakeDb:
    def __init__(self):
        self.n = 0

    def action_start(self, *a):
        self.n += 1
        return self.n

    event_start = action_start

    def event_finish(self, *a):
        pass

    def action_finish(self, *a):
        pass

    def fault_create(self, *a):
        pass


def test_operations_run_reports_each_outcome():
    m = metrics.Metrics()
    ops = Operations(FakeDb(), None, "h", m)
    with ops.run({}, "u", "reboot"):
        pass
    try:
        with ops.run({}, "u", "reboot"):
            raise RuntimeError("no")
    except RuntimeError:
        pass
    text = scrape(m)
    assert 'compute_agent_operations_total{action="reboot"} 2.0' in text
    assert 'compute_agent_operation_failures_total{action="reboot"} 1.0' in text


def test_the_state_read_at_scrape_time_becomes_gauges_and_counters():
    m = metrics.Metrics()
    m.watch_state(lambda: STATE)
    text = scrape(m)
    assert 'compute_agent_instances{vm_state="active"} 2.0' in text
    assert 'compute_agent_capacity{resource="memory_mb"} 8192.0' in text
    assert 'compute_agent_claimed{resource="vcpus"} 3.0' in text
    assert "compute_agent_image_cache_bytes 4096.0" in text
    assert 'compute_agent_image_cache_lookups_total{result="miss"} 2.0' in text


def test_a_state_that_cannot_be_read_leaves_the_rest_of_the_scrape():
    m = metrics.Metrics()
    m.operation("stop", 0.1, failed=False)

    def broken():
        raise OSError("database gone")
    m.watch_state(broken)
    text = scrape(m)
    assert 'compute_agent_operations_total{action="stop"} 1.0' in text
    assert "compute_agent_instances" not in text


def test_rpc_handling_is_timed_per_method_and_private_names_pass_through():
    class Endpoint:
        target = "the target"

        def ping(self, ctxt, **kw):
            return {"pong": kw}

        def _private(self):
            return 1

    m = metrics.Metrics()
    timed = metrics.TimedEndpoint(Endpoint(), m)
    assert timed.target == "the target"
    assert timed.ping({}, x=1) == {"pong": {"x": 1}}
    assert timed._private() == 1
    assert 'compute_agent_rpc_seconds_count{method="ping"} 1.0' in scrape(m)


def test_broker_reconnects_are_counted_from_oslo_messagings_log():
    m = metrics.Metrics()
    m.count_reconnects()
    log = logging.getLogger("oslo.messaging._drivers.impl_rabbit")
    log.setLevel(logging.INFO)          # oslo.log's default for oslo.messaging
    log.info("[%s] Reconnected to AMQP server on %s:%s via [%s] client with port %s.",
             "id", "127.0.0.1", 5672, "amqp", 1234)
    log.info("something else")
    assert "compute_agent_broker_reconnects_total 1.0" in scrape(m)


def test_the_endpoint_serves_the_metrics_over_http():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    m = metrics.Metrics()
    m.watch_state(lambda: STATE)
    m.serve("127.0.0.1", port)
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
    assert b'compute_agent_instances{vm_state="error"} 1.0' in body


def test_unknown_guests_are_a_gauge_of_their_own():
    from compute.agent.metrics import state_families
    state = {"instances": {}, "unknown_guests": 2, "capacity": {}, "claimed": {},
             "image_cache": {"size_bytes": 0, "bases": 0, "hits": 0, "misses": 0}}
    family = next(f for f in state_families(state) if f.name == "compute_agent_unknown_guests")
    assert [s.value for s in family.samples] == [2]
