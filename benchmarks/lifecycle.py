"""Lifecycle latency: each power operation through the agent (RPC call to
the end of its instance action) beside the same libvirt calls made directly
on an identical guest, in the same run.  Prints one JSON object.

    .venv/bin/python benchmarks/lifecycle.py [--rounds 5]

Needs libvirtd and RabbitMQ (tools/start-daemons.sh); starts its own
compute-images and compute-agent and removes every guest it made.
"""
import argparse
import datetime
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import types
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import libvirt  # noqa: E402

from benchmarks import smoke  # noqa: E402
from tests.harness import guest  # noqa: E402
from tests.harness.agent import LIBVIRT_URI, Agent, wait_until  # noqa: E402
from virt.libvirt import builder  # noqa: E402
from virt.libvirt.xml.domain import Domain  # noqa: E402

OPS = ["pause", "unpause", "suspend", "resume", "reboot_hard", "reboot_soft", "stop", "start",
       "terminate"]


# the keys its JSON always has (benchmarks/smoke.py checks them)
KEYS = ('rounds', 'ops')


def ts(iso):
    return datetime.datetime.fromisoformat(iso.rstrip("Z")).replace(
        tzinfo=datetime.UTC).timestamp()


class AgentSide:
    def __init__(self, agent, u):
        self.agent, self.u = agent, u

    def run(self, op):
        """Seconds from the call to the end of the operation's action."""
        api, host, u = self.agent.api, self.agent.host, self.u
        n = len(api.list_instance_actions(host, u))
        t0 = time.time()
        if op.startswith("reboot"):
            api.reboot_instance(host, u, op.split("_")[1].upper())
        elif op == "terminate":
            api.terminate_instance(host, u)
        else:
            getattr(api, f"{op}_instance")(host, u)

        def finished():
            acts = api.list_instance_actions(host, u)
            return len(acts) > n and acts[-1]["finish_time"] and acts[-1]
        action = wait_until(finished, 120, 0.05, f"{op} to finish")
        return ts(action["finish_time"]) - t0

    def console(self):
        return self.agent.console(self.u)


class DirectSide:
    """The same guest defined straight in libvirt, driven by hand."""

    def __init__(self, conn, template, workdir, base):
        self.u = str(uuid.uuid4())
        self.dir = os.path.join(workdir, self.u)
        os.makedirs(self.dir)
        disk = os.path.join(self.dir, "disk")
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", base, "-F", "raw",
                        disk, str(1024 ** 3)], check=True)
        dom = Domain.parse(template)
        dom.uuid, dom.name = self.u, "direct-" + self.u
        dom.sysinfo = builder.build_sysinfo(types.SimpleNamespace(uuid=self.u))  # the agent's
        dom.devices.disks[0].source_file = disk
        dom.devices.serials[0].source_path = os.path.join(self.dir, "console.log")
        self.conn = conn
        self.dom = conn.defineXML(dom.to_xml())
        self.dom.create()

    def _wait_off(self):
        wait_until(lambda: self.dom.state()[0] == libvirt.VIR_DOMAIN_SHUTOFF, 120, 0.01,
                   "direct guest off")

    def run(self, op):
        d = self.dom
        steps = {
            "pause": d.suspend, "unpause": d.resume,
            "suspend": lambda: d.managedSave(0), "resume": d.create,
            "reboot_hard": lambda: (d.destroy(), d.create()),
            "reboot_soft": lambda: (d.shutdown(), self._wait_off(), d.create()),
            "stop": lambda: (d.shutdown(), self._wait_off()),
            "start": d.create,
            "terminate": lambda: (d.destroy(), d.undefineFlags(
                libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE), shutil.rmtree(self.dir)),
        }
        t0 = time.perf_counter()
        steps[op]()
        return time.perf_counter() - t0

    def console(self):
        try:
            with open(os.path.join(self.dir, "console.log"), errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""


def wait_booted(side, boots):
    wait_until(lambda: guest.boots(c := side.console()) >= boots and guest.last_tick(
        c.rsplit(guest.BOOT_MARKER, 1)[-1] + "\n") >= 1 and c, 120, 0.2, "guest boot")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=5)
    args = smoke.arguments(p, rounds=1)
    times = {op: {"agent": [], "direct": []} for op in OPS}
    agent = Agent().start()
    conn = libvirt.open(LIBVIRT_URI)
    directs = []
    try:
        agent.upload_test_guest()
        u = agent.boot("bench-lifecycle")
        with open(os.path.join(agent.instances_path, u, "libvirt.xml")) as f:
            template = f.read()
        base = json.loads(subprocess.run(
            ["qemu-img", "info", "-U", "--output=json",
             os.path.join(agent.instances_path, u, "disk")],
            check=True, capture_output=True, text=True).stdout)["backing-filename"]
        workdir = os.path.join(agent.workdir, "direct")
        direct = DirectSide(conn, template, workdir, base)
        directs.append(direct)
        sides = {"agent": AgentSide(agent, u), "direct": direct}
        boots = {"agent": 1, "direct": 1}
        for side in sides.values():
            wait_booted(side, 1)
        for _ in range(args.rounds):
            for op in OPS[:-1]:
                for name, side in sides.items():
                    times[op][name].append(side.run(op))
                    if op in ("reboot_hard", "reboot_soft", "start"):
                        boots[name] += 1
                        wait_booted(side, boots[name])
        for _ in range(args.rounds):           # terminate: a fresh pair each round
            a = AgentSide(agent, agent.boot("bench-term", wait_console=False))
            d = DirectSide(conn, template, workdir, base)
            times["terminate"]["agent"].append(a.run("terminate"))
            times["terminate"]["direct"].append(d.run("terminate"))
        agent.api.terminate_instance(agent.host, u)
        agent.wait_state(u, {"deleted"})
        print(json.dumps({"rounds": args.rounds, "ops": {
            op: {"agent_median_s": round(statistics.median(t["agent"]), 4),
                 "direct_median_s": round(statistics.median(t["direct"]), 4)}
            for op, t in times.items()}}, indent=2))
    finally:
        for d in directs:
            try:
                d.dom.destroy()
            except libvirt.libvirtError:
                pass
            try:
                d.dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE)
            except libvirt.libvirtError:
                pass
        conn.close()
        agent.close()


if __name__ == "__main__":
    main()
