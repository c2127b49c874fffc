"""oslo.messaging plumbing shared by the server and the client: transport,
targets, notifier, and the request context that travels with each message."""
import importlib

from oslo_service import backend as _service_backend

# oslo.messaging imports oslo.service, whose default backend is eventlet.
# This agent runs on native threads: select oslo.service's threading backend
# before oslo.messaging is imported (nothing here ever imports eventlet).
if _service_backend.get_backend_type() is None:
    _service_backend.init_backend(_service_backend.BackendType.THREADING)

import oslo_messaging as messaging  # noqa: E402
import oslo_messaging.opts  # noqa: E402,F401

TOPIC = "compute"
RPC_VERSION = "1.0"
ALLOWED_EXMODS = ["compute.exception"]


# Option lists oslo.messaging reads from the ConfigOpts it is given but
# registers only on the global cfg.CONF (the list its own ConfFixture uses).
_GLOBAL_ONLY_OPTS = [
    ("oslo_messaging.rpc.client", "_client_opts", None),
    ("oslo_messaging.rpc.dispatcher", "_dispatcher_opts", None),
    ("oslo_messaging._metrics.client", "oslo_messaging_metrics", "oslo_messaging_metrics"),
    ("oslo_messaging._tracing.client", "oslo_messaging_tracing", "oslo_messaging_tracing"),
]


def register_opts(conf):
    """Register oslo.messaging's options (transport_url, [oslo_messaging_*])
    on conf, which need not be the global cfg.CONF (tests use their own)."""
    for group, opts in messaging.opts.list_opts():
        conf.register_opts(opts, group=group)
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
