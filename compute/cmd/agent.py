"""compute-agent: the daemon.  compute-agent --config-file FILE"""
import os
import signal
import sys
import threading

from oslo_log import log as logging

from compute import identity
from compute.conf import CONF
from compute.service import ComputeService

LOG = logging.getLogger(__name__)


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
    identity.become(CONF.agent_user, CONF.state_path, CONF.instances_path,
                    uplinks=list(net.physical_interface_mappings.values()),
                    public_interface=net.public_interface,
                    floating_ranges=net.floating_ranges, tunnel_ip=net.tunnel_local_ip,
                    metadata_port=CONF.metadata_port)
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
