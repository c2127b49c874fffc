"""compute-agent-manage: one-off administration of the shared database.

    compute-agent-manage [--config-file F] db sync
    compute-agent-manage [--config-file F] db version
    compute-agent-manage [--config-file F] db create-host-role HOST [--floating-range CIDR ...]
    compute-agent-manage [--config-file F] db create-operator-role NAME
    compute-agent-manage --config-file AGENT_CONF seal-key rotate

`db sync` migrates the schema once, as the role that owns the tables,
before agents with `[database] auto_migrate = false` start: fifty agents
do not race to migrate.  `db create-host-role` (PostgreSQL) makes or
updates the login role a host's agent connects as, with its password
read from $COMPUTE_DB_PASSWORD (never the command line): through the
schema's row-level security that role reads what its host serves and
writes only its own host's rows (compute/db/migrations/versions/0014 has
the rule per table).  `db create-operator-role` makes the role computectl
and the host pick read through: every row, no writes.  `seal-key rotate`,
run on a host as its agent's user with the agent's config, puts a new key
first in [DEFAULT] seal_key_file (the running agent reads the file again),
seals the host's records with it, and keeps the old key second, to open
only (compute.core.sealing).
"""
import argparse
import ipaddress
import os
import re
import sys

from compute.agent.conf import CONF
from compute.db.api import HEAD_REVISION, Database

DEFAULT_CONFIG = "/etc/compute-agent/compute-agent.conf"
# what a host name may be (the agent's [DEFAULT] host), as a role name
HOST_ROLE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
HOST_TABLES = ("instances", "instance_faults", "instance_actions", "instance_action_events",
               "services", "compute_nodes", "cached_images", "security_groups",
               "floating_ips", "migrations")
READ_ONLY = ("images_in_use", "host_floating_ranges", "alembic_version")
OPERATORS = "compute_operators"


class ManageError(Exception):
    pass


def host_role_statements(host):
    """The SQL that makes (or refreshes) host's role; the password is a
    bound parameter of the first statement's caller."""
    role = '"' + _role_name(host) + '"'
    tables = ", ".join(HOST_TABLES)
    return [f"GRANT SELECT, INSERT, UPDATE, DELETE ON {tables} TO {role}",
            f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}",
            f"GRANT SELECT ON {', '.join(READ_ONLY)} TO {role}"]


def operator_role_statements(name):
    """The SQL that makes name an operator: it reads every row (row-level
    security lets compute_operators' members), writes none."""
    role = '"' + _role_name(name) + '"'
    return [f"GRANT {OPERATORS} TO {role}",
            f"GRANT SELECT ON {', '.join(HOST_TABLES + READ_ONLY)} TO {role}"]


def _role_name(name):
    if not HOST_ROLE.match(name):
        raise ManageError(f"{name!r} is not a name this tool makes a role for "
                          f"(letters, digits, '.', '_', '-'; at most 63)")
    return name


def floating_ranges(values):
    """The networks --floating-range names (ManageError for one that is
    not a network)."""
    out = []
    for v in values or ():
        try:
            out.append(str(ipaddress.ip_network(v, strict=True)))
        except ValueError as e:
            raise ManageError(f"--floating-range {v!r}: {e}") from None
    return out


def set_floating_ranges(db, host, ranges):
    """The floating ranges host's role may write floating IP rows of (on
    PostgreSQL, row-level security reads them), replacing its old ones."""
    from sqlalchemy import delete

    from compute.db import models
    with db.session() as s:
        s.execute(delete(models.HostFloatingRange).where(models.HostFloatingRange.host == host))
        for cidr in ranges:
            s.add(models.HostFloatingRange(host=host, cidr=cidr))


def rotate_seal_key(conf):
    """A new sealing key for conf's host, its records sealed with it; how
    many records were sealed again."""
    from cryptography.fernet import Fernet

    from compute.core import sealing
    path = conf.seal_key_file
    try:
        keys = sealing.load_keys(path, create=False)
    except sealing.SealKeyError as e:
        raise ManageError(f"{e} (run this on the host, as its agent's user, with its "
                          "config)") from None
    new = Fernet.generate_key()
    sealing.write_keys(path, [new] + keys)          # the agent opens either meanwhile
    db = Database.from_conf(conf, owner=conf.host, sealer=sealing.Sealer([new] + keys))
    done = db.reseal_own(rekey=True)
    sealing.write_keys(path, [new, keys[0]])        # the old one opens a straggler
    return done


