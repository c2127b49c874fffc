"""Options of the console proxy ([console_proxy]) and the ones agents
share with it ([console] token_key)."""
from oslo_config import cfg

proxy_group = cfg.OptGroup("console_proxy", title="The websocket console proxy")
proxy_opts = [
    cfg.HostAddressOpt("host", default="127.0.0.1",
                       help="Address the proxy listens on for browsers and computectl."),
    cfg.PortOpt("port", default=6083, help="Port the proxy listens on."),
    cfg.StrOpt("token_key", secret=True, required=True,
               help="Fernet key shared with every agent's [console] token_key "
                    "(urlsafe base64 of 32 bytes)."),
    cfg.IntOpt("token_ttl", default=600, min=1,
               help="Seconds after its issue a token is refused, whatever "
                    "expiry the agent gave it."),
    cfg.StrOpt("novnc_dir", default="/usr/share/novnc",
               help="Directory of the noVNC web client (Debian's novnc package), "
                    "served under /novnc/; empty: serve no files."),
    cfg.IntOpt("connect_timeout", default=5, min=1,
               help="Seconds to wait for a guest's console port to accept."),
]


def register_opts(conf):
    conf.register_group(proxy_group)
    conf.register_opts(proxy_opts, group=proxy_group)


def list_opts():
    return [(proxy_group, proxy_opts)]
