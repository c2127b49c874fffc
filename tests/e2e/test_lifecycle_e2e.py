"""Every power operation on real guests, checked inside the guest through
its serial console (uptime, boot count, tick counter), not by libvirt's
word alone."""
import os
import time
import uuid

from tests.harness import guest
from tests.harness.agent import LIBVIRT_URI, wait_until


def libvirt_state(uuid_):
    import libvirt
    conn = libvirt.open(LIBVIRT_URI)
    try:
        dom = conn.lookupByUUIDString(uuid_)
        return dom.state()[0], dom.hasManagedSaveImage(0)
    except libvirt.libvirtError:
        return None, 0
    finally:
        conn.close()


def events(agent, u, action):
    acts = [a for a in agent.api.list_instance_actions(agent.host, u) if a["action"] == action]
    return [e["event"] for e in acts[-1]["events"]]


def test_hard_reboot_restarts_the_guest(agent):
    u = agent.boot("hard")
    agent.api.reboot_instance(agent.host, u, "HARD")
    rec = agent.wait_settled(u)
    assert (rec["vm_state"], rec["power_state"]) == ("active", "RUNNING")
    console = agent.wait_console(u, lambda c: "TB: bootcount=2" in c, "second boot")
    assert guest.boots(console) == 2               # same disk, booted again
    assert guest.ticks_after_last_boot(agent.wait_console(
        u, lambda c: guest.ticks_after_last_boot(c), "tick after reboot"))[0] == 1
    agent.api.terminate_instance(agent.host, u)


def test_soft_reboot_shuts_down_cleanly_and_boots_again(agent):
    u = agent.boot("soft")
    agent.api.reboot_instance(agent.host, u, "SOFT")
    assert agent.wait_settled(u)["vm_state"] == "active"
    console = agent.wait_console(u, lambda c: guest.boots(c) == 2, "second boot")
    assert "hard_reboot_fallback" not in events(agent, u, "reboot")
    first_boot = console.split(guest.BOOT_MARKER)[1]
    assert "TB: acpi-poweroff" in first_boot                 # the guest shut down itself
    agent.api.terminate_instance(agent.host, u)


def test_soft_reboot_of_guest_ignoring_acpi_falls_back_to_hard(agent):
    image = agent.upload_variant("console=ttyS0 quiet tb.name=deaf tb.noacpi=1")
    u = agent.boot("deaf", image=image)
    agent.api.reboot_instance(agent.host, u, "SOFT")
    rec = agent.wait_settled(u)
    assert (rec["vm_state"], rec["power_state"]) == ("active", "RUNNING")
    console = agent.wait_console(u, lambda c: guest.boots(c) == 2, "second boot")
    assert "hard_reboot_fallback" in events(agent, u, "reboot")
    assert "TB: acpi-poweroff" not in console
    agent.api.terminate_instance(agent.host, u)


def test_stop_of_a_guest_ignoring_acpi_powers_it_off_after_shutdown_timeout(agent):
    image = agent.upload_variant("console=ttyS0 quiet tb.name=deaf tb.noacpi=1")
    u = agent.boot("deaf-stop", image=image)
    started = time.monotonic()
    agent.api.stop_instance(agent.host, u)
    rec = agent.wait_settled(u)
    waited = time.monotonic() - started
    assert (rec["vm_state"], rec["power_state"]) == ("stopped", "SHUTDOWN")
    assert "forced_power_off" in events(agent, u, "stop")
    assert waited >= agent.conf.shutdown_timeout            # it was given its time first
    assert "TB: acpi-poweroff" not in agent.console(u)
    agent.api.terminate_instance(agent.host, u)


def test_suspend_resume_continues_where_it_stopped(agent):
    u = agent.boot("suspend")
    agent.wait_console(u, lambda c: guest.last_tick(c) >= 2, "two ticks")
    agent.api.suspend_instance(agent.host, u)
    rec = agent.wait_settled(u)
    assert (rec["vm_state"], rec["power_state"]) == ("suspended", "SHUTDOWN")
    assert libvirt_state(u)[1] == 1                     # a managed-save image
    assert agent.api.get_host_status(agent.host)["saved_state_bytes"] > 0
    stopped_at = guest.last_tick(agent.console(u))
    time.sleep(3)
    assert guest.last_tick(agent.console(u)) == stopped_at   # nothing runs while saved
    agent.api.resume_instance(agent.host, u)
    assert agent.wait_settled(u)["vm_state"] == "active"
    console = agent.wait_console(u, lambda c: guest.last_tick(c) > stopped_at, "a new tick")
    assert guest.boots(console) == 1                    # not rebooted
    assert guest.last_tick(console) in (stopped_at + 1, stopped_at + 2)
    assert libvirt_state(u)[1] == 0
    agent.api.terminate_instance(agent.host, u)


def test_pause_unpause_continues(agent):
    u = agent.boot("pause")
    agent.api.pause_instance(agent.host, u)
    rec = agent.wait_settled(u)
    assert (rec["vm_state"], rec["power_state"]) == ("paused", "PAUSED")
    time.sleep(1.5)
    paused_at = guest.last_tick(agent.console(u))
    time.sleep(3)
    assert guest.last_tick(agent.console(u)) == paused_at    # vCPUs stopped
    agent.api.unpause_instance(agent.host, u)
    assert agent.wait_settled(u)["vm_state"] == "active"
    console = agent.wait_console(u, lambda c: guest.last_tick(c) > paused_at, "a new tick")
    assert guest.boots(console) == 1 and guest.last_tick(console) <= paused_at + 2
    agent.api.terminate_instance(agent.host, u)


