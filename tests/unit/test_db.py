"""State changes are compare-and-swap on task_state; the Alembic migrations
create exactly the schema the models describe."""
import threading

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from compute.core import exception, states
from compute.db import api
from compute.db.api import Database
from compute.db.models import Base


@pytest.fixture
def db(tmp_path):
    d = Database(f"sqlite:///{tmp_path}/t.sqlite")
    d.sync()
    return d


def make(db, uuid="0d3e4c0a-8c1b-4d3e-9a49-2f0c1b7a6e55"):
    return db.instance_create(uuid=uuid, display_name="x", host="h", vm_state=states.BUILDING,
                              task_state=states.SCHEDULING, power_state=0,
                              flavor={"vcpus": 1, "memory_mb": 128, "root_gb": 1},
                              image_ref="img", networks=[], metadata_={})


def test_migrations_match_models(db):
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_head_revision_is_alembics_head(db):
    script = ScriptDirectory(api.MIGRATIONS)
    assert script.get_current_head() == api.HEAD_REVISION
    assert db.revision() == api.HEAD_REVISION


def test_a_current_schema_syncs_without_alembic(db, monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "alembic.command", None)     # import would fail
    db.sync()
    assert db.revision() == api.HEAD_REVISION


def _upgrade_to(db, revision):
    import alembic.command
    import alembic.config
    cfg = alembic.config.Config()
    cfg.set_main_option("script_location", api.MIGRATIONS)
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        alembic.command.upgrade(cfg, revision)


def test_an_old_schema_is_upgraded_and_its_rows_become_the_hosts_own(tmp_path):
    db = Database(f"sqlite:///{tmp_path}/old.sqlite")
    _upgrade_to(db, "0005")
    with db.engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO services (host, binary, topic, report_count, disabled, created_at) "
            "VALUES ('hostx', 'compute-agent', 'compute', 1, 0, '2026-01-01 00:00:00')")
        conn.exec_driver_sql(
            "INSERT INTO instances (uuid, display_name, host, vm_state, power_state, flavor, "
            "image_ref, networks, metadata, created_at, deleted, disk_formats, image_meta) "
            "VALUES ('0d3e4c0a-8c1b-4d3e-9a49-2f0c1b7a6e55', 'x', 'elsewhere', 'active', 1, "
            "'{}', 'img', '[]', '{}', '2026-01-01 00:00:00', 1, '{}', '{}')")
    _upgrade_to(db, "0009")
    with db.engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO migrations (id, instance_uuid, migration_type, source_host, dest_host,"
            " status, old_flavor, new_flavor, old_vm_state, old_disk_formats, created_at) "
            "VALUES ('m1', '0d3e4c0a-8c1b-4d3e-9a49-2f0c1b7a6e55', 'live-migration', 'hostx', "
            "'elsewhere', 'completed', '{}', '{}', 'active', '{}', '2026-01-01 00:00:00')")
    db.sync()
    assert db.revision() == api.HEAD_REVISION
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []
    mine = Database(f"sqlite:///{tmp_path}/old.sqlite", owner="hostx")
    assert mine.instance_get("0d3e4c0a-8c1b-4d3e-9a49-2f0c1b7a6e55",
                             include_deleted=True).host == "elsewhere"   # a moved one's row
    assert mine.migration_get("m1").owner == "hostx"


def test_hosts_sharing_a_database_keep_their_own_rows(tmp_path):
    url = f"sqlite:///{tmp_path}/shared.sqlite"
    a, b = Database(url, owner="ha"), Database(url, owner="hb")
    a.sync()
    make(a)
    with pytest.raises(exception.InstanceNotFound):
        b.instance_get("0d3e4c0a-8c1b-4d3e-9a49-2f0c1b7a6e55")
    make(b)                                   # the same instance, hB's own row
    b.instance_update("0d3e4c0a-8c1b-4d3e-9a49-2f0c1b7a6e55", vm_state="active")
    assert a.instance_get("0d3e4c0a-8c1b-4d3e-9a49-2f0c1b7a6e55").vm_state == "building"
    assert b.instance_get("0d3e4c0a-8c1b-4d3e-9a49-2f0c1b7a6e55",
                          owner="ha").vm_state == "building"      # read by name
    b.instance_purge("0d3e4c0a-8c1b-4d3e-9a49-2f0c1b7a6e55")
    assert a.instance_get("0d3e4c0a-8c1b-4d3e-9a49-2f0c1b7a6e55")
    assert [i.owner for i in b.instance_list(every_owner=True)] == ["ha"]
    row = dict(id="m1", instance_uuid="u", migration_type="evacuation", source_host="ha",
               dest_host="hb", status="accepted", old_flavor={}, new_flavor={},
               old_vm_state="active")
    b.migration_create(**row)
    a.migration_create(**dict(row, migration_type="live-migration"))
    assert [m.migration_type for m in a.migrations()] == ["live-migration"]
    assert [(m.owner, m.id) for m in a.evacuations_from("ha")] == [("hb", "m1")]
    a.migration_update("m1", owner="hb", status="completed")
    assert a.evacuations_from("ha") == [] and a.migration_get("m1").status == "accepted"


