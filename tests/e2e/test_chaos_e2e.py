"""Chaos: the agent killed with SIGKILL at every named step of build,
delete, snapshot, rebuild, rescue and unrescue, shelve, offload and
unshelve (both sides), live migration (both sides), cold migration (both
sides), confirm and revert (compute.core.faults), then started again; after
each, the invariants of tests.harness.invariants hold on both hosts: both
hosts are watched from the operation until the instance settled (never on
two at once), and the last tick the guest printed before the kill is on
its disk wherever it runs after (booted again or not).  Then hA's
libvirtd is restarted in the middle of an operation (the broker's
outage, which every job on the machine shares, is
test_broker_outage_e2e, run alone).  The
peer's calls time out after 20 s here (rpc_peer_timeout), so an agent that
died while its peer waited on it is noticed quickly."""
import contextlib
import threading
import uuid as uuidlib

import oslo_messaging as messaging
import pytest

from tests.harness import guest
from tests.harness import invariants as inv
from tests.harness.agent import wait_until
from tests.harness.testbed import two_hosts

CONF = "[DEFAULT]\nrpc_peer_timeout = 20\nshutdown_timeout = 5\n"
SMALL = {"vcpus": 1, "memory_mb": 128, "root_gb": 1}


@pytest.fixture(scope="module")
def bed():
    yield from two_hosts("chaos", extra_conf={"hA": CONF, "hB": CONF})


def boot(bed, host="hA"):
    """A ticking guest on host; its uuid and its last tick."""
    a = bed.hosts[host].agent
    u = a.boot("chaos", image=bed.images.images["disk"], flavor=SMALL)
    a.wait_console(u, lambda c: guest.last_tick(c) >= 2, "two ticks")
    return u, guest.last_tick(a.console(u))


def crash(bed, host, step, operation, u=None):
    """Arm step on host's agent, run operation, wait for the agent to die
    there, start it again.  With u: (the Watch of both hosts, started
    before the operation, for inv.check; what the consoles showed at the
    kill, for inv.ticks_kept)."""
    a = bed.hosts[host].agent
    a.kill_agent()
    a.restart_agent(crash_at=step)
    watch = inv.Watch(bed, u).start() if u else None
    operation()
    assert a.wait_crashed() == -9
    at_kill = watch.mark() if u else None
    a.restart_agent()
    return watch, at_kill


def other(host):
    return "hB" if host == "hA" else "hA"


def delete(bed, u):
    for h in bed.hosts.values():
        rec = h.agent.find(u)
        if rec and rec["vm_state"] != "deleted" and rec["host"] == h.agent.host:
            h.agent.api.terminate_instance(h.agent.host, u)
            h.agent.wait_state(u, {"deleted"})
    inv.check(bed, u)


@pytest.mark.parametrize("step", ["build.plugged", "build.spawned"])
def test_build(bed, step):
    a, u = bed.hosts["hA"].agent, str(uuidlib.uuid4())
    crash(bed, "hA", step, lambda: a.api.build_and_run_instance(
        a.host, u, "chaos", SMALL, bed.images.images["disk"]))
    assert inv.check(bed, u) is None
    rec = a.find(u)
    assert rec["vm_state"] == "error" and "BuildInterrupted" in rec["fault"]
    delete(bed, u)


def test_delete(bed):
    u, _ = boot(bed)
    a = bed.hosts["hA"].agent
    watch, _ = crash(bed, "hA", "delete.destroyed",
                     lambda: a.api.terminate_instance(a.host, u), u)
    a.wait_state(u, {"deleted"})                  # the delete is taken up again
    assert inv.check(bed, u, watch) is None


@pytest.mark.parametrize("step", ["snapshot.image_made", "snapshot.uploaded"])
def test_snapshot(bed, step):
    u, _ = boot(bed)
    a = bed.hosts["hA"].agent
    watch, at_kill = crash(bed, "hA", step,
                           lambda: a.api.snapshot_instance(a.host, u, "chaos"), u)
    assert inv.check(bed, u, watch) == "hA"
    inv.ticks_kept(bed.hosts["hA"], u, at_kill)
    assert not [n for n in bed.hosts["hA"].run("ls", f"{a.instances_path}/{u}").split()
                if n.endswith(".snapshot")]            # merged back onto its disk
    delete(bed, u)


def test_set_admin_password(bed):
    """Killed with the password change accepted: the caller's call fails,
    and the restarted agent settles the instance (the password was never
    stored, so nothing resumes it)."""
    u, _ = boot(bed)
    a = bed.hosts["hA"].agent

    def change():
        with pytest.raises(messaging.MessagingTimeout):
            a.api.client.prepare(server=a.host, timeout=10).call(
                {}, "set_admin_password", instance_uuid=u, admin_pass="never-kept")
    watch, at_kill = crash(bed, "hA", "set_admin_password.accepted", change, u)
    rec = a.wait_settled(u)
    assert (rec["vm_state"], rec["power_state"]) == ("active", "RUNNING")
    assert inv.check(bed, u, watch) == "hA"
    inv.ticks_kept(bed.hosts["hA"], u, at_kill)
    delete(bed, u)


