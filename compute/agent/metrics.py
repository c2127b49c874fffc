"""The agent's Prometheus metrics (`[metrics] enabled`, off by default).

Counted as they happen: each operation run through Operations.run (its
action name, failures, latency), each RPC method handled (latency, by
method), and broker reconnects (oslo.messaging's own log line, the one
place the driver reports them).  Read at scrape time from what the agent
keeps anyway: instances by vm_state, claims against the host's limits,
and the image cache (its size, and the hits and misses it records).
prometheus_client serves them from a thread of its own on
`[metrics] listen_address`:`port`; nothing here blocks an operation.

Every metric is named `compute_agent_*`; the README lists them.
"""
import logging
import time

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from compute.rpc.endpoint_wrapper import EndpointWrapper

LOG = logging.getLogger(__name__)
# operations run from milliseconds (pause) to minutes (migrations)
OPERATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300,
                     600)
RPC_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
RECONNECT_TEXT = "Reconnected to AMQP server"


class Metrics:
    """The registry and the counters the agent's parts update."""

    def __init__(self):
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.operations = Counter("compute_agent_operations", "Operations run, by action.",
                                  ["action"], registry=r)
        self.failures = Counter("compute_agent_operation_failures",
                                "Operations that failed, by action.", ["action"], registry=r)
        self.operation_seconds = Histogram(
            "compute_agent_operation_seconds", "Time an operation took, by action.",
            ["action"], buckets=OPERATION_BUCKETS, registry=r)
        self.rpc_seconds = Histogram(
            "compute_agent_rpc_seconds", "Time the agent took to handle an RPC message, by "
            "method (for a cast: until it was accepted).", ["method"], buckets=RPC_BUCKETS,
            registry=r)
        self.reconnects = Counter("compute_agent_broker_reconnects",
                                  "Reconnections to the message broker.", registry=r)

    def operation(self, action, seconds, failed):
        self.operations.labels(action).inc()
        if failed:
            self.failures.labels(action).inc()
        self.operation_seconds.labels(action).observe(seconds)

    def watch_state(self, read):
        """read() -> the plain data of state_families, at each scrape."""
        self.registry.register(_StateCollector(read))

    def count_reconnects(self):
        """Count oslo.messaging's reconnect log lines (a filter: they are
        logged as before; counted while oslo.messaging logs at INFO, oslo.log's
        default)."""
        logging.getLogger("oslo.messaging._drivers.impl_rabbit").addFilter(
            _ReconnectCounter(self.reconnects))

    def serve(self, address, port):
        start_http_server(port, addr=address, registry=self.registry)
        LOG.info("metrics on http://%s:%d/metrics", address, port)


class _ReconnectCounter(logging.Filter):
    def __init__(self, counter):
        super().__init__()
        self.counter = counter

    def filter(self, record):
        if RECONNECT_TEXT in str(record.msg):
            self.counter.inc()
        return True


class _StateCollector:
    def __init__(self, read):
        self.read = read

    def describe(self):
        return []                       # read at scrape time only

    def collect(self):
        try:
            state = self.read()
        except Exception:               # noqa: BLE001 - a scrape never breaks the agent
            LOG.exception("metrics: the agent's state could not be read")
            return
        yield from state_families(state)


def state_families(state):
    """Metric families from plain data (pure): {"instances": {vm_state: n},
    "unknown_guests": n,
    "capacity": {resource: n}, "claimed": {resource: n}, "image_cache":
    {"size_bytes", "bases", "hits", "misses"}}."""
    instances = GaugeMetricFamily("compute_agent_instances",
                                  "Instances recorded on this host, by vm_state.",
                                  labels=["vm_state"])
    for vm_state, n in sorted(state["instances"].items()):
        instances.add_metric([vm_state], n)
    yield instances
    yield GaugeMetricFamily("compute_agent_unknown_guests",
                            "Guests of ours on this host's hypervisor that no record of this "
                            "host names (left alone), as the last power-state sync found.",
                            value=state.get("unknown_guests", 0))
    for name, text in (("capacity", "What the host may hand out (total x allocation ratio - "
                                    "reserved), by resource."),
                       ("claimed", "What the host's instances hold, by resource.")):
        family = GaugeMetricFamily(f"compute_agent_{name}", text, labels=["resource"])
        for resource, n in sorted(state[name].items()):
            family.add_metric([resource], n)
        yield family
    cache = state["image_cache"]
    yield GaugeMetricFamily("compute_agent_image_cache_bytes",
                            "Bytes of the image cache's bases.", value=cache["size_bytes"])
    yield GaugeMetricFamily("compute_agent_image_cache_bases", "Bases in the image cache.",
                            value=cache["bases"])
    lookups = CounterMetricFamily("compute_agent_image_cache_lookups",
                                  "Uses of the image cache: hit (cached) or miss "
                                  "(downloaded).", labels=["result"])
    lookups.add_metric(["hit"], cache["hits"])
    lookups.add_metric(["miss"], cache["misses"])
    yield lookups


class TimedEndpoint(EndpointWrapper):
    """The RPC endpoint, each public method's handling time observed."""

    def __init__(self, endpoint, metrics):
        super().__init__(endpoint)
        self._metrics = metrics

    def _around(self, name, method):
        histogram = self._metrics.rpc_seconds.labels(name)

        def timed(*args, **kwargs):
            started = time.monotonic()
            try:
                return method(*args, **kwargs)
            finally:
                histogram.observe(time.monotonic() - started)
        return timed
