"""computectl as an operator uses it: real commands, exit codes and output,
against a real agent and guest."""
import json
import os
import re
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