@pytest.mark.parametrize("step", ["rebuild.prepared", "rebuild.spawned"])
def test_rebuild(bed, step):
    """A rebuild is taken up again after a crash: the guest boots a fresh
    disk (its first boot of it) and runs."""
    u, _ = boot(bed)
    a = bed.hosts["hA"].agent
    booted = guest.boots(a.console(u))
    watch, _ = crash(bed, "hA", step, lambda: a.api.rebuild_instance(a.host, u), u)
    assert a.wait_settled(u)["vm_state"] == "active"
    assert inv.check(bed, u, watch) == "hA"
    # booted again, and from a new disk: a reboot of the old one would count 2
    a.wait_console(u, lambda c: guest.boots(c) > booted and "TB: bootcount=1" in
                   c.rsplit(guest.BOOT_MARKER, 1)[-1], "the first boot of the new disk")
    delete(bed, u)


@pytest.mark.parametrize("step,lands", [("rescue.prepared", "rescued"),
                                        ("rescue.booted", "rescued"),
                                        ("unrescue.booted", "active")])
def test_rescue(bed, step, lands):
    """Rescue and unrescue are issued again after a crash: the instance
    ends where the operation would have taken it, its rescue disk only
    while rescued."""
    u, _ = boot(bed)
    a = bed.hosts["hA"].agent
    if step.startswith("unrescue"):
        a.api.rescue_instance(a.host, u)
        assert a.wait_settled(u)["vm_state"] == "rescued"
        operation = lambda: a.api.unrescue_instance(a.host, u)  # noqa: E731
    else:
        operation = lambda: a.api.rescue_instance(a.host, u)  # noqa: E731
    watch, _ = crash(bed, "hA", step, operation, u)
    assert a.wait_settled(u)["vm_state"] == lands
    assert inv.check(bed, u, watch) == "hA"
    files = bed.hosts["hA"].run("ls", f"{a.instances_path}/{u}").split()
    assert ("disk.rescue" in files) == (lands == "rescued"), files
    delete(bed, u)


def shelved(bed, u, host="hA"):
    a = bed.hosts[host].agent
    return wait_until(lambda: (r := a.find(u)) and r["vm_state"] == "shelved_offloaded"
                      and r["task_state"] is None and r, 240, 0.5, f"{u} offloaded")


def unshelved_on_hb(bed, u, at_kill, watch=None):
    """The instance runs on hB from its own disk (the ticks it synced), and
    nothing of it is left on hA."""
    assert inv.check(bed, u, watch) == "hB"
    inv.ticks_kept(bed.hosts["hB"], u, at_kill)
    assert bed.hosts["hA"].agent.find(u) is None
    delete(bed, u)


@pytest.mark.parametrize("step", ["shelve.powered_off", "shelve.image_created",
                                  "shelve_offload.destroyed"])
def test_shelve(bed, step):
    """A shelve (and its offload) is taken up again: the instance ends
    offloaded with nothing on hA, and unshelves on hB from its disk."""
    u, _ = boot(bed)
    a, b = bed.hosts["hA"].agent, bed.hosts["hB"].agent
    watch, at_kill = crash(bed, "hA", step, lambda: a.api.shelve_instance(a.host, u), u)
    shelved(bed, u)
    assert inv.check(bed, u, watch) is None
    b.api.unshelve_instance(a.host, u, b.host)
    unshelved_on_hb(bed, u, at_kill)


@pytest.mark.parametrize("step,dies", [("unshelve.handed_over", "hA"),
                                       ("unshelve.prepared", "hB"),
                                       ("unshelve.spawned", "hB")])
def test_unshelve(bed, step, dies):
    """Either side of an unshelve killed: the instance ends on hB, once."""
    u, _ = boot(bed)
    a, b = bed.hosts["hA"].agent, bed.hosts["hB"].agent
    before_shelve = inv.seen(bed, u)        # the offload takes hA's console with it
    a.api.shelve_instance(a.host, u)
    shelved(bed, u)

    def call():
        with contextlib.suppress(Exception):
            a.api.unshelve_instance(a.host, u, b.host)

    def unshelve():           # a call whose handler may die: not waited for
        threading.Thread(target=call, daemon=True).start()
    watch, at_kill = crash(bed, dies, step, unshelve, u)
    at_kill = inv.later(at_kill, before_shelve)
    unshelved_on_hb(bed, u, at_kill, watch)


LIVE = ["live_migration.checked", "live_migration.prepared", "live_migration.migrated",
        "live_migration.posted", "live_migration_destination.recorded",
        "live_migration_destination.posted"]


