"""The agent as systemd runs it (every e2e agent starts so: its own user,
with its privsep daemons' capabilities as ambient ones): it forks those
daemons and keeps no capability itself; each daemon keeps only its own;
nothing is root; a guest still spawns, and the qemu-img that reads the
downloaded image runs as compute-agent, with no capability and
no_new_privs (recorded by a qemu-img wrapper on the agent's PATH)."""
import os
import pwd
import shutil
import socket

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
    # systemd's side of Type=notify and WatchdogSec=2
    a.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock = os.path.join(a.workdir, "notify.sock")
    a.notify.bind(sock)
    os.chmod(sock, 0o666)
    a.agent_env = {"PATH": bindir + ":" + os.environ["PATH"], "NOTIFY_SOCKET": sock,
                   "WATCHDOG_USEC": "2000000"}
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
    daemons = [status(c) for c in children(pid)]
    net = f"{sum(1 << c for c in (12, 13, 10)):016x}"   # NET_ADMIN, NET_RAW, NET_BIND_SERVICE
    logs = f"{1 << 2:016x}"                             # DAC_READ_SEARCH
    assert sorted((d["CapEff"], d["CapPrm"], d["CapAmb"], d["Uid"].split()[0])
                  for d in daemons) == sorted([(net, net, net, str(uid)),
                                               (logs, logs, logs, str(uid))])


def test_agent_tells_systemd_it_is_ready_and_feeds_the_watchdog(agent):
    agent.notify.settimeout(10)
    got = []
    while sum(m.startswith("WATCHDOG=1") for m in got) < 3:
        got.append(agent.notify.recv(4096).decode())
    ready = next(i for i, m in enumerate(got) if "READY=1" in m)
    assert f"STATUS=serving RPC as {agent.host}" in got[ready]
    assert any("libvirt connected" in m for m in got)
    assert agent.api.ping(agent.host)


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
