"""What many hosts sharing one database rely on, without daemons: the
heartbeat and the resource report are single-row upserts that racing
threads do not break, computectl's host checks and pick, the host role
statements and the outage guard of the RPC endpoint."""
import datetime
import threading
import types

import pytest
from sqlalchemy.exc import IntegrityError, OperationalError

from compute.client import hosts
from compute.client.cli import CLIError
from compute.cmd import manage
from compute.core import exception
from compute.db import models
from compute.db.api import Database, unreachable
from compute.rpc.outage import DatabaseWatch, OutageGuard

NOW = datetime.datetime(2026, 12, 5, 12, 0, 0)


@pytest.fixture
def db(tmp_path):
    d = Database(f"sqlite:///{tmp_path}/t.sqlite")
    d.sync()
    return d


def test_heartbeats_from_racing_threads_make_one_row_and_count_every_beat(db):
    def beat():
        for _ in range(10):
            db.service_heartbeat("h1", "compute-agent", "compute")
    threads = [threading.Thread(target=beat) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rows = db.service_list()
    assert [(r.host, r.report_count) for r in rows] == [("h1", 40)]


def test_a_second_service_row_of_a_host_is_refused_by_the_schema(db):
    db.service_heartbeat("h1", "compute-agent", "compute")
    with pytest.raises(IntegrityError), db.session() as s:
        s.add(models.Service(host="h1", binary="compute-agent", topic="compute"))


def test_the_resource_report_inserts_then_updates_the_hosts_node(db):
    figures = dict(hypervisor_type="QEMU", hypervisor_version=1, hypervisor_hostname="h1",
                   vcpus=4, memory_mb=4096, local_gb=40)
    db.compute_node_update("h1", **figures, memory_mb_used=0)
    db.compute_node_update("h1", **figures, memory_mb_used=512)
    db.compute_node_update("h2", **figures, memory_mb_used=128)
    assert db.compute_node_get("h1").memory_mb_used == 512
    assert db.compute_node_get("h2").memory_mb_used == 128


def service(host, age_s, disabled=False):
    return types.SimpleNamespace(host=host, binary="compute-agent", disabled=disabled,
                                 created_at=NOW - datetime.timedelta(days=1),
                                 updated_at=NOW - datetime.timedelta(seconds=age_s))


def node(host, free_mb, free_gb=100):
    return types.SimpleNamespace(host=host, memory_mb=8192, memory_mb_used=8192 - free_mb,
                                 local_gb=200, local_gb_used=200 - free_gb)


def test_a_named_host_without_a_record_or_down_or_disabled_is_refused_with_why():
    assert "no compute service record" in hosts.refusal(None, "nosuchhost", 60, NOW)
    down = hosts.refusal(service("h1", 95), "h1", 60, NOW)
    assert "is down" in down and "95 s ago" in down and "60 s" in down
    assert "disabled" in hosts.refusal(service("h1", 5, disabled=True), "h1", 60, NOW)
    assert hosts.refusal(service("h1", 5), "h1", 60, NOW) is None


def test_the_pick_takes_up_hosts_most_free_memory_first_and_unfit_ones_last():
    services = [service("a", 5), service("b", 5), service("c", 500), service("d", 5),
                service("e", 5, disabled=True), service("f", 5)]
    nodes = [node("a", 1024), node("b", 4096), node("c", 8000), node("d", 256),
             node("e", 8000), node("f", 2048, free_gb=0)]
    order = hosts.candidates(services, nodes, {"memory_mb": 512, "root_gb": 1}, 60, NOW)
    assert order == ["b", "a", "f", "d"]       # c is down, e disabled; d and f do not fit


def test_no_host_up_is_a_clear_error(db):
    with pytest.raises(CLIError, match="no compute host is up"):
        hosts.pick(db, {"memory_mb": 128}, 60)


@pytest.mark.parametrize("host", ['h"; DROP TABLE instances; --', "", "a b", "-x", "é"])
def test_a_host_role_is_made_only_for_a_plain_host_name(host):
    with pytest.raises(manage.ManageError):
        manage.host_role_statements(host)


def test_host_role_grants_name_the_role_quoted():
    stmts = manage.host_role_statements("compute-01")
    assert all('TO "compute-01"' in s for s in stmts)
    assert stmts[-1] == ('GRANT SELECT ON images_in_use, host_floating_ranges, alembic_version '
                         'TO "compute-01"')


def test_an_operator_reads_through_the_group_role_and_is_granted_no_write():
    stmts = manage.operator_role_statements("ops")
    assert stmts[0] == 'GRANT compute_operators TO "ops"'
    assert all("INSERT" not in s and "UPDATE" not in s and "DELETE" not in s for s in stmts)
    with pytest.raises(manage.ManageError):
        manage.operator_role_statements('ops"; --')


def test_host_roles_are_refused_on_sqlite(db):
    with pytest.raises(manage.ManageError, match="PostgreSQL"):
        manage.create_host_role(db, "h1", "secret")


class Endpoint:
    target = "the target"

    def __init__(self, error=None):
        self.error = error

    def get_instance(self, ctxt, **payload):
        if self.error:
            raise self.error
        return {"uuid": payload["instance_uuid"]}


def test_a_database_outage_is_refused_clearly_and_notified_then_the_next_request_works():
    down = OperationalError("SELECT 1", {}, Exception("connection refused"))
    assert unreachable(down) and not unreachable(ValueError("x"))
    sent, watch = [], DatabaseWatch()
    ep = Endpoint(down)
    guard = OutageGuard(ep, watch, lambda event, payload: sent.append(event))
    assert guard.target == "the target"
    with pytest.raises(exception.DatabaseUnavailable, match="state database is unreachable"):
        guard.get_instance({}, instance_uuid="u")
    assert sent == ["get_instance.refused"] and watch.down_since is not None
    ep.error = None
    assert guard.get_instance({}, instance_uuid="u") == {"uuid": "u"}
    assert watch.down_since is None


def test_other_errors_pass_the_guard_unchanged():
    guard = OutageGuard(Endpoint(exception.InstanceNotFound("gone")), DatabaseWatch(),
                        lambda *a: pytest.fail("notified"))
    with pytest.raises(exception.InstanceNotFound):
        guard.get_instance({}, instance_uuid="u")


def test_an_agent_refuses_a_schema_behind_its_code(tmp_path):
    d = Database(f"sqlite:///{tmp_path}/empty.sqlite")
    with pytest.raises(exception.SchemaBehind, match="compute-agent-manage db sync"):
        d.check_current()


def test_each_host_keeps_its_own_copy_of_a_security_group(tmp_path):
    url = f"sqlite:///{tmp_path}/shared.sqlite"
    a, b = Database(url, owner="hA"), Database(url, owner="hB")
    a.sync()
    a.security_group_put({"id": "web", "rules": [{"port": 80}]})
    b.security_group_put({"id": "web", "rules": [{"port": 22}]})
    a.security_group_put({"id": "web", "rules": [{"port": 443}]})
    assert b.security_groups() == {"web": {"id": "web", "rules": [{"port": 22}]}}
    assert a.security_groups(["web"]) == {"web": {"id": "web", "rules": [{"port": 443}]}}
    assert b.security_groups(host="hA") == a.security_groups()     # an evacuation's read


def test_groups_of_a_shared_database_go_to_every_host_on_upgrade(tmp_path):
    from sqlalchemy import text

    from tests.unit.test_db import _upgrade_to
    db = Database(f"sqlite:///{tmp_path}/old.sqlite")
    _upgrade_to(db, "0012")
    with db.engine.begin() as conn:
        for host in ("hA", "hB"):
            conn.execute(text("INSERT INTO services (host, binary, topic, report_count, "
                              "disabled, created_at) VALUES (:h, 'compute-agent', 'compute', "
                              "1, 0, '2026-12-05 00:00:00')"), {"h": host})
        conn.execute(text("INSERT INTO security_groups (id, body, updated_at) VALUES "
                          "('web', '{\"id\": \"web\", \"rules\": []}', '2026-12-05 00:00:00')"))
    db.sync()
    for host in ("hA", "hB"):
        assert Database(db.engine.url.render_as_string(hide_password=False), owner=host
                        ).security_groups() == {"web": {"id": "web", "rules": []}}


def test_a_host_without_a_record_passes_only_if_its_agent_answers(db):
    db.service_heartbeat("here", "compute-agent", "compute")
    asked = []

    def answers(host):
        asked.append(host)
        return host == "own-db"
    hosts.check(db, "here", 60, answers)          # a record that is up: no ping
    hosts.check(db, "own-db", 60, answers)        # a host keeping its own database
    with pytest.raises(CLIError, match="no agent answers"):
        hosts.check(db, "nosuchhost", 60, answers)
    assert asked == ["own-db", "nosuchhost"]
