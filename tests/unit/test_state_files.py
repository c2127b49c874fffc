"""The state database's files: computectl never makes one, and the agent
refuses to start on one that is not its own, saying what to run."""
import os
import types

from compute.cmd import hosts
from compute.db.api import sqlite_files
from compute.identity import state_files_refusal


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
