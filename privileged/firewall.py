"""Privileged entry point for the guests' firewall (privileged.net_admin).

apply_firewall() takes the host's guest-network state as plain data
(network.hoststate), never a ruleset: it decodes it strictly against what
this host holds and is configured with (network.hoststate.from_wire),
renders the rules itself with the agent's own pure functions
(network.firewall for iptables and ip6tables, network.l2filter for the
nftables bridge table), reads what of the agent's is installed, and
applies the difference: one `iptables-restore --noflush` per IP version
and one `nft -f` for the bridge table, each atomic.  So no caller can
name a chain, table, hook, policy or target the agent's code does not
write; chains it does not own are never named.

The three commits run at once, on threads, since each reads and writes
only its own tables; the call returns when all three are done."""
import threading
from concurrent.futures import ThreadPoolExecutor, wait

from network import firewall, hostres, hoststate, l2filter
from privileged import ROOTS, Refused, net_admin
from privileged.process import execute

SAVE = {4: "iptables-save", 6: "ip6tables-save"}
RESTORE = {4: "iptables-restore", 6: "ip6tables-restore"}
_lock = threading.Lock()
_pool = ThreadPoolExecutor(3, thread_name_prefix="firewall")
_l2_applied = {"text": None}       # the nft text last applied here (None: unknown)


def _foreign_subnets():
    """The subnet of every address the host holds on a device that is not
    one of the agent's bridges (network.hostres.foreign_subnets)."""
    found = []
    for line in execute("ip", "-o", "addr", "show").splitlines():
        words = line.split()
        if len(words) >= 4 and words[2] in ("inet", "inet6"):
            found.append((words[1].split("@")[0], words[3]))
    devices = {dev: _alias(dev) for dev, _ in found}
    return hostres.foreign_subnets(found, devices)


def _alias(dev):
    try:
        with open(f"/sys/class/net/{dev}/ifalias") as f:
            return f.read().strip()
    except OSError:
        return ""


def limits():
    return hoststate.Limits(ROOTS["floating_ranges"], _foreign_subnets())


def _apply_l3(version, tables):
    current = firewall.parse_save(execute(SAVE[version]))
    text = firewall.render(tables, {t: current[t] for t in current if t in tables})
    if text:
        execute(RESTORE[version], "--noflush", process_input=text)


def _apply_l2(text):
    if text != _l2_applied["text"]:
        _l2_applied["text"] = None        # unknown until nft has succeeded
        execute("nft", "-f", "-", process_input=text)
        _l2_applied["text"] = text


@net_admin.entrypoint
def apply_firewall(state):
    """Make the host's guest rules those of state (network.hoststate's
    wire form); Refused, with nothing changed, when it does not decode."""
    with _lock:
        try:
            decoded = hoststate.from_wire(state, limits())
        except ValueError as e:
            raise Refused(f"firewall state refused: {e}") from None
        public, md_port = ROOTS["public_interface"], ROOTS["metadata_port"]
        jobs = [_pool.submit(_apply_l2, l2filter.ruleset([p for _, p in decoded.vifs]))]
        jobs += [_pool.submit(_apply_l3, v, firewall.tables(decoded, v, public, md_port))
                 for v in (4, 6)]
        wait(jobs)
        for job in jobs:
            job.result()              # the first failure, once all have ended