def test_stop_start_and_diagnostics(agent):
    u = agent.boot("stopstart")
    diag = agent.api.get_diagnostics(agent.host, u)
    assert diag["cpu_time_ns"] > 0 and diag["disks"]["vda"]["rd_bytes"] > 0
    agent.api.stop_instance(agent.host, u)
    rec = agent.wait_settled(u)
    assert (rec["vm_state"], rec["power_state"]) == ("stopped", "SHUTDOWN")
    assert "forced_power_off" not in events(agent, u, "stop")   # the guest obeyed ACPI
    assert "TB: acpi-poweroff" in agent.console(u)
    agent.api.start_instance(agent.host, u)
    assert agent.wait_settled(u)["power_state"] == "RUNNING"
    console = agent.wait_console(u, lambda c: "TB: bootcount=2" in c, "boot after start")
    assert guest.boots(console) == 2
    agent.api.terminate_instance(agent.host, u)


def test_guest_powering_itself_off_becomes_stopped(agent):
    image = agent.upload_variant("console=ttyS0 quiet tb.name=halt tb.halt=1")
    u = agent.boot("halt", image=image, wait_console=False)
    rec = wait_until(lambda: (r := agent.api.get_instance(agent.host, u))["vm_state"]
                     == "stopped" and r, 90, 0.5, "the instance to become STOPPED")
    assert rec["power_state"] == "SHUTDOWN" and rec["task_state"] is None
    assert guest.BOOT_MARKER in agent.console(u)
    agent.api.terminate_instance(agent.host, u)


def test_reset_state_active_then_hard_reboot(agent):
    u = agent.boot("reset")
    assert agent.api.reset_state(agent.host, u, "error")["vm_state"] == "error"
    rec = agent.api.reset_state(agent.host, u, "active")
    assert (rec["vm_state"], rec["task_state"]) == ("active", None)
    agent.api.reboot_instance(agent.host, u, "HARD")
    rec = agent.wait_settled(u)
    assert (rec["vm_state"], rec["power_state"]) == ("active", "RUNNING")
    agent.wait_console(u, lambda c: guest.boots(c) == 2, "boot after hard reboot")
    agent.api.terminate_instance(agent.host, u)


def test_terminate_from_every_state_leaves_nothing(agent):
    uuids = {name: agent.boot(name) for name in ("t-run", "t-pause", "t-susp", "t-stop")}
    agent.api.pause_instance(agent.host, uuids["t-pause"])
    agent.api.suspend_instance(agent.host, uuids["t-susp"])
    agent.api.stop_instance(agent.host, uuids["t-stop"])
    for u in uuids.values():
        agent.wait_settled(u)
    assert libvirt_state(uuids["t-susp"])[1] == 1
    agent.api.reset_state(agent.host, uuids["t-run"], "error")
    for u in uuids.values():
        agent.api.terminate_instance(agent.host, u)
    for u in uuids.values():
        agent.wait_state(u, {"deleted"})
        assert libvirt_state(u) == (None, 0)
        assert not os.path.exists(os.path.join(agent.instances_path, u))
    assert agent.api.get_host_status(agent.host)["saved_state_bytes"] == 0


def sample(page, name, **labels):
    """The value of one sample on a /metrics page (0 when absent)."""
    want = name + ("{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"
                   if labels else "")
    for line in page.splitlines():
        if line.startswith(want + " "):
            return float(line.split()[-1])
    return 0.0


def test_the_metrics_endpoint_counts_builds_reboots_and_a_failed_build(agent):
    """After a build, a hard reboot and a build whose image is gone, the
    agent's /metrics page shows the operations by action (the failure
    counted), their latency, the RPC methods handled, the instances by
    state, the claims and the image cache."""
    before = agent.metrics()
    u = agent.boot("metrics")
    agent.api.reboot_instance(agent.host, u, "HARD")
    agent.wait_settled(u)
    bad = str(uuid.uuid4())
    agent.api.build_and_run_instance(agent.host, bad, "gone", {"vcpus": 1, "memory_mb": 64,
                                                               "root_gb": 1},
                                     "f" * 8 + "-0000-4000-8000-" + "0" * 12)
    assert agent.wait_state(bad, {"error"})["vm_state"] == "error"
    page = agent.metrics()

    def grew(name, by=1, **labels):
        return sample(page, name, **labels) - sample(before, name, **labels) >= by

    assert grew("compute_agent_operations_total", 2, action="create")
    assert grew("compute_agent_operation_failures_total", action="create")
    assert grew("compute_agent_operations_total", action="reboot")
    assert grew("compute_agent_operation_seconds_count", action="reboot")
    assert sample(page, "compute_agent_operation_seconds_sum", action="reboot") > 0
    assert grew("compute_agent_rpc_seconds_count", 2, method="build_and_run_instance")
    assert sample(page, "compute_agent_instances", vm_state="active") >= 1
    assert sample(page, "compute_agent_instances", vm_state="error") >= 1
    assert sample(page, "compute_agent_claimed", resource="memory_mb") >= 128
    assert sample(page, "compute_agent_capacity", resource="vcpus") >= 1
    assert sample(page, "compute_agent_image_cache_bytes") > 0
    assert sample(page, "compute_agent_image_cache_lookups_total", result="hit") + \
        sample(page, "compute_agent_image_cache_lookups_total", result="miss") >= 1
    for x in (u, bad):
        agent.api.terminate_instance(agent.host, x)
        agent.wait_state(x, {"deleted"})
