"""compute-console-proxy: the websocket console proxy for every host's
guests.  compute-console-proxy --config-file FILE"""
import signal
import sys
import threading

from oslo_config import cfg
from oslo_log import log as logging

from compute.agent import systemd
from console import conf as console_conf
from console import proxy, tokens

LOG = logging.getLogger(__name__)


def main(argv=None):
    conf = cfg.ConfigOpts()
    console_conf.register_opts(conf)
    logging.register_options(conf)
    conf(sys.argv[1:] if argv is None else argv, project="compute-console-proxy")
    logging.setup(conf, "compute-console-proxy")
    p = conf.console_proxy
    checker = tokens.TokenChecker(tokens.ConsoleHosts(p.hosts_file, LOG), p.token_ttl)
    console = proxy.ConsoleProxy(checker, p.novnc_dir, p.connect_timeout,
                                 proxy.serial_tls_context(p.serial_tls_cert_dir)
                                 if p.serial_tls_cert_dir else None)
    server = console.serve(p.host, p.port)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    LOG.info("console proxy listening on %s:%s", p.host, console.port)
    systemd.notify("READY=1", f"STATUS=listening on {p.host}:{console.port}")
    server.serve_forever()
    systemd.notify("STOPPING=1")


if __name__ == "__main__":
    main()
