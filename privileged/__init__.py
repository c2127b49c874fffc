"""The agent's privileged side: oslo.privsep contexts, one per capability
set, which the agent forks at start.

The agent never needs root.  systemd starts it as its own user with a few
ambient capabilities (etc/systemd/compute-agent.service:
User=compute-agent, AmbientCapabilities= and CapabilityBoundingSet= the
union of the contexts' lists below); it forks one privsep daemon per
context (oslo.privsep's fork method: no sudo, no rootwrap, no helper
command, no root), and then drops every capability of its own for good
(compute.agent.identity).  Each daemon keeps only its own list, as effective,
permitted and ambient capabilities: ambient so that a tool it runs (ip,
iptables, nft, dnsmasq), which as a non-root process gets nothing else
across exec, holds exactly that list too.

The daemons receive the roots their checks use (state_path,
instances_path, the configured uplinks, public interface, floating ranges,
tunnel address and metadata port) when they are forked, from the agent's
configuration, and open the root directories then: a caller cannot change
them later, nor move a root under them.  Every entry point
(privileged.network, privileged.firewall, privileged.logs) takes typed
arguments and checks them itself (privileged.checks, network.hoststate),
because its caller may be the compromised part; none takes text to pass on
to a command."""
import ctypes
import os

from oslo_privsep import capabilities as caps
from oslo_privsep import daemon, priv_context

# links, bridges, addresses, iptables/nftables, the ip_forward sysctl;
# dnsmasq, which binds the DHCP port
NET_ADMIN_CAPS = [caps.CAP_NET_ADMIN, caps.CAP_NET_RAW, caps.CAP_NET_BIND_SERVICE]
# guests' console logs, which virtlogd writes as root, mode 0600
READ_LOGS_CAPS = [caps.CAP_DAC_READ_SEARCH]
CAPABILITIES = sorted(set(NET_ADMIN_CAPS + READ_LOGS_CAPS))

net_admin = priv_context.PrivContext(
    "privileged", cfg_section="privsep_net_admin", pypath=__name__ + ".net_admin",
    capabilities=NET_ADMIN_CAPS)
read_logs = priv_context.PrivContext(
    "privileged", cfg_section="privsep_read_logs", pypath=__name__ + ".read_logs",
    capabilities=READ_LOGS_CAPS)
CONTEXTS = (net_admin, read_logs)

# what the checks allow; set by configure() before the daemons fork
ROOTS = {"state_path": None, "instances_path": None, "uplinks": frozenset(),
         "public_interface": None, "floating_ranges": (), "tunnel_ip": None,
         "metadata_port": None, "consoles": (), "console_proxies": ()}
# directory fds of the roots, opened once in each daemon as it forks (or at
# first use in-process): an entry point never resolves a root's path again
ROOT_FDS = {}

PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE = 47, 2


class Refused(ValueError):
    """A privileged entry point refused its arguments; nothing changed."""


def configure(state_path, instances_path, uplinks=(), public_interface=None,
              floating_ranges=(), tunnel_ip=None, metadata_port=None, consoles=(),
              console_proxies=()):
    """The agent's configuration the daemons check against (trusted: it
    comes from the configuration file, before any request is served).
    consoles: (address, (low, high)) where guests' consoles listen;
    console_proxies: the only addresses that may reach them."""
    ROOTS.update(state_path=state_path, instances_path=instances_path,
                 uplinks=frozenset(u for u in (*uplinks, public_interface) if u),
                 public_interface=public_interface or None,
                 floating_ranges=tuple(str(r) for r in floating_ranges),
                 tunnel_ip=str(tunnel_ip) if tunnel_ip else None,
                 metadata_port=metadata_port,
                 consoles=tuple((str(a), tuple(r)) for a, r in consoles),
                 console_proxies=tuple(str(p) for p in console_proxies))
    for fd in ROOT_FDS.values():
        os.close(fd)
    ROOT_FDS.clear()


def root_fd(name):
    """The directory fd of ROOTS[name] (opened at the first use)."""
    if name not in ROOT_FDS:
        path = ROOTS[name]
        if not path:
            raise Refused(f"{name} is not configured")
        ROOT_FDS[name] = os.open(os.path.realpath(path), os.O_RDONLY | os.O_DIRECTORY
                                 | os.O_CLOEXEC)
    return ROOT_FDS[name]


def _open_roots():
    for name in ("state_path", "instances_path"):
        try:
            root_fd(name)
        except (OSError, Refused):
            pass            # made later by the agent: opened at first use


def raise_ambient(capabilities):
    """Make capabilities (held as permitted) effective, inheritable and
    ambient: what a non-root process passes to the programs it runs."""
    caps.drop_all_caps_except(capabilities, capabilities, capabilities)
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in capabilities:
        if libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), f"cannot raise ambient capability {cap}")


class _AmbientDaemon(daemon.Daemon):
    """oslo.privsep's daemon, which also passes its capabilities to the
    tools it runs (ambient)."""

    def _drop_privs(self):
        super()._drop_privs()
        raise_ambient(sorted(self.caps))
        _open_roots()


def start():
    """Fork the privsep daemons (the caller holds CAPABILITIES)."""
    daemon.Daemon = _AmbientDaemon        # what ForkingClientChannel runs in the child
    for ctx in CONTEXTS:
        ctx.set_client_mode(True)
        ctx.start(priv_context.Method.FORK)


def run_in_process():
    """No daemons: entry points run in this process (an agent left as
    root, a tool, a test), still with their checks.  The default until
    start()."""
    for ctx in CONTEXTS:
        ctx.set_client_mode(False)


run_in_process()
