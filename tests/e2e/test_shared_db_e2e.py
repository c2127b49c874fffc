"""Hosts sharing one PostgreSQL database, each through its own role: hA
runs real guests on libvirtd, hB runs on libvirt's test driver (everything
above the driver real).  Row-level security keeps each host to its own
rows; a database outage leaves the guests running and refuses requests
clearly until it ends; computectl refuses a host without a running
service at once and picks a host for a boot without --host."""
import contextlib
import json
import os
import subprocess
import time
import uuid as uuidlib

import libvirt
import pytest
import sqlalchemy
from sqlalchemy import text

from compute.core import exception
from tests.harness import guest, postgres
from tests.harness.agent import BIN, LIBVIRT_URI, Agent, wait_until
from tests.harness.postgres import PostgresServer

pytestmark = pytest.mark.skipif(not postgres.available(), reason="PostgreSQL is not "
                                "installed (tools/install.sh installs it)")
@contextlib.contextmanager
def libvirt_conn():
    conn = libvirt.open(LIBVIRT_URI)
    try:
        yield conn
    finally:
        conn.close()


TEST_DRIVER = "[libvirt]\nconnection_uri = test:///default\n"


@pytest.fixture(scope="module")
def pg():
    server = PostgresServer().start()
    server.create_schema()
    yield server
    server.remove()


def start_agent(pg, extra="", images=None):
    """An agent with its own database role (hA's floating range is
    203.0.113.0/24); images: another agent whose image service it uses."""
    a = Agent()
    a.extra_conf = pg.add_host(a.host, () if images else ("203.0.113.0/24",)) + extra
    if images is not None:
        a.owns_image_service = False
        a.image_url = a.agent_image_url = images.image_url
        a.images = images.images
    return a.start()


@pytest.fixture(scope="module")
def hosts(pg):
    a = start_agent(pg)
    b = start_agent(pg, TEST_DRIVER + "[DEFAULT]\nvolume_allowed_networks = 10.250.0.0/24\n",
                    images=a)
    try:
        a.upload_test_guest()
        small = os.path.join(a.workdir, "small.qcow2")
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", small, "8M"], check=True)
        os.chmod(small, 0o644)
        a.images["small"] = a._upload(small, "qcow2")
        yield a, b
    finally:
        a.close()
        b.close()


@pytest.fixture(scope="module")
def operator(pg, tmp_path_factory):
    """A config file computectl reads the database through as an operator."""
    path = tmp_path_factory.mktemp("operator") / "operator.conf"
    path.write_text(pg.add_operator())
    return str(path)


def computectl(agent, *args, timeout=120, operator=None):
    extra = ["--config-file", operator] if operator else []
    return subprocess.run([os.path.join(BIN, "computectl"), "--config-file", agent.config_file,
                           *extra, *args], capture_output=True, text=True, timeout=timeout)


def test_a_host_role_writes_only_its_own_rows(pg, hosts):
    a, b = hosts
    ua = a.boot("rls-a", wait_console=False)
    ub = b.boot("rls-b", image=b.images["small"], wait_console=False)
    as_a = sqlalchemy.create_engine(pg.url(a.host))
    others = [("instances", f"uuid = '{ub}'", "display_name = 'taken'"),
              ("services", f"host = '{b.host}'", "disabled = true"),
              ("compute_nodes", f"host = '{b.host}'", "vcpus = 0"),
              ("instance_actions", f"instance_uuid = '{ub}'", "message = 'forged'")]
    try:
        with as_a.begin() as conn:
            for table, where, change in others:
                assert conn.execute(text(f"UPDATE {table} SET {change} WHERE {where}")
                                    ).rowcount == 0, f"hA updated hB's {table}"
            assert conn.execute(text(f"DELETE FROM instance_faults WHERE instance_uuid = "
                                     f"'{ub}'")).rowcount == 0
            for table, where, _ in others[:3]:
                assert conn.execute(text(f"DELETE FROM {table} WHERE {where}")
                                    ).rowcount == 0, f"hA deleted hB's {table}"
        with pytest.raises(sqlalchemy.exc.ProgrammingError, match="keeps its uuid and owner"), \
                as_a.begin() as conn:        # nor hand its own row to hB
            conn.execute(text(f"UPDATE instances SET owner = '{b.host}' WHERE uuid = '{ua}'"))
        with pytest.raises(sqlalchemy.exc.ProgrammingError, match="row-level security"), \
                as_a.begin() as conn:        # nor make rows in hB's name
            conn.execute(text(f"INSERT INTO services (host, \"binary\", topic, report_count, "
                              f"disabled, created_at) VALUES ('{b.host}', 'x', 'compute', "
                              f"0, false, now())"))
        with as_a.begin() as conn:           # its own rows: yes
            assert conn.execute(text(f"UPDATE instances SET display_name = 'renamed' WHERE "
                                     f"uuid = '{ua}'")).rowcount == 1
            assert conn.execute(text(f"UPDATE services SET topic = topic WHERE host = "
                                     f"'{a.host}'")).rowcount == 1
    finally:
        as_a.dispose()
    assert b.api.get_instance(b.host, ub)["name"] == "rls-b"
    assert a.api.get_instance(a.host, ua)["name"] == "renamed"
    for agent, u in ((a, ua), (b, ub)):
        agent.api.terminate_instance(agent.host, u)
        agent.wait_state(u, {"deleted"})


