"""oslo.messaging plumbing shared by the server and the client: transport,
targets, notifier, and the request context that travels with each message."""
import importlib

import oslo_messaging as messaging
import oslo_messaging.opts  # noqa: F401
from oslo_config import cfg

TOPIC = "compute"
BINARY = "compute-agent"     # the service row's binary
ALLOWED_EXMODS = ["compute.core.exception"]


# Option lists oslo.messaging reads from the ConfigOpts it is given but
# registers only on the global cfg.CONF (the list its own ConfFixture uses).
_GLOBAL_ONLY_OPTS = [
    ("oslo_messaging.rpc.client", "_client_opts", None),
    ("oslo_messaging.rpc.dispatcher", "_dispatcher_opts", None),
    ("oslo_messaging._metrics.client", "oslo_messaging_metrics", "oslo_messaging_metrics"),
    ("oslo_messaging._tracing.client", "oslo_messaging_tracing", "oslo_messaging_tracing"),
]


# Defaults this agent sets for oslo.messaging's options.  kombu retries a
# lost connection after 1, 3, 5, ... s up to rabbit_interval_max (30 s by
# default): after an outage of a minute the agent came back up to 30 s after
# the broker.  Every 2 s at most, it declares its queues again within about
# 2 s of the broker's return (a client's message sent before that is
# returned to it and sent again: compute.rpc.client).
#
# executor_thread_pool_size: the RPC server's threads, made as calls come
# and kept for the process's life.  Its handlers answer queries and hand
# every operation to the manager's own pools (max_concurrent_builds,
# max_concurrent_operations), so each returns within milliseconds; the
# calls that wait (a peer's migration steps, a console URL) come a few at
# a time.  16 leaves room for queries beside them; oslo.messaging's 64 is
# sized for green threads (seen: 92 threads after a burst of bad calls).
DEFAULTS = {"oslo_messaging_rabbit": {"rabbit_interval_max": 2},
            None: {"executor_thread_pool_size": 16}}   # None: [DEFAULT]


def list_opts():
    """oslo.messaging's options with this agent's DEFAULTS, for the sample
    config file (registered options keep the library's own objects: the
    driver registers them again and an unequal copy would clash)."""
    listed = messaging.opts.list_opts()         # copies: the library's stay as they are
    for group, opts in listed:
        cfg.set_defaults(opts, **DEFAULTS.get(group, {}))
    return listed


def register_opts(conf):
    """Register oslo.messaging's options (transport_url, [oslo_messaging_*])
    on conf, which need not be the global cfg.CONF (tests use their own)."""
    for group, opts in messaging.opts.list_opts():
        conf.register_opts(opts, group=group)
    for group, defaults in DEFAULTS.items():
        for name, value in defaults.items():
            conf.set_default(name, value, group=group)
    for module, attr, group in _GLOBAL_ONLY_OPTS:
        try:
            opts = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError):
            continue  # another oslo.messaging version: nothing to register
        conf.register_opts(opts, group=group)


def get_transport(conf):
    return messaging.get_rpc_transport(conf, allowed_remote_exmods=ALLOWED_EXMODS)


def get_notifier(conf, host):
    transport = messaging.get_notification_transport(conf)
    if not conf.oslo_messaging_notifications.driver:
        conf.set_default("driver", ["messagingv2"], group="oslo_messaging_notifications")
    return messaging.Notifier(transport, publisher_id=f"compute.{host}", topics=["notifications"])


class Context(dict):
    """What the caller sends along: a request id for tracing actions."""


class ContextSerializer(messaging.NoOpSerializer):
    def serialize_context(self, ctxt):
        return dict(ctxt or {})

    def deserialize_context(self, ctxt):
        return Context(ctxt or {})
