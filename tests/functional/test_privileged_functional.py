"""The privileged entry points, through real privsep daemons forked the
way the agent forks them, in a network namespace of their own: hostile
arguments (a device the agent did not make, a path outside its roots, an
argument that would be read as an option, a ruleset naming chains or
tables that are not the agent's) are refused and change nothing, while
the agent's own requests work; the daemons hold only their listed
capabilities, and the caller, once dropped, none (needs root)."""
import json
import os
import pwd
import shutil
import subprocess
import sys
import uuid

import pytest

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for a netns")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SCRIPT = r"""
import json, os, sys
from compute import identity
from privileged import Refused, logs, network as priv

mode, state, instances, agent_user = sys.argv[1:5]
identity.become(agent_user, state, instances, ["uplink0"])
hostile = {
    "delete a device the agent did not make": lambda: priv.delete_link("foreign0"),
    "delete an uplink": lambda: priv.delete_link("uplink0"),
    "mtu of a foreign device": lambda: priv.set_mtu("foreign0", 1400),
    "foreign device into a bridge": lambda: priv.set_master("foreign0", "brcatest"),
    "address on a foreign device": lambda: priv.address("add", "foreign0", "192.0.2.9/24"),
    "option as a device": lambda: priv.set_up("-all"),
    "option as an address": lambda: priv.address("add", "uplink0", "-6"),
    "option as a bridge name": lambda: priv.create_link("-force", "net1", "bridge"),
    "alias injection": lambda: priv.create_link("brcax", 'n"\nlink del foreign0', "bridge"),
    "bridge not named the agent's way": lambda: priv.create_link("br0", "net1", "bridge"),
    "vlan on a device that is no uplink": lambda: priv.create_link(
        "foreign0.5", "net1", "vlan", lower="foreign0", vlan_id=5),
    "rule in a chain not the agent's": lambda: priv.iptables_restore(
        4, "*filter\n-A FORWARD -j DROP\nCOMMIT\n"),
    "flush of a built-in chain": lambda: priv.iptables_restore(4, "*filter\n-F INPUT\nCOMMIT\n"),
    "another table's ruleset": lambda: priv.nft_apply(
        "table inet filter\ndelete table inet filter\n"),
    "a second statement on our table's line": lambda: priv.nft_apply(
        "table bridge compute_agent ; delete table inet filter\n"),
    "nft include": lambda: priv.nft_apply('include "/etc/passwd"\n'),
    "dnsmasq with a script": lambda: priv.start_dnsmasq(
        ["dnsmasq", "--dhcp-script=/bin/sh", f"--pid-file={state}/dhcp/n1/pid"]),
    "dnsmasq files outside state_path": lambda: priv.start_dnsmasq(
        ["dnsmasq", "--pid-file=/etc/x/pid"]),
    "signal through a path": lambda: priv.signal_dnsmasq("../../..", "TERM"),
    "a signal other than HUP or TERM": lambda: priv.signal_dnsmasq("n1", "KILL"),
    "console log outside instances_path": lambda: logs.console_tail("/etc", 100),
    "console log through ..": lambda: logs.console_tail(instances + "/../..", 100),
}
own = [lambda: priv.create_link("brcatest", "net1", "bridge"),
       lambda: priv.set_master("uplink0", "brcatest"),
       lambda: priv.address("add", "brcatest", "10.9.0.1/24"),
       lambda: priv.iptables_restore(4, "*filter\n:ca-test - [0:0]\n-A ca-test -j RETURN\n"
                                        "-I FORWARD 1 -j ca-test\nCOMMIT\n")]
result = {}
if mode == "hostile":
    for what, call in hostile.items():
        try:
            call()
            result[what] = "accepted"
        except Refused:
            result[what] = "refused"
        except Exception as e:
            result[what] = f"{type(e).__name__}: {e}"
else:
    for call in own:
        call()

def status(pid):
    lines = open(f"/proc/{pid}/status").read().splitlines()
    d = dict(l.split(":\t", 1) for l in lines if ":\t" in l)
    return {k: d[k].split()[0] for k in ("CapEff", "CapPrm", "CapAmb", "Uid", "NoNewPrivs")}