def test_a_database_outage_refuses_requests_keeps_guests_and_ends_by_itself(pg, hosts):
    a, _ = hosts
    u = a.boot("outage")
    pg.stop()
    try:
        stopped = time.monotonic()
        with pytest.raises(exception.DatabaseUnavailable, match="database is unreachable"):
            a.api.get_instance(a.host, u)
        with pytest.raises(exception.DatabaseUnavailable):
            a.api.reboot_instance(a.host, u, "HARD")
        ticks = guest.last_tick(a.console(u))
        time.sleep(max(0.0, 30 - (time.monotonic() - stopped)))   # a 30 s outage
        assert a.procs["compute-agent"].poll() is None, "the agent died in the outage"
        later = guest.last_tick(a.console(u))
        assert later >= ticks + 5, f"the guest stopped ticking in the outage: {ticks}->{later}"
    finally:
        pg.start()
    assert "state database unreachable" in a.log()
    rec = wait_until(lambda: _get(a, u), 60, 0.5, "the agent to answer from the database")
    assert (rec["vm_state"], rec["power_state"], rec["task_state"]) == \
        ("active", "RUNNING", None)
    assert guest.boots(a.console(u)) == 1          # the outage rebooted nothing
    a.api.reboot_instance(a.host, u, "HARD")        # and requests work again
    a.wait_console(u, lambda c: guest.boots(c) == 2, "the reboot after the outage")
    wait_until(lambda: "state database reachable again" in a.log(), 30, 0.5, "recovery log")
    a.api.terminate_instance(a.host, u)
    a.wait_state(u, {"deleted"})


def _get(agent, u):
    try:
        return agent.api.get_instance(agent.host, u)
    except exception.DatabaseUnavailable:
        return None


def test_computectl_refuses_a_host_without_a_service_at_once(hosts, operator):
    a, _ = hosts
    started = time.monotonic()
    run = computectl(a, "boot", "--host", "nosuchhost", "--image", a.images["disk"],
                     "--flavor", "vcpus=1,ram=128,disk=1", "x", operator=operator)
    assert run.returncode == 1
    assert "host 'nosuchhost' has no compute service record" in run.stderr
    assert time.monotonic() - started < 20, "refused only after a timeout"
    run = computectl(a, "reboot", "--host", "nosuchhost", "--no-wait",
                     "00000000-0000-4000-8000-000000000000", operator=operator)
    assert "no compute service record" in run.stderr


def test_computectl_boot_without_host_picks_an_up_host_and_moves_on_when_refused(pg, hosts,
                                                                                operator):
    a, b = hosts
    # a host whose report shows the most free memory of all but which holds
    # all of it back: the pick tries it first and its claim refuses (it
    # reports once, at start, so the figure set here stays)
    full = start_agent(pg, TEST_DRIVER + "[DEFAULT]\nreserved_host_memory_mb = 1000000\n"
                                         "report_interval = 3600\n", images=a)
    try:
        with sqlalchemy.create_engine(pg.url(full.host)).begin() as conn:
            conn.execute(text(f"UPDATE compute_nodes SET memory_mb = 10000000 "
                              f"WHERE host = '{full.host}'"))
        run = computectl(full, "--json", "boot", "--image", a.images["small"],
                         "--flavor", "vcpus=1,ram=128,disk=1", "picked", operator=operator)
    finally:
        full.close()
    assert run.returncode == 0, run.stderr
    assert f"{full.host} refused the claim" in run.stderr
    rec = json.loads(run.stdout)
    assert rec["vm_state"] == "active" and rec["host"] != full.host
    owner = a if rec["host"] == a.host else b
    owner.api.terminate_instance(owner.host, rec["uuid"])
    owner.wait_state(rec["uuid"], {"deleted"})


