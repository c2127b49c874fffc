"""Options of the console proxy ([console_proxy]): where it listens, and
the hosts whose consoles it opens (a file naming each host's own token
key, console addresses and port ranges)."""
from oslo_config import cfg

proxy_group = cfg.OptGroup("console_proxy", title="The websocket console proxy")
proxy_opts = [
    cfg.HostAddressOpt("host", default="127.0.0.1",
                       help="Address the proxy listens on for browsers and computectl."),
    cfg.PortOpt("port", default=6083, help="Port the proxy listens on."),
    cfg.StrOpt("hosts_file", required=True,
               help="JSON file of the hosts whose consoles the proxy opens: "
                    '{"HOST": {"token_key": KEY, "addresses": [IP, ...], '
                    '"serial_ports": "LOW:HIGH", "vnc_ports": "LOW:HIGH"}}. Each '
                    "host's token_key is that agent's own [console] token_key; "
                    "addresses are its serial_listen and vnc_listen; the port "
                    "ranges its serial_port_range and qemu.conf's "
                    "remote_display_port_min:max (defaults 10000:10999 and "
                    "5900:6099). A token is refused unless its host is listed, its "
                    "key opens it and it names one of that host's console "
                    "addresses and ports. Re-read when it changes; keep it "
                    "readable by the proxy only (it holds the keys)."),
    cfg.StrOpt("serial_tls_cert_dir", default="",
               help="Directory with ca-cert.pem, client-cert.pem and client-key.pem: "
                    "the proxy opens guests' serial consoles over TLS with this "
                    "client certificate and checks the host's certificate against "
                    "the CA and the console address (for QEMU's chardev_tls = 1 with "
                    "chardev_tls_x509_verify = 1 in qemu.conf). Empty: plain TCP."),
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
