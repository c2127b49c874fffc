"""computectl as an operator uses it: real commands, exit codes and output,
against a real agent and guest."""
import json
import os
import re
import shutil
import subprocess
import sys

from imagecache.glance import GlanceClient
from tests.harness import guest

CTL = os.path.join(os.path.dirname(sys.executable), "computectl")


def ctl(agent, *args, check=True):
    proc = subprocess.run([CTL, "--config-file", agent.config_file, *args],
                          capture_output=True, text=True, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"computectl {args} failed: {proc.stderr}")
    return proc


def test_operator_session(agent):
    host = ["--host", agent.host]
    rec = json.loads(ctl(agent, "--json", "boot", *host, "--image", agent.images["disk"],
                         "--flavor", "vcpus=1,ram=128,disk=1", "cli-guest").stdout)
    u = rec["uuid"]
    assert rec["vm_state"] == "active"
    agent.wait_console(u, lambda c: guest.DISK_MARKER in c, "boot")
    assert u in ctl(agent, "list", *host).stdout
    assert "TB: boot-ok" in ctl(agent, "console-log", *host, "--length", "50", u).stdout
    assert json.loads(ctl(agent, "--json", "diagnostics", *host, u).stdout)["cpu_time_ns"] > 0

    assert json.loads(ctl(agent, "--json", "pause", *host, u).stdout)["vm_state"] == "paused"
    refused = ctl(agent, "pause", *host, u, check=False)       # illegal: already paused
    assert refused.returncode != 0 and "cannot pause" in refused.stderr
    assert json.loads(ctl(agent, "--json", "unpause", *host, u).stdout)["vm_state"] == "active"
    assert json.loads(ctl(agent, "--json", "reboot", "--hard", *host, u).stdout)[
        "power_state"] == "RUNNING"
    actions = json.loads(ctl(agent, "--json", "actions", *host, u).stdout)
    assert [a["action"] for a in actions] == ["create", "pause", "unpause", "reboot"]

    cache = json.loads(ctl(agent, "--json", "image-cache", *host).stdout)
    assert cache["bases"] >= 3 and cache["hits"] + cache["misses"] >= 3
    assert json.loads(ctl(agent, "--json", "cache-image", *host,
                          agent.images["disk"]).stdout)[0]["present"]

    snap = ctl(agent, "snapshot", *host, "--name", "cli-snap", u)     # progress on stderr
    assert "snapshot image_" in snap.stderr
    assert agent.api.get_instance(agent.host, u)["task_state"] is None
    image_id = re.search(r"^image_id\s+(\S+)$", snap.stdout, re.M).group(1)
    assert GlanceClient([agent.image_url]).show(image_id)["status"] == "active"

    assert json.loads(ctl(agent, "--json", "delete", *host, u).stdout)["vm_state"] == "deleted"
    bad = ctl(agent, "boot", *host, "--image", "a/b", "--flavor", "vcpus=1,ram=128,disk=1",
              "x", check=False)
    assert bad.returncode == 1 and "image_id" in bad.stderr
    bad = ctl(agent, "boot", *host, "--image", "x", "--flavor", "vcpus=one", "x", check=False)
    assert bad.returncode == 1 and "vcpus must be an integer" in bad.stderr


def test_tools_run_as_root_before_the_first_start_leave_the_agent_startable():
    """An operator (root) tries `computectl service-list` before the agent's
    first start: before, that made the agent's SQLite file, root's, and the
    agent then died at start with an unhandled `attempt to write a readonly
    database`.  Now computectl never opens the host's own database (it asks
the agent, which does not answer yet) and says so; a state file that
    is not the agent's (root made it some other way) stops the agent at once
    with what to run; after the chown it starts."""
    import sqlite3

    from tests.harness.agent import Agent, wait_until
    agent = Agent()
    try:
        agent.write_config()
        db_file = os.path.join(agent.state_path, "compute.sqlite")
        listed = ctl(agent, "service-list", check=False)
        assert listed.returncode != 0
        assert "never opens a host's own state database" in listed.stderr, listed.stderr
        assert not os.path.exists(db_file)

        sqlite3.connect(db_file).close()                 # root's, as a tool made it
        assert os.path.exists(db_file) and os.stat(db_file).st_uid == 0
        agent._start_image_service()
        agent._start_agent()
        proc = agent.procs["compute-agent"]
        wait_until(lambda: proc.poll() is not None, 60, 0.2, "the agent to refuse to start")
        assert proc.returncode != 0
        log = agent.log()
        assert f"{db_file} is owned by root, not by compute-agent" in log, log[-2000:]
        assert f"chown compute-agent: {db_file}" in log
        assert "readonly database" not in log

        shutil.chown(db_file, "compute-agent", "compute-agent")
        agent._start_agent()
        agent.connect()
        wait_until(agent._answers, 60, 0.2, "compute-agent to answer ping")
        services = json.loads(ctl(agent, "--json", "service-list").stdout)
        assert agent.host in {s["host"] for s in services}
    finally:
        agent.stop()
