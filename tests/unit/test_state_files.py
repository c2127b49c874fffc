"""The state database's files: computectl never makes one, and the agent
refuses to start on one that is not its own, saying what to run."""
import os
import types

from compute.agent.identity import state_files_refusal
from compute.client import hosts
from compute.db.api import sqlite_files


def conf(state_path, connection=None):
    return types.SimpleNamespace(state_path=str(state_path),
                                 database=types.SimpleNamespace(connection=connection))


def test_the_sqlite_files_are_found_from_the_config(tmp_path):
    default = str(tmp_path / "compute.sqlite")
    assert sqlite_files(conf(tmp_path)) == (default, default + "-wal", default + "-shm")
    assert sqlite_files(conf(tmp_path, "sqlite:////srv/db.sqlite"))[0] == "/srv/db.sqlite"
    assert sqlite_files(conf(tmp_path, "postgresql://u@db/compute")) == ()


def test_computectl_does_not_open_a_database_it_would_create(tmp_path):
    why = hosts.unreadable(conf(tmp_path))
    assert "no state database" in why and "never creates it" in why
    assert hosts.readable(conf(tmp_path)) is None
    assert not os.listdir(tmp_path)
    assert hosts.unreadable(conf(tmp_path, "postgresql://u@db/compute")) is None


def test_a_state_file_of_another_user_stops_the_agent_with_the_fix(tmp_path):
    path = tmp_path / "compute.sqlite"
    files = (str(path), str(path) + "-wal")
    assert state_files_refusal(files, os.getuid(), "me") is None        # none yet
    path.write_bytes(b"")
    assert state_files_refusal(files, os.getuid(), "me") is None        # its own
    why = state_files_refusal(files, os.getuid() + 4242, "compute-agent")
    assert f"{path} is owned by" in why and f"chown compute-agent: {path}" in why


def test_computectl_reads_the_database_and_the_database_refuses_its_writes(tmp_path):
    import pytest
    import sqlalchemy as sa
    from sqlalchemy.exc import OperationalError

    from compute.db.api import Database
    from compute.db.models import Base
    agent = Database(f"sqlite:///{tmp_path / 'compute.sqlite'}")     # as the agent makes it
    Base.metadata.create_all(agent.engine)
    agent.service_heartbeat("h1", "compute-agent", "compute")
    c = types.SimpleNamespace(state_path=str(tmp_path), database=types.SimpleNamespace(
        connection=f"sqlite:///{tmp_path / 'compute.sqlite'}", max_pool_size=1,
        max_overflow=0, pool_timeout=1, connection_recycle_time=1))        # a shared file
    reader = hosts.readable(c)
    assert [s.host for s in reader.service_list()] == ["h1"]
    with pytest.raises(OperationalError, match="readonly database"):
        reader.service_heartbeat("h2", "compute-agent", "compute")
    with reader.engine.connect() as conn, pytest.raises(OperationalError, match="readonly"):
        conn.execute(sa.text("DELETE FROM services"))
    assert [s.host for s in agent.service_list()] == ["h1"]
    # and a reader never makes the file it names
    missing = Database.reader(types.SimpleNamespace(
        state_path=str(tmp_path), database=types.SimpleNamespace(
            connection=f"sqlite:///{tmp_path / 'none' / 'x.sqlite'}")))
    with pytest.raises(OperationalError):
        missing.service_list()
    assert not os.path.exists(tmp_path / "none")


def test_computectl_never_opens_the_hosts_own_database_and_asks_its_agent(tmp_path):
    import pytest

    from compute.client.cli import CLIError
    (tmp_path / "compute.sqlite").write_bytes(b"")          # the agent's, made at its start
    assert hosts.own_file(conf(tmp_path)) and hosts.readable(conf(tmp_path)) is None
    assert not hosts.own_file(conf(tmp_path, "postgresql://u@db/compute"))
    assert hosts.local_services("h1", lambda h: True) == [
        {"host": "h1", "binary": "compute-agent", "status": "up", "updated_at": None}]
    with pytest.raises(CLIError, match="never opens a host's own state database"):
        hosts.local_services("h1", lambda h: False)
    with pytest.raises(CLIError, match="no agent answers for host 'h2'"):
        hosts.check_asking("h2", lambda h: h == "h1")
