"""compute-agent: the daemon.  compute-agent --config-file FILE"""
import os
import signal
import sys
import threading

from oslo_log import log as logging

from compute.agent import identity
from compute.agent.conf import CONF
from compute.agent.service import ComputeService
from compute.db.api import sqlite_files
from virt.libvirt import console_ports

LOG = logging.getLogger(__name__)


# what the host serves beside its consoles, which no console range may take
# once only the proxies reach those ranges: libvirtd (TCP, TLS), QEMU's
# incoming migrations
HOST_PORTS = ((16509, 16509), (16514, 16514), (49152, 49215))


def console_listeners(conf):
    """(address, (low, high)) of where guests' consoles listen: the serial
    range on serial_listen (when serial consoles are on) and the VNC range
    on vnc_listen.  SystemExit when, with proxy_addresses set, a range
    takes one of HOST_PORTS."""
    lv = conf.libvirt
    out = [(str(lv.vnc_listen), console_ports.port_range(lv.vnc_port_range))]
    if lv.serial_console:
        out.append((str(lv.serial_listen), console_ports.port_range(lv.serial_port_range)))
    for (low, high), option in zip((r for _, r in out), ("vnc_port_range",
                                                         "serial_port_range"),
                                   strict=False):
        taken = [f"{a}-{b}" for a, b in HOST_PORTS if a <= high and low <= b]
        if taken and conf.console.proxy_addresses:
            raise SystemExit(f"[libvirt] {option} {low}:{high} takes the host's own "
                             f"ports {', '.join(taken)}, which only the console proxies "
                             "would then reach: choose a range clear of them")
    return out


def main(argv=None):
    # what the agent writes is no one else's: others get nothing, its group
    # is the agent's own at rest, and libvirt-qemu's while libvirt hands a
    # disk to QEMU (dynamic ownership), when the agent, in that group, may
    # still write it (an offline merge into a disk that became a backing
    # file keeps QEMU's owner: libvirt gives back only the top image)
    os.umask(0o007)
    logging.register_options(CONF)
    CONF(sys.argv[1:] if argv is None else argv, project="compute-agent")
    logging.setup(CONF, "compute-agent")
    net = CONF.network
    listeners = console_listeners(CONF)
    if not CONF.console.proxy_addresses and any(
            not a.startswith("127.") and a != "::1" for a, _ in listeners):
        LOG.warning("consoles listen on %s and [console] proxy_addresses is empty: "
                    "anyone who reaches that address reaches the guests' console ports",
                    ", ".join(sorted({a for a, _ in listeners})))
    try:
        identity.become(CONF.agent_user, CONF.state_path, CONF.instances_path,
                        state_files=sqlite_files(CONF),
                        uplinks=list(net.physical_interface_mappings.values()),
                        public_interface=net.public_interface,
                        floating_ranges=net.floating_ranges, tunnel_ip=net.tunnel_local_ip,
                        metadata_port=CONF.metadata_port,
                        consoles=listeners,
                        console_proxies=CONF.console.proxy_addresses)
    except identity.IdentityError as e:
        LOG.error("cannot start: %s", e)
        raise SystemExit(f"compute-agent: {e}") from None
    service = ComputeService(CONF)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    signal.signal(signal.SIGINT, lambda *_: stopped.set())
    service.start()
    while not stopped.wait(3600):
        pass
    LOG.info("stopping; running guests are left alone")
    service.stop()


if __name__ == "__main__":
    main()