children = [p for p in os.listdir("/proc") if p.isdigit()
            and open(f"/proc/{p}/stat").read().rsplit(") ", 1)[1].split()[1] == str(os.getpid())]
print(json.dumps({"result": result, "self": status("self"),
                  "daemons": [status(p) for p in children]}))
"""

CAPS = {"CAP_NET_ADMIN": 12, "CAP_NET_RAW": 13, "CAP_NET_BIND_SERVICE": 10,
        "CAP_DAC_READ_SEARCH": 2}
AMBIENT = ",".join(f"+{c[4:].lower()}" for c in CAPS)


@pytest.fixture
def netns(tmp_path):
    name = "ca-priv-" + uuid.uuid4().hex[:8]
    subprocess.run(["ip", "netns", "add", name], check=True)
    for dev in ("foreign0", "uplink0"):
        subprocess.run(["ip", "-n", name, "link", "add", dev, "type", "veth", "peer", "name",
                        dev[:-1] + "1"], check=True)      # no dummy driver here
    yield name
    subprocess.run(["ip", "netns", "del", name], check=True)


def snapshot(ns):
    def run(*argv):
        return subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True,
                              text=True, check=True).stdout
    return {"links": run("ip", "-o", "link", "show"), "addrs": run("ip", "-o", "addr", "show"),
            "ipt": [x for x in run("iptables-save").splitlines() if not x.startswith("#")],
            "nft": run("nft", "list", "ruleset")}


def run_in(ns, tmp_path, mode, as_root=False):
    """SCRIPT in ns, started as systemd starts the agent (its user, the
    ambient capabilities of the unit) or, as_root, as root."""
    state = tmp_path / "state"
    (state / "instances").mkdir(parents=True)
    shutil.chown(state, "compute-agent")
    shutil.chown(state / "instances", "compute-agent")
    os.chmod(tmp_path, 0o755)
    start = [] if as_root else [
        "setpriv", "--reuid=compute-agent", "--regid=compute-agent", "--init-groups",
        f"--inh-caps={AMBIENT}", f"--ambient-caps={AMBIENT}", f"--bounding-set=-all,{AMBIENT}"]
    out = subprocess.run(["ip", "netns", "exec", ns, *start, sys.executable, "-c", SCRIPT, mode,
                          str(state), str(state / "instances"), "compute-agent"], cwd=ROOT,
                         capture_output=True, text=True, env={**os.environ, "PYTHONPATH": ROOT})
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.splitlines()[-1])


def mask(*names):
    return f"{sum(1 << CAPS[n] for n in names):016x}"


def test_hostile_arguments_are_refused_and_change_nothing(netns, tmp_path):
    before = snapshot(netns)
    result = run_in(netns, tmp_path, "hostile")["result"]
    assert len(result) == 22
    assert {what: r for what, r in result.items() if r != "refused"} == {}
    assert snapshot(netns) == before


def test_the_agents_own_requests_work(netns, tmp_path):
    run_in(netns, tmp_path, "own")
    after = snapshot(netns)
    assert "brcatest" in after["links"] and "master brcatest" in after["links"]
    assert "10.9.0.1/24" in after["addrs"]
    assert "-A FORWARD -j ca-test" in after["ipt"]


@pytest.mark.parametrize("as_root", [False, True], ids=["as-systemd-starts-it", "as-root"])
def test_agent_drops_everything_and_each_daemon_holds_only_its_capabilities(
        netns, tmp_path, as_root):
    found = run_in(netns, tmp_path, "own", as_root)
    uid = str(pwd.getpwnam("compute-agent").pw_uid)
    assert found["self"] == {"CapEff": "0" * 16, "CapPrm": "0" * 16, "CapAmb": "0" * 16,
                             "Uid": uid, "NoNewPrivs": "1"}
    net = mask("CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_NET_BIND_SERVICE")
    logs = mask("CAP_DAC_READ_SEARCH")
    assert sorted((d["CapEff"], d["CapPrm"], d["CapAmb"], d["Uid"])
                  for d in found["daemons"]) == sorted([(net, net, net, uid),
                                                        (logs, logs, logs, uid)])