@pytest.mark.parametrize("step", LIVE)
def test_live_migration(bed, step):
    u, _ = boot(bed)
    a, b = bed.hosts["hA"].agent, bed.hosts["hB"].agent
    dies = "hB" if step.startswith("live_migration_destination") else "hA"
    watch, at_kill = crash(bed, dies, step, lambda: a.api.live_migrate_instance(
        a.host, u, b.host, block_migration=True), u)
    where = inv.check(bed, u, watch)
    assert where is not None or bed.hosts["hA"].agent.find(u)["vm_state"] == "error"
    if where:
        inv.ticks_kept(bed.hosts[where], u, at_kill)
    delete(bed, u)


COLD = ["resize.prepared", "resize.powered_off", "resize.sent", "resize.finished_remote",
        "resize_destination.received", "resize_destination.defined"]


@pytest.mark.parametrize("step", COLD)
def test_cold_migration(bed, step):
    u, _ = boot(bed)
    a, b = bed.hosts["hA"].agent, bed.hosts["hB"].agent
    dies = "hB" if step.startswith("resize_destination") else "hA"
    watch, at_kill = crash(bed, dies, step,
                           lambda: a.api.migrate_instance(a.host, u, b.host), u)
    where = inv.check(bed, u, watch)
    # the guest runs on exactly one host, with its data (before, ERROR with
    # the guest on no host passed)
    assert where is not None, {n: h.agent.find(u) for n, h in bed.hosts.items()}
    inv.ticks_kept(bed.hosts[where], u, at_kill)
    delete(bed, u)


def resized(bed):
    """A guest cold-migrated hA -> hB, resized there; its uuid."""
    u, _ = boot(bed)
    a, b = bed.hosts["hA"].agent, bed.hosts["hB"].agent
    a.api.migrate_instance(a.host, u, b.host)
    wait_until(lambda: (r := b.find(u)) and r["vm_state"] == "resized"
               and r["task_state"] is None, 180, 0.5, "resized on hB")
    b.wait_console(u, lambda c: "TB: disk-tick=" in c, "boot on hB", timeout=120)
    return u


@pytest.mark.parametrize("step,dies,decision,lands", [
    ("confirm_resize.synced", "hB", "confirm_resize", "hB"),
    ("confirm_resize.source_confirmed", "hA", "confirm_resize", "hB"),
    ("revert_resize.dropped", "hB", "revert_resize", "hA"),
    ("revert_resize.source_reverted", "hA", "revert_resize", "hA"),
])
def test_confirm_and_revert(bed, step, dies, decision, lands):
    u = resized(bed)
    b = bed.hosts["hB"].agent
    watch, _ = crash(bed, dies, step, lambda: getattr(b.api, decision)(b.host, u), u)
    inv.check(bed, u, watch)
    rec = b.find(u)
    if rec and rec["vm_state"] == "resized":    # the source died: the decision is asked again
        getattr(b.api, decision)(b.host, u)
    assert inv.check(bed, u) == lands
    delete(bed, u)


def deaf_guest(bed):
    """A ticking guest on hA that ignores ACPI, so a cold migration's
    shutdown takes shutdown_timeout (5 s here); its uuid and last tick."""
    a = bed.hosts["hA"].agent
    image = bed.upload_variant("console=ttyS0 quiet tb.name=chaos-deaf tb.noacpi=1")
    u = a.boot("deaf", image=image, flavor=SMALL)
    a.wait_console(u, lambda c: guest.last_tick(c) >= 2, "two ticks")
    return u, guest.last_tick(a.console(u))


def migrate_until_shutting_down(bed, u):
    a, b = bed.hosts["hA"].agent, bed.hosts["hB"].agent
    a.api.migrate_instance(a.host, u, b.host)
    wait_until(lambda: a.find(u)["task_state"] == "resize_migrating", 60, 0.05,
               "the source shutting the guest down")


def finish(bed, u):
    """Confirm a resize that completed, then delete the instance."""
    b = bed.hosts["hB"].agent
    rec = b.find(u)
    if rec and rec["host"] == b.host and rec["vm_state"] == "resized":
        b.api.confirm_resize(b.host, u)
        assert inv.check(bed, u) == "hB"
    delete(bed, u)


def test_libvirtd_restarted_mid_operation(bed):
    """hA's libvirtd is restarted while its agent waits for a deaf guest to
    shut down for a cold migration: the migration completes or is rolled
    back (the guest runs on one host, its synced ticks kept), and the agent
    goes on with the new libvirtd by itself (a new guest boots on hA)."""
    u, _ = deaf_guest(bed)
    watch = inv.Watch(bed, u).start()
    migrate_until_shutting_down(bed, u)
    at_restart = watch.mark()
    bed.hosts["hA"].restart_libvirtd()
    where = inv.check(bed, u, watch)
    assert where is not None, bed.hosts["hA"].agent.find(u)
    inv.ticks_kept(bed.hosts[where], u, at_restart)
    u2, _ = boot(bed)                      # hA's agent uses the new libvirtd
    delete(bed, u2)
    finish(bed, u)
