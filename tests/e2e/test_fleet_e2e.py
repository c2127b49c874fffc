"""Many agents (10 here; benchmarks/scale.py runs fifty) on one PostgreSQL
database, each with its own role, and one three-node RabbitMQ cluster
with quorum queues, on libvirt's test driver: service-list follows agents
stopping and starting, and losing a broker node in the middle of a mixed
load loses no accepted build and needs no agent restarted."""
import os
import time

import pytest

from compute.core import exception
from tests.harness import postgres
from tests.harness.fleet import Fleet, MixedLoad
from tests.harness.postgres import PostgresServer
from tests.harness.rabbit_cluster import RabbitCluster, wait_nodes

pytestmark = pytest.mark.skipif(not postgres.available(), reason="PostgreSQL is not "
                                "installed (tools/install.sh installs it)")
SIZE = int(os.environ.get("COMPUTE_FLEET_AGENTS", "10"))
DOWN_TIME = 10
QUORUM = ("[oslo_messaging_rabbit]\nrabbit_quorum_queue = true\n"
          "rabbit_transient_quorum_queue = true\nheartbeat_timeout_threshold = 10\n")


@pytest.fixture(scope="module")
def fleet():
    pg = PostgresServer(max_connections=SIZE * 6 + 50).start()
    cluster = RabbitCluster()
    fleet = None
    try:
        pg.create_schema()
        cluster.start()
        fleet = Fleet(SIZE, pg, cluster.transport_url(), DOWN_TIME, QUORUM).start()
        fleet.cluster = cluster
        yield fleet
    finally:
        if fleet is not None:
            fleet.close()
        cluster.remove()
        pg.remove()


def test_service_list_shows_agents_stopping_and_starting(fleet):
    everyone = {a.host: "up" for a in fleet.agents}
    fleet.wait_states(everyone, 30)
    five = fleet.agents[1:6]
    fleet.stop(five)
    stopped = time.monotonic()
    fleet.wait_states({**everyone, **{a.host: "down" for a in five}}, DOWN_TIME + 15)
    assert time.monotonic() - stopped <= DOWN_TIME + 15
    fleet.restart(five)
    fleet.wait_states(everyone, 30)


def test_losing_a_broker_node_mid_load_loses_no_accepted_build(fleet):
    load = MixedLoad(fleet, clients=3).start()
    time.sleep(15)
    first = fleet.cluster.nodes[0]       # the node every connection tries first
    before = load.builds_accepted
    first.stop()
    wait_nodes(fleet.cluster, 2)
    time.sleep(25)
    load.stop()
    assert load.builds_accepted > before, "no build was accepted after the node stopped"
    client = fleet.client(timeout=30)
    unfinished = []
    for host, u in load.accepted:
        try:
            rec = client.get_instance(host, u)
        except exception.InstanceNotFound:
            unfinished.append((host, u, "no record"))
            continue
        if rec["vm_state"] not in ("active", "stopped", "deleted") or rec["task_state"]:
            unfinished.append((host, u, rec["vm_state"], rec["task_state"]))
    assert unfinished == [], f"accepted builds that did not complete: {unfinished}"
    for a in fleet.agents:                 # nobody needed a restart
        assert a.procs["compute-agent"].poll() is None, f"{a.host} exited"
        assert client.ping(a.host, timeout=30)
    assert load.builds_done >= 3, load.figures()
