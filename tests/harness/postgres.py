"""A private PostgreSQL server for the tests: Debian's binaries, a cluster
in a temp dir run as the postgres user, on a free port of 127.0.0.1 with
password authentication over TCP.  The schema belongs to a non-superuser
role (compute_admin) that runs `compute-agent-manage db sync`; each host
gets its own login role from `compute-agent-manage db create-host-role`."""
import glob
import os
import shutil
import subprocess
import tempfile
import uuid

from tests.harness.agent import BIN, free_port

PG_BIN = sorted(glob.glob("/usr/lib/postgresql/*/bin"))[-1:] or [""]
PG_BIN = PG_BIN[0]
AS_POSTGRES = ["setpriv", "--reuid=postgres", "--regid=postgres", "--clear-groups"]
DB = "compute"
ADMIN = "compute_admin"


def available():
    return bool(PG_BIN) and os.path.exists(os.path.join(PG_BIN, "initdb"))


class PostgresServer:
    def __init__(self, max_connections=200, fsync=False):
        """fsync False (the tests: nothing to keep across a crash of this
        machine) or True (as an operator runs it: benchmarks/scale.py)."""
        self.dir = tempfile.mkdtemp(prefix="ca-pg-")
        os.chmod(self.dir, 0o755)
        shutil.chown(self.dir, "postgres", "postgres")
        self.data = os.path.join(self.dir, "data")
        self.port = free_port()
        self.max_connections = max_connections
        self.fsync = fsync
        self.passwords = {ADMIN: uuid.uuid4().hex}
        self.admin_conf = os.path.join(self.dir, "admin.conf")

    def _pg(self, tool, *args, check=True):
        return subprocess.run([*AS_POSTGRES, os.path.join(PG_BIN, tool), *args],
                              capture_output=True, text=True, check=check, cwd=self.dir)

    def start(self):
        if not os.path.exists(self.data):
            self._pg("initdb", "-D", self.data, "-U", "postgres", "--auth-local=trust",
                     "--auth-host=scram-sha-256", "-E", "UTF8")
        self._pg("pg_ctl", "-D", self.data, "-l", os.path.join(self.dir, "server.log"), "-w",
                 "-o", f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 "
                       f"-c max_connections={self.max_connections} "
                       f"-c fsync={'on' if self.fsync else 'off'} "
                       f"-c shared_buffers=32MB", "start")
        return self

    def stop(self):
        self._pg("pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop", check=False)

    def remove(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def sql(self, statement, db="postgres"):
        """Run statement as the superuser (over the socket); its rows as text."""
        return self._pg("psql", "-h", self.dir, "-p", str(self.port), "-U", "postgres",
                        "-d", db, "-v", "ON_ERROR_STOP=1", "-Atc", statement).stdout

    def url(self, role):
        return (f"postgresql+psycopg2://{role}:{self.passwords[role]}@127.0.0.1:"
                f"{self.port}/{DB}")

    def create_schema(self):
        """The database, owned by compute_admin, migrated by compute-agent-manage."""
        self.sql(f"CREATE ROLE {ADMIN} LOGIN CREATEROLE PASSWORD '{self.passwords[ADMIN]}'")
        self.sql(f"CREATE DATABASE {DB} OWNER {ADMIN}")
        with open(self.admin_conf, "w") as f:
            f.write(f"[database]\nconnection = {self.url(ADMIN)}\n")
        return self.manage("db", "sync")

    def manage(self, *args, env=None):
        run = subprocess.run([os.path.join(BIN, "compute-agent-manage"), "--config-file",
                              self.admin_conf, *args], capture_output=True, text=True,
                             env={**os.environ, **(env or {})})
        if run.returncode:
            raise AssertionError(f"compute-agent-manage {args}: {run.stderr}")
        return run.stdout

    def add_host(self, host, floating_ranges=()):
        """host's own role; the [database] section its agent uses."""
        self.passwords[host] = uuid.uuid4().hex
        ranges = [a for r in floating_ranges for a in ("--floating-range", r)]
        self.manage("db", "create-host-role", host, *ranges,
                    env={"COMPUTE_DB_PASSWORD": self.passwords[host]})
        return f"[database]\nconnection = {self.url(host)}\nauto_migrate = false\n"

    def add_operator(self, name="operator"):
        """An operator role (reads every row, writes none); the [database]
        section computectl uses with it."""
        self.passwords[name] = uuid.uuid4().hex
        self.manage("db", "create-operator-role", name,
                    env={"COMPUTE_DB_PASSWORD": self.passwords[name]})
        return f"[database]\nconnection = {self.url(name)}\n"

    def connections(self):
        return int(self.sql(f"SELECT count(*) FROM pg_stat_activity WHERE datname = '{DB}'"))
