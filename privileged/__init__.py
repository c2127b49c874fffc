"""The agent's privileged side: oslo.privsep contexts, one per capability
set, and how the agent starts them and then drops to its own user.

The agent starts as root (systemd, or a test bed), forks one privsep
daemon per context while it still may (oslo.privsep's fork method: no
sudo, no rootwrap, no helper command), and then becomes its unprivileged
user for good (privileged.identity).  Each daemon keeps only its listed
capabilities, and its capability bounding set is cut to the same list
before it drops them, so a tool it runs (ip, iptables, dnsmasq), which
regains the bounding set as root, gets no more than the daemon holds.

The daemons receive the roots their checks use (state_path,
instances_path, the configured uplinks) when they are forked, from the
agent's configuration: a caller cannot change them later.  Every entry
point (privileged.net, privileged.files) checks its own arguments
(privileged.checks), because its caller may be the compromised part."""
import ctypes

from oslo_privsep import capabilities as caps
from oslo_privsep import daemon, priv_context

net_admin = priv_context.PrivContext(
    "privileged", cfg_section="privsep_net_admin", pypath=__name__ + ".net_admin",
    # links, bridges, addresses, iptables/nftables, the ip_forward sysctl;
    # dnsmasq (which binds port 67, writes its pid file under state_path and
    # drops to nobody) and its signals
    capabilities=[caps.CAP_NET_ADMIN, caps.CAP_NET_RAW, caps.CAP_NET_BIND_SERVICE,
                  caps.CAP_SETUID, caps.CAP_SETGID, caps.CAP_KILL, caps.CAP_DAC_OVERRIDE])

read_logs = priv_context.PrivContext(
    "privileged", cfg_section="privsep_read_logs", pypath=__name__ + ".read_logs",
    # guests' console logs, which virtlogd writes as root, mode 0600
    capabilities=[caps.CAP_DAC_READ_SEARCH])

CONTEXTS = (net_admin, read_logs)

# what the checks allow; set by configure() before the daemons fork
ROOTS = {"state_path": None, "instances_path": None, "uplinks": frozenset()}

PR_CAPBSET_DROP = 24
_LAST_CAP = 40


class Refused(ValueError):
    """A privileged entry point refused its arguments; nothing changed."""


def configure(state_path, instances_path, uplinks=()):
    ROOTS.update(state_path=state_path, instances_path=instances_path,
                 uplinks=frozenset(u for u in uplinks if u))


class _BoundedDaemon(daemon.Daemon):
    """oslo.privsep's daemon, with its bounding set cut to its
    capabilities before it drops the others."""

    def _drop_privs(self):
        libc = ctypes.CDLL(None, use_errno=True)
        for cap in range(_LAST_CAP + 1):
            if cap not in self.caps and libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
                if ctypes.get_errno() != 22:          # EINVAL: the kernel has no such cap
                    raise OSError(ctypes.get_errno(), f"cannot drop capability {cap}")
        super()._drop_privs()


def start():
    """Fork the privsep daemons (the caller is root)."""
    daemon.Daemon = _BoundedDaemon        # what ForkingClientChannel runs in the child
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