USER_DATA = "I2Nsb3VkLWNvbmZpZwpzZWNyZXQ6IHMzY3IzdC11c2VyLWRhdGEK"   # has "s3cr3t-user-data"


def test_a_host_role_reads_nothing_of_another_hosts_instances(pg, hosts, operator):
    a, b = hosts
    ub = b.boot("secret-b", image=b.images["small"], wait_console=False, user_data=USER_DATA)
    as_a = sqlalchemy.create_engine(pg.url(a.host))
    try:
        with as_a.begin() as conn:
            for table, where in (("instances", f"uuid = '{ub}'"),
                                 ("instances", f"owner = '{b.host}'"),
                                 ("instance_actions", f"instance_uuid = '{ub}'"),
                                 ("compute_nodes", f"host = '{b.host}'"),
                                 ("security_groups", f"host = '{b.host}'"),
                                 ("migrations", f"owner = '{b.host}'")):
                assert conn.execute(text(f"SELECT count(*) FROM {table} WHERE {where}")
                                    ).scalar() == 0, f"hA reads hB's {table} ({where})"
            everything = " ".join(str(r) for r in conn.execute(text(
                "SELECT guest_data, volumes, task_args FROM instances")))
            assert USER_DATA not in everything
            # what it needs of the others: their heartbeats, and the images in use
            assert conn.execute(text(f"SELECT count(*) FROM services WHERE host = "
                                     f"'{b.host}'")).scalar() == 1
            assert conn.execute(text("SELECT count(*) FROM images_in_use WHERE image_ref = "
                                     ":i"), {"i": b.images["small"]}).scalar() >= 1
    finally:
        as_a.dispose()
    # hB itself, and the operator, read it; the operator writes nothing
    assert b.api.get_instance(b.host, ub)["name"] == "secret-b"
    as_op = sqlalchemy.create_engine(pg.url("operator"))
    try:
        with as_op.begin() as conn:
            assert conn.execute(text(f"SELECT count(*) FROM instances WHERE uuid = '{ub}'")
                                ).scalar() == 1
        with pytest.raises(sqlalchemy.exc.ProgrammingError, match="permission denied"), \
                as_op.begin() as conn:
            conn.execute(text(f"UPDATE instances SET display_name = 'x' WHERE uuid = '{ub}'"))
    finally:
        as_op.dispose()
    b.api.terminate_instance(b.host, ub)
    b.wait_state(ub, {"deleted"})


def forged_evacuation(victim_host, uuid_, forger):
    return text(
        "INSERT INTO migrations (id, owner, instance_uuid, migration_type, source_host, "
        "dest_host, status, old_flavor, new_flavor, old_vm_state, old_disk_formats, "
        "shared_storage, created_at) VALUES (:id, :f, :u, 'evacuation', :v, :f, 'done', "
        "'{}', '{}', 'active', '{}', false, now() - interval '1 day')").bindparams(
            id=str(uuidlib.uuid4()), f=forger, u=uuid_, v=victim_host)