def test_cas_update_succeeds_on_expected_state(db):
    inst = make(db)
    db.instance_update(inst.uuid, expected_task_state=states.SCHEDULING,
                       task_state=states.SPAWNING)
    assert db.instance_get(inst.uuid).task_state == states.SPAWNING


def test_cas_update_refused_on_unexpected_state(db):
    inst = make(db)
    with pytest.raises(exception.UnexpectedTaskState):
        db.instance_update(inst.uuid, expected_task_state=states.SPAWNING, vm_state="active")
    assert db.instance_get(inst.uuid).vm_state == states.BUILDING


def test_two_racing_updates_only_one_wins(db):
    inst = make(db)
    won, lost, errors, barrier = [], [], [], threading.Barrier(8)

    def race(i):
        try:
            barrier.wait()
            db.instance_update(inst.uuid, expected_task_state=states.SCHEDULING,
                               task_state=f"op{i}")
            won.append(i)
        except exception.UnexpectedTaskState:
            lost.append(i)
        except Exception as e:       # noqa: BLE001 - anything else fails the test below
            errors.append(e)

    threads = [threading.Thread(target=race, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []                          # no exception lost in a thread
    assert len(won) == 1 and len(lost) == 7      # every thread ended one way or the other
    assert db.instance_get(inst.uuid).task_state == f"op{won[0]}"


def test_expected_none_task_state(db):
    inst = make(db)
    db.instance_update(inst.uuid, task_state=None)
    db.instance_update(inst.uuid, expected_task_state=(None,), task_state=states.DELETING)
    assert db.instance_get(inst.uuid).task_state == states.DELETING
    with pytest.raises(exception.UnexpectedTaskState):      # not None any more
        db.instance_update(inst.uuid, expected_task_state=(None,), task_state=states.PAUSING)


def test_duplicate_uuid_refused(db):
    make(db)
    with pytest.raises(exception.InstanceExists):
        make(db)


def test_service_up_down_by_service_down_time():
    import datetime

    from compute.db.api import service_is_up
    from compute.db.models import Service
    now = datetime.datetime(2026, 1, 1, 12, 0, 0)
    svc = Service(host="h", binary="compute-agent", topic="compute",
                  created_at=now - datetime.timedelta(hours=1),
                  updated_at=now - datetime.timedelta(seconds=59))
    assert service_is_up(svc, 60, now)
    svc.updated_at = now - datetime.timedelta(seconds=61)
    assert not service_is_up(svc, 60, now)


def test_cached_image_counts_survive_racing_first_uses(db):
    barrier = threading.Barrier(6)

    def use(hit):
        barrier.wait()
        db.cached_image_used("h", "img", "f", 10, hit)

    threads = [threading.Thread(target=use, args=(i > 0,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    (row,) = db.cached_images("h")
    assert (row.misses, row.hits) == (1, 5)


def test_a_peers_security_group_never_replaces_this_hosts_copy(db):
    """An arriving instance's record (from its old host) adds the groups
    this host lacks and changes none it has: other ports here use them."""
    from compute.parts.networking import Networking
    db.owner = "h1"
    net = Networking.__new__(Networking)        # only its database is used here
    net.db = db
    db.security_group_put({"id": "web", "rules": [{"direction": "ingress", "port": 80}]})
    net.add_peer_security_groups([{"id": "web", "rules": [{"direction": "ingress"}]},
                                  {"id": "db", "rules": []}])
    assert db.security_groups() == {"web": {"id": "web", "rules": [{"direction": "ingress",
                                                                     "port": 80}]},
                                    "db": {"id": "db", "rules": []}}