def create_host_role(db, host, password, grants=None):
    from sqlalchemy import text
    if db.engine.dialect.name != "postgresql":
        raise ManageError("host roles are for PostgreSQL (row-level security); this "
                          f"database is {db.engine.dialect.name}")
    if db.revision() != HEAD_REVISION:
        raise ManageError("run `compute-agent-manage db sync` first")
    grants = grants or host_role_statements(host)
    with db.engine.begin() as conn:
        exists = conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"),
                              {"r": host}).scalar()
        verb = "ALTER" if exists else "CREATE"
        # a role's password cannot be a bound parameter: quote it as a literal
        literal = conn.execute(text("SELECT quote_literal(:p)"), {"p": password}).scalar()
        conn.execute(text(f'{verb} ROLE "{host}" LOGIN PASSWORD {literal}'))
        for stmt in grants:
            conn.execute(text(stmt))
    return "updated" if exists else "created"


def main(argv=None):
    p = argparse.ArgumentParser(prog="compute-agent-manage",
                                description="administration of compute-agent's database")
    p.add_argument("--config-file", action="append", default=[],
                   help=f"agent-style config ([database] connection as the owning "
                        f"role); default {DEFAULT_CONFIG} if present")
    sub = p.add_subparsers(dest="area", required=True)
    db_p = sub.add_parser("db").add_subparsers(dest="command", required=True)
    db_p.add_parser("sync", help="migrate the schema to this release's revision")
    db_p.add_parser("version", help="print the schema's revision")
    role = db_p.add_parser("create-host-role",
                           help="the PostgreSQL role a host connects as "
                                "(password from $COMPUTE_DB_PASSWORD)")
    role.add_argument("host")
    role.add_argument("--floating-range", action="append", metavar="CIDR",
                      help="a floating range of this host's [network] floating_ranges "
                           "(repeatable; replaces the host's ranges; none: it may "
                           "associate no floating IP)")
    operator = db_p.add_parser("create-operator-role",
                               help="a PostgreSQL role that reads every row and writes none "
                                    "(computectl; password from $COMPUTE_DB_PASSWORD)")
    operator.add_argument("name")
    seal = sub.add_parser("seal-key").add_subparsers(dest="command", required=True)
    seal.add_parser("rotate", help="a new key for this host's sealed credentials, its "
                                   "records sealed again (with the agent's config)")
    args = p.parse_args(argv)
    files = args.config_file or ([DEFAULT_CONFIG] if os.path.exists(DEFAULT_CONFIG) else [])
    CONF([], project="compute-agent", default_config_files=files)
    try:
        if args.area == "seal-key":
            print(f"sealed {rotate_seal_key(CONF)} records with a new key; the old one "
                  f"now only opens")
            return 0
        db = Database.from_conf(CONF)
        if args.command == "sync":
            before = db.revision()
            db.sync()
            db.cloud_setting_put("service_down_time", CONF.service_down_time)
            print(f"schema at {HEAD_REVISION} (was {before or 'empty'})")
        elif args.command == "version":
            print(db.revision() or "empty")
        else:
            password = os.environ.get("COMPUTE_DB_PASSWORD")
            if not password:
                raise ManageError("set COMPUTE_DB_PASSWORD to the host role's password")
            if args.command == "create-host-role":
                ranges = floating_ranges(args.floating_range)
                print(f"role {args.host} {create_host_role(db, args.host, password)}")
                set_floating_ranges(db, args.host, ranges)
            else:
                done = create_host_role(db, args.name, password,
                                        operator_role_statements(args.name))
                print(f"operator role {args.name} {done}")
    except ManageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except Exception as e:
        print(f"error: {type(e).__name__}: {str(e).splitlines()[0]}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
