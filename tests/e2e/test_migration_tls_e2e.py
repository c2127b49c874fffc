"""Live migration over libvirt's native TLS between namespaced hosts whose
certificates one bed CA signs: what crosses the management link carries
none of the guest's memory in clear (a marker the guest holds, on its
kernel command line, is absent from a capture of the move, and present
in one of a move without TLS); a destination whose certificate comes from
another CA is refused and the guest keeps running on the source."""
import os

import pytest

from compute.core import exception
from tests.harness import guest
from tests.harness.agent import wait_until
from tests.harness.capture import Capture
from tests.harness.testbed import TestBed

MARKER = "tlsmarker-7f3e9a1c55d04b"
NO_TLS = "[libvirt]\nlive_migration_with_native_tls = false\n"


@pytest.fixture(scope="module")
def bed():
    tb = TestBed().start()
    try:
        tb.add_host("hA")
        tb.add_host("hB", NO_TLS)                     # certificates, but sends in clear
        tb.add_host("hC", ca="rogue")                 # a CA nobody else trusts
        for h in tb.hosts.values():
            h.start_agent(tb.image_port)
        tb.upload_test_guest("console=ttyS0 quiet tb.name=tls")
        tb.marked = tb.upload_variant(
            f"console=ttyS0 quiet tb.name=tls tb.m1={MARKER} tb.m2={MARKER}")
        yield tb
    finally:
        tb.close()


def settled_on(agent, uuid_):
    rec = agent.find(uuid_)
    return rec if rec and rec["task_state"] is None and rec["host"] == agent.host else None


def captured_move(bed, src, dst, u, tmp_path, name):
    """Live-migrate u from src to dst (block) while capturing what dst's
    management link receives, except libvirtd's own control connection;
    the capture's bytes."""
    pcap = str(tmp_path / f"{name}.pcap")
    port = f"{bed.hosts[dst].name}m"                  # dst's veth on the switch
    a, b = bed.hosts[src].agent, bed.hosts[dst].agent
    with Capture(bed.sw, port, "tcp and not port 16509 and not port 5672", pcap=pcap):
        a.api.live_migrate_instance(a.host, u, b.host, block_migration=True)
        wait_until(lambda: settled_on(b, u), 180, 0.2, f"the instance on {dst}")
    with open(pcap, "rb") as f:
        return f.read()


def test_migration_with_tls_carries_no_guest_memory_in_clear(bed, tmp_path):
    a, b = bed.hosts["hA"].agent, bed.hosts["hB"].agent
    u = a.boot("tls", image=bed.marked, wait_console=False)
    a.wait_console(u, lambda c: guest.last_tick(c) >= 2, "tick 2")
    encrypted = captured_move(bed, "hA", "hB", u, tmp_path, "tls")
    assert len(encrypted) > 32 * 2**20                # the guest's memory and disk crossed here
    assert MARKER.encode() not in encrypted
    events = a.api.list_instance_actions(a.host, u)[-1]["events"]
    assert any(e["event"] == "migrated" and "over TLS" in e["details"] for e in events)
    n = guest.last_tick(b.console(u))
    b.wait_console(u, lambda c: guest.last_tick(c) > n + 1, "ticks on hB")
    # the same guest back, from a host that sends in clear: the capture sees it
    clear = captured_move(bed, "hB", "hA", u, tmp_path, "clear")
    assert MARKER.encode() in clear
    a.api.terminate_instance(a.host, u)
    a.wait_state(u, {"deleted"})


def test_destination_with_an_untrusted_certificate_is_refused(bed):
    a, c = bed.hosts["hA"].agent, bed.hosts["hC"].agent
    u = a.boot("rogue", image=bed.images.images["disk"], wait_console=False)
    a.wait_console(u, lambda con: guest.last_tick(con) >= 2, "tick 2")
    a.api.live_migrate_instance(a.host, u, c.host, block_migration=True)
    rec = wait_until(lambda: (r := a.api.get_instance(a.host, u))["task_state"] is None and r,
                     180, 0.2, "the migration to end")
    assert rec["host"] == a.host and rec["power_state"] == "RUNNING"
    action = a.api.list_instance_actions(a.host, u)[-1]
    assert action["action"] == "live_migration" and action["message"] == "Error"
    failed = " ".join(e["details"] or "" for e in action["events"] if e["result"] == "Error")
    assert "certificate" in failed.lower(), failed
    n = guest.last_tick(a.console(u))
    a.wait_console(u, lambda con: guest.last_tick(con) > n + 1, "ticks on hA after the refusal")
    with pytest.raises(exception.InstanceNotFound):
        c.api.get_instance(c.host, u)
    assert not os.path.exists(os.path.join(c.instances_path, u))
    assert f"instance-{u}" not in bed.hosts["hC"].virsh("list", "--all", "--name")
    a.api.terminate_instance(a.host, u)


def test_a_host_whose_certificates_went_missing_refuses_instead_of_sending_in_clear(bed):
    a, b = bed.hosts["hA"].agent, bed.hosts["hB"].agent
    u = a.boot("nocert", image=bed.images.images["disk"], wait_console=False)
    a.wait_console(u, lambda con: guest.last_tick(con) >= 2, "tick 2")
    cert = os.path.join(bed.hosts["hA"].pki, "client-cert.pem")
    os.rename(cert, cert + ".aside")
    try:
        with pytest.raises(exception.MigrationPreCheckError,
                           match="live_migration_with_native_tls is on .*client-cert.pem"):
            a.api.live_migrate_instance(a.host, u, b.host, block_migration=True)
    finally:
        os.rename(cert + ".aside", cert)
    rec = a.api.get_instance(a.host, u)
    assert (rec["host"], rec["task_state"], rec["power_state"]) == (a.host, None, "RUNNING")
    assert a.api.list_migrations(a.host, u) == []           # nothing was even recorded
    n = guest.last_tick(a.console(u))
    a.wait_console(u, lambda con: guest.last_tick(con) > n + 1, "ticks on hA")
    a.api.terminate_instance(a.host, u)
    a.wait_state(u, {"deleted"})
