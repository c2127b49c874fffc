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
_pool = ThreadPoolExecutor(5, thread_name_prefix="firewall")
_l2_applied = {"text": None}       # the nft text last applied here (None: unknown)


def host_addresses():
    """(device, "address/prefix") of every address the host holds."""
    found = []
    for line in execute("ip", "-o", "addr", "show").splitlines():
        words = line.split()
        if len(words) >= 4 and words[2] in ("inet", "inet6"):
            found.append((words[1].split("@")[0], words[3]))
    return found


def _alias(dev):
    try:
        with open(f"/sys/class/net/{dev}/ifalias") as f:
            return f.read().strip()
    except OSError:
        return ""


def limits(addresses=None):
    """What the decoding checks against: the configured floating ranges,
    and the subnets on devices that are not the agent's bridges
    (network.hostres.foreign_subnets) of addresses (host_addresses())."""
    addresses = host_addresses() if addresses is None else addresses
    devices = {dev: _alias(dev) for dev, _ in addresses}
    return hoststate.Limits(ROOTS["floating_ranges"],
                            hostres.foreign_subnets(addresses, devices))


def _save(version):
    return execute(SAVE[version])


def _apply_l3(version, saved, decoded):
    """Render one IP version's tables and apply what differs from `saved`
    (a future of iptables-save's output, started before the decoding)."""
    tables = firewall.tables(decoded, version, ROOTS["public_interface"],
                             ROOTS["metadata_port"], ROOTS["consoles"],
                             ROOTS["console_proxies"])
    current = firewall.parse_save(saved.result())
    text = firewall.render(tables, {t: current[t] for t in current if t in tables})
    if text:
        execute(RESTORE[version], "--noflush", process_input=text)


def _apply_l2(decoded):
    text = l2filter.ruleset([p for _, p in decoded.vifs])
    if text != _l2_applied["text"]:
        _l2_applied["text"] = None        # unknown until nft has succeeded
        execute("nft", "-f", "-", process_input=text)
        _l2_applied["text"] = text


@net_admin.entrypoint
def apply_firewall(state):
    """Make the host's guest rules those of state (network.hoststate's
    wire form); Refused, with nothing changed, when it does not decode."""
    with _lock:
        saved = {v: _pool.submit(_save, v) for v in (4, 6)}      # while we decode
        try:
            decoded = hoststate.from_wire(state, limits())
        except ValueError as e:
            wait(saved.values())
            raise Refused(f"firewall state refused: {e}") from None
        jobs = [_pool.submit(_apply_l2, decoded)]
        jobs += [_pool.submit(_apply_l3, v, saved[v], decoded) for v in (4, 6)]
        wait(jobs)
        for job in jobs:
            job.result()              # the first failure, once all have ended