def test_no_host_makes_another_destroy_its_guest(pg, hosts):
    """hB writes an evacuation of hA's running guest: the database refuses
    it (hA is up).  The same row written by a privileged hand: hA's restart
    keeps the guest running, ticking, with its files, and records why."""
    a, b = hosts
    u = a.boot("victim")
    as_b = sqlalchemy.create_engine(pg.url(b.host))
    try:
        with pytest.raises(sqlalchemy.exc.ProgrammingError, match="row-level security"), \
                as_b.begin() as conn:
            conn.execute(forged_evacuation(a.host, u, b.host))
        with pytest.raises(sqlalchemy.exc.DatabaseError, match="come from its sequence"), \
                as_b.begin() as conn:         # nor pre-empt the shared sequences
            conn.execute(text("INSERT INTO instance_actions (id, instance_uuid, action, "
                              "start_time) VALUES (999999, :u, 'forged', now())"), {"u": u})
    finally:
        as_b.dispose()
    pg.sql("INSERT INTO migrations (id, owner, instance_uuid, migration_type, source_host, "
           "dest_host, status, old_flavor, new_flavor, old_vm_state, old_disk_formats, "
           f"shared_storage, created_at) VALUES ('{uuidlib.uuid4()}', '{b.host}', '{u}', "
           f"'evacuation', '{a.host}', '{b.host}', 'done', '{{}}', '{{}}', 'active', '{{}}', "
           "false, now())", db=postgres.DB)
    before = guest.last_tick(a.console(u))
    a.kill_agent()
    a.restart_agent()
    assert a.api.get_instance(a.host, u)["vm_state"] == "active"
    a.wait_console(u, lambda c: guest.last_tick(c) >= before + 3, "ticks after the restart")
    assert os.path.exists(os.path.join(a.instances_path, u, "disk"))
    assert "is not acted on, the guest here is kept" in a.log()
    a.api.terminate_instance(a.host, u)
    a.wait_state(u, {"deleted"})


def test_builds_queued_for_a_host_that_was_down_run_only_if_still_wanted(pg, hosts):
    """While hA's agent is down three builds are cast to it: one fresh, one
    of an instance that meanwhile lived on hB and was deleted there, one
    stamped as sent an hour ago (past cast_deadline).  Back, hA builds the
    first only."""
    a, b = hosts
    wanted, elsewhere, stale = (str(uuidlib.uuid4()) for _ in range(3))
    b.api.build_and_run_instance(b.host, elsewhere, "moved-on", {"vcpus": 1, "memory_mb": 64,
                                                                "root_gb": 1}, b.images["small"])
    b.wait_state(elsewhere, {"active"})
    a.kill_agent()
    try:
        flavor = {"vcpus": 1, "memory_mb": 96, "root_gb": 1}
        a.api.build_and_run_instance(a.host, wanted, "wanted", flavor, a.images["disk"])
        a.api.build_and_run_instance(a.host, elsewhere, "moved-on", flavor, a.images["disk"])
        b.api.terminate_instance(b.host, elsewhere)
        b.wait_state(elsewhere, {"deleted"})
        an_hour_ago = {"request_id": "req-stale", "sent_at": time.time() - 3600}
        a.api._ctxt = lambda: an_hour_ago
        try:
            a.api.build_and_run_instance(a.host, stale, "stale", flavor, a.images["disk"])
        finally:
            del a.api._ctxt
    finally:
        a.restart_agent()
    assert a.wait_state(wanted, {"active", "error"})["vm_state"] == "active"
    wait_until(lambda: f"{stale} dropped" in a.log(), 30, 0.5, "the stale build dropped")
    log = a.log()
    assert f"build_and_run_instance {elsewhere} dropped, nothing done: another host" in log
    assert "past cast_deadline (600 s)" in log
    for u in (elsewhere, stale):
        with pytest.raises(exception.InstanceNotFound):
            a.api.get_instance(a.host, u)
    with libvirt_conn() as conn:
        names = {d.name() for d in conn.listAllDomains(0)}
    assert f"instance-{wanted}" in names
    assert f"instance-{elsewhere}" not in names and f"instance-{stale}" not in names
    a.api.terminate_instance(a.host, wanted)
    a.wait_state(wanted, {"deleted"})


