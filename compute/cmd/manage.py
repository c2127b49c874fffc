"""compute-agent-manage: one-off administration of the shared database.

    compute-agent-manage [--config-file F] db sync
    compute-agent-manage [--config-file F] db version
    compute-agent-manage [--config-file F] db create-host-role HOST

`db sync` migrates the schema once, as the role that owns the tables,
before agents with `[database] auto_migrate = false` start: fifty agents
do not race to migrate.  `db create-host-role` (PostgreSQL) makes or
updates the login role a host's agent connects as, with its password
read from $COMPUTE_DB_PASSWORD (never the command line): that role may
read every row and, through the schema's row-level security, write only
its own host's rows.
"""
import argparse
import os
import re
import sys

from compute.conf import CONF
from compute.db.api import HEAD_REVISION, Database

DEFAULT_CONFIG = "/etc/compute-agent/compute-agent.conf"
# what a host name may be (the agent's [DEFAULT] host), as a role name
HOST_ROLE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
HOST_TABLES = ("instances", "instance_faults", "instance_actions", "instance_action_events",
               "services", "compute_nodes", "cached_images", "security_groups",
               "floating_ips", "migrations")


class ManageError(Exception):
    pass


def host_role_statements(host):
    """The SQL that makes (or refreshes) host's role; the password is a
    bound parameter of the first statement's caller."""
    if not HOST_ROLE.match(host):
        raise ManageError(f"host {host!r} is not a host name this tool makes a role for "
                          f"(letters, digits, '.', '_', '-'; at most 63)")
    role = '"' + host + '"'
    tables = ", ".join(HOST_TABLES)
    return [f"GRANT SELECT, INSERT, UPDATE, DELETE ON {tables} TO {role}",
            f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}",
            f"GRANT SELECT ON alembic_version TO {role}"]


def create_host_role(db, host, password):
    from sqlalchemy import text
    if db.engine.dialect.name != "postgresql":
        raise ManageError("host roles are for PostgreSQL (row-level security); this "
                          f"database is {db.engine.dialect.name}")
    if db.revision() != HEAD_REVISION:
        raise ManageError("run `compute-agent-manage db sync` first")
    grants = host_role_statements(host)
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
    args = p.parse_args(argv)
    files = args.config_file or ([DEFAULT_CONFIG] if os.path.exists(DEFAULT_CONFIG) else [])
    CONF([], project="compute-agent", default_config_files=files)
    db = Database.from_conf(CONF)
    try:
        if args.command == "sync":
            before = db.revision()
            db.sync()
            print(f"schema at {HEAD_REVISION} (was {before or 'empty'})")
        elif args.command == "version":
            print(db.revision() or "empty")
        else:
            password = os.environ.get("COMPUTE_DB_PASSWORD")
            if not password:
                raise ManageError("set COMPUTE_DB_PASSWORD to the host role's password")
            print(f"role {args.host} {create_host_role(db, args.host, password)}")
    except ManageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except Exception as e:
        print(f"error: {type(e).__name__}: {str(e).splitlines()[0]}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
