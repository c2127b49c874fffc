"""The agent as an operator runs it: started as root, it forks its privsep
daemons and becomes compute-agent; a guest still spawns, and the qemu-img
that reads the downloaded image runs as compute-agent, with no capability
and no_new_privs (recorded by a qemu-img wrapper on the agent's PATH)."""
import os
import pwd
import shutil

import pytest

from tests.harness.agent import Agent

WRAPPER = """#!/bin/sh
echo "$(id -u) $(grep -E '^(CapEff|NoNewPrivs):' /proc/self/status | tr -s '\\t\\n' '  ') $*" \\
  >> {log}
exec {real} "$@"
"""


def status(pid):
    with open(f"/proc/{pid}/status") as f:
        return dict(line.split(":\t", 1) for line in f.read().splitlines() if ":\t" in line)


def children(pid):
    found = []
    for p in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{p}/stat") as f:
                if f.read().rsplit(") ", 1)[1].split()[1] == str(pid):
                    found.append(int(p))
        except OSError:
            pass
    return found


@pytest.fixture(scope="module")
def agent():
    a = Agent()
    bindir = os.path.join(a.workdir, "bin")
    os.makedirs(bindir)
    a.qemu_img_log = os.path.join(a.workdir, "qemu-img.log")
    open(a.qemu_img_log, "w").close()
    os.chmod(a.qemu_img_log, 0o666)
    with open(os.path.join(bindir, "qemu-img"), "w") as f:
        f.write(WRAPPER.format(log=a.qemu_img_log, real=shutil.which("qemu-img")))
    os.chmod(os.path.join(bindir, "qemu-img"), 0o755)
    a.agent_env = {"PATH": bindir + ":" + os.environ["PATH"]}
    a.start()
    a.upload_test_guest()
    yield a
    a.close()


def test_agent_runs_as_its_user_with_no_capabilities(agent):
    pid = agent.procs["compute-agent"].pid
    me = status(pid)
    uid = pwd.getpwnam("compute-agent").pw_uid
    assert me["Uid"].split() == [str(uid)] * 4
    assert me["CapEff"] == me["CapPrm"] == me["CapInh"] == me["CapAmb"] == "0" * 16
    assert me["NoNewPrivs"] == "1"
    daemons = {status(c)["CapEff"] for c in children(pid) if status(c)["Name"] != "qemu-img"}
    net = sum(1 << c for c in (12, 13, 10, 7, 6, 5, 1))       # privileged.net_admin
    logs = 1 << 2                                            # privileged.read_logs
    assert daemons == {f"{net:016x}", f"{logs:016x}"}


def test_qemu_img_on_downloaded_bytes_runs_unprivileged(agent):
    u = agent.boot()
    uid = pwd.getpwnam("compute-agent").pw_uid
    with open(agent.qemu_img_log) as f:
        runs = f.read().splitlines()
    checks = [r for r in runs if " check " in r]
    assert checks, runs                         # the downloaded disk was checked
    for run in runs:
        assert run.split()[:5] == [str(uid), "CapEff:", "0" * 16, "NoNewPrivs:", "1"], run
    agent.api.terminate_instance(agent.host, u)