def test_a_host_role_cannot_take_another_hosts_uuid_nor_squat_addresses(pg, hosts):
    a, b = hosts
    ub = b.boot("held-by-b", image=b.images["small"], wait_console=False)
    ua = a.boot("held-by-a", wait_console=False)
    as_a = sqlalchemy.create_engine(pg.url(a.host))
    mine = str(uuidlib.uuid4())         # a row hA may make: a uuid nobody holds
    ports = json.dumps([{"port": {"id": "p1", "fixed_ips": ["10.0.0.5"]}}])
    insert = text("INSERT INTO instances (uuid, owner, display_name, host, vm_state, "
                  "power_state, flavor, image_ref, image_meta, disk_formats, networks, "
                  "metadata, created_at, deleted) VALUES (:u, :me, 'row', :me, 'active', 1, "
                  "'{}', 'x', '{}', '{}', :nets, '{}', now(), false)")
    floating = text("INSERT INTO floating_ips (address, host, instance_uuid, port_id, "
                    "fixed_ip, created_at) VALUES (:a, :me, :u, :p, '10.0.0.5', now())")
    try:
        with as_a.begin() as conn:
            conn.execute(insert, {"u": mine, "me": a.host, "nets": ports})
            conn.execute(floating, {"a": "203.0.113.77", "me": a.host, "u": mine, "p": "p1"})
        with pytest.raises(sqlalchemy.exc.ProgrammingError, match="row-level security"), \
                as_a.begin() as conn:          # hB's uuid, in hA's name
            conn.execute(insert, {"u": ub, "me": a.host, "nets": ports})
        with pytest.raises(sqlalchemy.exc.DatabaseError, match="keeps its uuid and owner"), \
                as_a.begin() as conn:          # nor its own row renamed to it
            conn.execute(text("UPDATE instances SET uuid = :u WHERE uuid = :mine"),
                         {"u": ub, "mine": ua})
        for address, instance, port_id in (("198.51.100.7", mine, "p1"),   # not hA's range
                                           ("203.0.113.78", ub, "p1"),     # hB's instance
                                           ("203.0.113.79", mine, "p2")):  # no such port
            with pytest.raises(sqlalchemy.exc.ProgrammingError, match="row-level security"), \
                    as_a.begin() as conn:
                conn.execute(floating, {"a": address, "me": a.host, "u": instance,
                                        "p": port_id})
        with as_a.begin() as conn:
            conn.execute(text("DELETE FROM floating_ips WHERE instance_uuid = :u"), {"u": mine})
            conn.execute(text("DELETE FROM instances WHERE uuid = :u"), {"u": mine})
    finally:
        as_a.dispose()
    for agent, u in ((a, ua), (b, ub)):
        agent.api.terminate_instance(agent.host, u)
        agent.wait_state(u, {"deleted"})


CHAP_PASSWORD, CEPHX_KEY = "chap-Pa55-on-hB", "QVFCc2VjcmV0Y2VwaHhrZXlvbmhCCg=="


def test_no_credential_is_in_the_database_in_the_clear(pg, hosts):
    """hB records two instances booting from volumes (an iSCSI one with
    CHAP, an RBD one with a cephx key; the test hypervisor keeps no
    secrets, so their builds end in error, their records kept) and one
    with user data: pg_dump of the whole database shows none of them."""
    _, b = hosts
    flavor = {"vcpus": 1, "memory_mb": 64, "root_gb": 1}
    boots = [
        {"volume_id": str(uuidlib.uuid4()), "connection_info": {
            "driver_volume_type": "iscsi", "data": {
                "target_portal": "10.250.0.1:3260", "target_iqn": "iqn.2024-01.tb:v1",
                "target_lun": 1, "auth_method": "CHAP", "auth_username": "u",
                "auth_password": CHAP_PASSWORD}}},
        {"volume_id": str(uuidlib.uuid4()), "connection_info": {
            "driver_volume_type": "rbd", "data": {
                "name": "volumes/v2", "hosts": ["10.250.0.1"], "ports": ["6789"],
                "auth_enabled": True, "auth_username": "cinder", "key": CEPHX_KEY}}}]
    made = []
    for boot in boots:
        u = str(uuidlib.uuid4())
        b.api.build_and_run_instance(b.host, u, "from-volume", flavor, b.images["small"],
                                     boot_volume=boot)
        made.append(u)
    u = str(uuidlib.uuid4())
    b.api.build_and_run_instance(b.host, u, "user-data", flavor, b.images["small"],
                                 user_data=USER_DATA)
    made.append(u)
    for u in made:
        b.wait_state(u, {"active", "error"})
        assert b.api.get_instance(b.host, u)       # the records exist
    dump = pg._pg("pg_dump", "-h", pg.dir, "-p", str(pg.port), "-U", "postgres",
                  "-d", postgres.DB).stdout
    assert made[0] in dump                          # the dump has hB's records...
    for secret in (CHAP_PASSWORD, CEPHX_KEY, USER_DATA):
        assert secret not in dump, f"{secret} is in the database in the clear"
    for u in made:
        b.api.terminate_instance(b.host, u)
        b.wait_state(u, {"deleted"})
