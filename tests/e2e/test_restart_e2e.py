"""kill -9 of the agent never disturbs a guest, and whatever the agent was
doing when it died is finished or cleaned up when it starts again."""
import os
import time

import libvirt

from compute.core import exception
from tests.harness import guest
from tests.harness.agent import LIBVIRT_URI, wait_until


def domains():
    """{uuid: active?} of every domain on the host."""
    conn = libvirt.open(LIBVIRT_URI)
    try:
        return {d.UUIDString(): bool(d.isActive()) for d in conn.listAllDomains(0)}
    finally:
        conn.close()


def kill_when(agent, u, task_state):
    """kill -9 the agent as soon as instance u shows task_state."""
    def reached():
        try:
            return agent.api.get_instance(agent.host, u)["task_state"] == task_state
        except exception.InstanceNotFound:
            return False        # a build cast not recorded yet
    wait_until(reached, 60, 0.005, f"task_state {task_state}")
    agent.kill_agent()


def assert_matches_libvirt(agent, uuids):
    doms = domains()
    for u in uuids:
        rec = agent.api.get_instance(agent.host, u)
        if rec["vm_state"] == "deleted":
            assert u not in doms
            assert not os.path.exists(os.path.join(agent.instances_path, u))
        elif rec["vm_state"] == "active":
            assert doms.get(u) is True and rec["power_state"] == "RUNNING", rec
        elif rec["vm_state"] == "error":
            assert rec["task_state"] is None and rec["fault"], rec


def test_sigterm_stops_the_agent_and_leaves_the_guests_running(agent):
    """A plain stop (systemd's SIGTERM, KillMode=process): the agent exits
    by itself, its guests run on untouched, and it comes back to them."""
    u = agent.boot("sigterm")
    agent.wait_console(u, lambda c: guest.last_tick(c) >= 2, "two ticks")
    proc = agent.procs["compute-agent"]
    proc.terminate()
    assert proc.wait(timeout=30) == 0
    before = guest.last_tick(agent.console(u))
    agent.wait_console(u, lambda c: guest.last_tick(c) >= before + 2, "ticks without agent")
    assert domains()[u] is True
    agent.restart_agent()
    rec = agent.wait_settled(u)
    assert (rec["vm_state"], rec["power_state"]) == ("active", "RUNNING")
    assert guest.boots(agent.console(u)) == 1
    agent.api.terminate_instance(agent.host, u)
    agent.wait_state(u, {"deleted"})


def test_kill_9_with_three_guests_running_disturbs_none(agent):
    uuids = [agent.boot(f"keep{i}") for i in range(3)]
    for u in uuids:
        agent.wait_console(u, lambda c: guest.last_tick(c) >= 2, "two ticks")
    before = {u: guest.last_tick(agent.console(u)) for u in uuids}
    agent.kill_agent()
    # what a killed agent can leave: a partial download, a half-made blank
    # base, an old probe file
    base = os.path.join(agent.instances_path, "_base")
    leftovers = [os.path.join(base, ".fetch-x1"), os.path.join(base, ".blank-x2"),
                 os.path.join(agent.instances_path, ".shared-probe-" + "0" * 32)]
    for path in leftovers:
        open(path, "w").close()
    os.utime(leftovers[2], (time.time() - 7200,) * 2)
    time.sleep(2)
    agent.restart_agent()
    assert [p for p in leftovers if os.path.exists(p)] == []
    time.sleep(3)
    for u in uuids:
        console = agent.console(u)
        assert guest.boots(console) == 1, "guest was rebooted"
        ticks = guest.ticks_after_last_boot(console)
        assert ticks == list(range(1, len(ticks) + 1)), "tick counter reset"
        assert ticks[-1] >= before[u] + 4               # kept running throughout
        rec = agent.api.get_instance(agent.host, u)
        assert (rec["vm_state"], rec["task_state"], rec["power_state"]) == (
            "active", None, "RUNNING")
    assert_matches_libvirt(agent, uuids)
    for u in uuids:
        agent.api.terminate_instance(agent.host, u)
    for u in uuids:
        agent.wait_state(u, {"deleted"})


def test_kill_9_mid_spawn_leaves_no_orphans(agent):
    import uuid as uuidlib
    u = str(uuidlib.uuid4())
    agent.api.build_and_run_instance(agent.host, u, "midspawn", {"vcpus": 1, "memory_mb": 128,
                                                                  "root_gb": 1},
                                     agent.images["disk"])
    kill_when(agent, u, "spawning")
    agent.restart_agent()
    rec = agent.wait_settled(u)
    assert rec["vm_state"] in ("error", "active")
    if rec["vm_state"] == "error":       # interrupted: cleaned up, with its reason
        assert "BuildInterrupted" in rec["fault"]
        assert u not in domains()
        assert not os.path.exists(os.path.join(agent.instances_path, u))
    assert_matches_libvirt(agent, [u])
    agent.api.terminate_instance(agent.host, u)
    agent.wait_state(u, {"deleted"})
    assert u not in domains()


def test_kill_9_mid_hard_reboot_is_retried(agent):
    u = agent.boot("midreboot")
    agent.api.reboot_instance(agent.host, u, "HARD")
    kill_when(agent, u, "rebooting_hard")
    agent.restart_agent()
    rec = agent.wait_settled(u)
    assert (rec["vm_state"], rec["power_state"]) == ("active", "RUNNING")
    agent.wait_console(u, lambda c: guest.boots(c) >= 2, "boot after the retried reboot")
    # a retry, not a reboot that had finished: the killed agent's action
    # never finished, and the restarted agent ran the reboot again
    reboots = [a for a in agent.api.list_instance_actions(agent.host, u)
               if a["action"] == "reboot"]
    assert [a["finish_time"] is None for a in reboots] == [True, False], reboots
    assert_matches_libvirt(agent, [u])
    agent.api.terminate_instance(agent.host, u)
    agent.wait_state(u, {"deleted"})


def test_kill_9_mid_delete_is_completed(agent):
    u = agent.boot("middelete")
    agent.api.terminate_instance(agent.host, u)
    kill_when(agent, u, "deleting")
    agent.restart_agent()
    rec = agent.wait_state(u, {"deleted"})
    assert rec["task_state"] is None
    assert u not in domains()
    assert not os.path.exists(os.path.join(agent.instances_path, u))


def test_resume_after_agent_restart(agent):
    u = agent.boot("suspend-restart")
    agent.api.suspend_instance(agent.host, u)
    agent.wait_settled(u)
    stopped_at = guest.last_tick(agent.console(u))
    agent.kill_agent()
    agent.restart_agent()
    assert agent.api.get_instance(agent.host, u)["vm_state"] == "suspended"
    agent.api.resume_instance(agent.host, u)
    assert agent.wait_settled(u)["vm_state"] == "active"
    console = agent.wait_console(u, lambda c: guest.last_tick(c) > stopped_at, "a new tick")
    assert guest.boots(console) == 1
    agent.api.terminate_instance(agent.host, u)
    agent.wait_state(u, {"deleted"})
