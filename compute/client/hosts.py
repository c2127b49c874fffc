"""Which host computectl talks to: a host named on the command line is
checked against its service record first (no record, or a service that is
down, is refused at once with that reason rather than after an RPC
timeout), and `boot` without --host picks hosts from the shared database.

computectl reads a database only as an operator's tool: a shared one
([database] connection) opened read-only (Database.reader: the database
refuses its writes); never the host's own SQLite file (no [database]
connection), which is its agent's alone: then the agent is asked over
RPC (its ping), and the host is the only one there is.

The pick is a convenience for callers without a scheduler, not one: hosts
whose service is up and enabled, most free memory first (their own
figures from the last resource report).  The host still decides with its
claim; a refused claim sends the caller to the next host."""
import os
import sys

from compute.client.cli import CLIError
from compute.db import models
from compute.db.api import Database, service_is_up, sqlite_files, unreachable
from compute.rpc.transport import BINARY

# a boot without --host tries at most this many hosts
MAX_TRIES = 3
# seconds a host without a service record has to answer a ping
PING_TIMEOUT = 5


def unreadable(conf):
    """Why computectl must not open the state database, or None: a SQLite
    file it would create (the agent has not made it yet: a file made by
    the operator, root, would stop the agent at its start), or one another
    user's agent has not opened (its WAL files would be made by us, and be
    ours)."""
    files = sqlite_files(conf)
    if not files:
        return None
    path, _, shm = files
    if not os.path.exists(path):
        return (f"there is no state database at {path} yet: the agent makes it at its first "
                "start (computectl never creates it)")
    if os.stat(path).st_uid != os.geteuid() and not os.path.exists(shm):
        return (f"the state database {path} is another user's and its agent has not opened "
                "it: reading it now would leave files of ours beside it")
    return None


def own_file(conf):
    """Whether the state database is the host's own SQLite file (no
    [database] connection): computectl never opens it."""
    return conf.database.connection is None


def readable(conf):
    """The shared database opened read-only (Database.reader: the database
    refuses every write of ours), or None: the host's own file, or one
    computectl cannot read without harm (unreadable says why)."""
    return None if own_file(conf) or unreadable(conf) else Database.reader(conf)


def local_services(host, answers):
    """service-list on a host with its own database: its agent, asked."""
    if not answers(host):
        raise CLIError(f"the agent of {host} does not answer: computectl never opens a "
                       "host's own state database (no [database] connection is set), so it "
                       "asks the agent, which is not running or not on this transport_url")
    return [{"host": host, "binary": BINARY, "status": "up", "updated_at": None}]


def check_asking(host, answers):
    """A host named to computectl with no database to read: its agent
    must answer (an unknown host costs seconds, not an RPC timeout)."""
    if not answers(host):
        raise CLIError(f"no agent answers for host {host!r} (is it running there, and under "
                       "that name?)")


def refusal(service, host, down_time, now=None):
    """Why host cannot be sent a request, or None (pure: the service row)."""
    if service is None:
        return (f"host {host!r} has no compute service record and no agent answers for "
                f"it (is the agent running there, and under that name? `computectl "
                f"service-list` shows the hosts)")
    if not service_is_up(service, down_time, now):
        last = service.updated_at or service.created_at
        age = int(((now or models.utcnow()) - last).total_seconds())
        return (f"the compute service on {host} is down: its last heartbeat was {age} s "
                f"ago (service_down_time is {down_time} s)")
    if service.disabled:
        return f"the compute service on {host} is disabled"
    return None


def check(db, host, down_time, answers):
    """Refuse host unless its service record is up.  A host with no record
    may keep its own database (a SQLite file each): it passes if its agent
    answers a short ping (answers(host)), so an unknown host costs seconds,
    not an RPC timeout."""
    service = db.service_get(host, BINARY)
    if service is None and answers(host):
        return
    reason = refusal(service, host, down_time)
    if reason:
        raise CLIError(reason)


def check_known(db, host, answers):
    """host has a service record (it may be down: an evacuation's source),
    or an agent that answers for it."""
    if db.service_get(host, BINARY) is None and not answers(host):
        raise CLIError(refusal(None, host, 0))


def candidates(services, nodes, flavor, down_time, now=None):
    """Hosts to try for flavor, best first (pure: rows of services and
    compute_nodes).  Hosts whose report shows too little free memory or
    disk for the flavor come after the others (their allocation ratios
    may still admit it: the claim decides)."""
    now = now or models.utcnow()
    by_host = {n.host: n for n in nodes}
    up = [s.host for s in services if s.binary == BINARY and not s.disabled
          and service_is_up(s, down_time, now)]

    def free(host):
        n = by_host.get(host)
        return (0, 0) if n is None else (n.memory_mb - n.memory_mb_used,
                                         n.local_gb - n.local_gb_used)

    disk = flavor.get("root_gb", 0) + flavor.get("ephemeral_gb", 0)
    ram = flavor.get("memory_mb", 0)
    room = {h: free(h) for h in up}
    return sorted(up, key=lambda h: (room[h][0] < ram or room[h][1] < disk, -room[h][0], h))


def pick(db, flavor, down_time):
    hosts = candidates(db.service_list(), db.compute_node_list(), flavor, down_time)
    if not hosts:
        raise CLIError("no compute host is up (`computectl service-list`)")
    return hosts[:MAX_TRIES]


def check_named(conf, args, api):
    """The state database (None if computectl cannot read it), after the
    hosts the command names were checked against their service records."""
    def answers(host):
        try:
            return bool(api.ping(host, timeout=PING_TIMEOUT))
        except Exception:
            return False
    args.answers = answers
    named = [h for h in (getattr(args, "host", None), getattr(args, "dest", None)) if h]
    db = readable(conf)
    if db is None and own_file(conf):
        for h in named or ([conf.host] if getattr(args, "host", "") is None else []):
            if not (args.command == "evacuate" and h == args.host):
                check_asking(h, answers)
        return None
    if db is None:
        if getattr(args, "host", "") is None:
            raise CLIError("boot without --host needs the state database ([database] "
                           "connection) to pick a host")
        return None
    try:
        for h in named:
            if args.command == "evacuate" and h == args.host:
                check_known(db, h, answers)   # its source is down, by definition
            else:
                check(db, h, conf.service_down_time, answers)
    except Exception as e:
        if not unreachable(e):
            raise
        if getattr(args, "host", "") is None:
            raise CLIError(f"cannot pick a host: the state database is unreachable: "
                           f"{str(e).splitlines()[0]}") from None
        print(f"warning: hosts not checked, the state database is unreachable: "
              f"{str(e).splitlines()[0]}", file=sys.stderr)
    return db
