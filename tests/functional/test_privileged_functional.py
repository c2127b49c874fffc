"""The privileged entry points, through real privsep daemons forked the
way the agent forks them, in a network namespace of their own: hostile
arguments (a device the agent did not make, a path outside its roots, an
argument that would be read as an option, a ruleset naming chains or
tables that are not the agent's) are refused and change nothing, while
the agent's own requests work; the daemons hold only their listed
capabilities, and the caller, once dropped, none (needs root)."""
import json
import os
import pathlib
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
import uuid

import pytest

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for a netns")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SCRIPT = r"""
import copy, json, os, sys
from compute.agent import identity
from network import hoststate
from network.model import FloatingIP, Network, Port, Rule, SecurityGroup, Segmentation
from privileged import Refused, firewall, logs, network as priv

mode, state, instances, agent_user, guest = sys.argv[1:6]
identity.become(agent_user, state, instances, uplinks=["uplink0"], public_interface="pub0",
                floating_ranges=["203.0.113.0/24"], tunnel_ip="10.250.0.11",
                metadata_port=8775)
NET = Network("net1", "brcatest", Segmentation("flat"), "10.9.0.0/24", "10.9.0.1",
              dhcp=True, host_address="10.9.0.1", metadata=True)
PORT = Port("p1", "net1", "52:54:00:12:34:56", ("10.9.0.5",), ("all",))
ALL = {"all": SecurityGroup("all", (Rule("egress", "IPv4"), Rule("ingress", "IPv4")))}
STATE = hoststate.to_wire([(NET, PORT)], ALL,
                          [FloatingIP("203.0.113.10", "10.9.0.5", "p1", "10.9.0.0/24")],
                          [NET], True)


def edit(**changes):
    doc = copy.deepcopy(STATE)
    for path, value in changes.items():
        keys, target = path.split("__"), doc
        for k in keys[:-1]:
            target = target[int(k) if k.isdigit() else k]
        target[keys[-1]] = value
    return doc


def net_doc(**changes):
    return {**hoststate.network_doc(NET), **changes}


def symlink_log(target):
    planted = "00000000-0000-4000-8000-00000000000d"
    os.symlink(target, os.path.join(instances, planted, "console.log"))
    return logs.console_tail(planted, 100)


hostile = {
    # console logs: a uuid only, opened without following anything
    "console log symlinked to /etc/shadow": lambda: symlink_log("/etc/shadow"),
    "console log hard-linked to a root file": lambda: logs.console_tail(
        "00000000-0000-4000-8000-00000000000a", 100),
    "instance directory symlinked to /etc": lambda: logs.console_tail(
        "00000000-0000-4000-8000-00000000000b", 100),
    "console log that is a FIFO": lambda: logs.console_tail(
        "00000000-0000-4000-8000-00000000000c", 100),
    "a path instead of a uuid": lambda: logs.console_tail("/etc", 100),
    "a uuid that climbs": lambda: logs.console_tail("../../etc", 100),
    "a length out of range": lambda: logs.console_tail(guest, 10 ** 9),
    # devices
    "delete a device the agent did not make": lambda: priv.delete_link("foreign0"),
    "delete an uplink": lambda: priv.delete_link("uplink0"),
    "mtu of a foreign device": lambda: priv.set_mtu("foreign0", 1400),
    "foreign device into a bridge": lambda: priv.set_master("foreign0", "brcatest"),
    "option as a device": lambda: priv.set_up("-all"),
    "option as a bridge name": lambda: priv.create_link("-force", "net1", "bridge"),
    "alias injection": lambda: priv.create_link("brcax", 'n"\nlink del foreign0', "bridge"),
    "bridge not named the agent's way": lambda: priv.create_link("br0", "net1", "bridge"),
    "vlan on a device that is no uplink": lambda: priv.create_link(
        "foreign0.5", "net1", "vlan", lower="foreign0", vlan_id=5),
    "vxlan from another local address": lambda: priv.create_link(
        "vxlan-7", "net1", "vxlan", vni=7, local_ip="10.99.0.1"),
    "fdb peer on loopback": lambda: priv.fdb("append", "vxlan-7", "127.0.0.1"),
    # addresses
    "address on a foreign device": lambda: priv.address("add", "foreign0", "192.0.2.9/24"),
    "any address on an uplink": lambda: priv.address("add", "uplink0", "192.0.2.9/24"),
    "a subnet on the public interface": lambda: priv.address("add", "pub0", "203.0.113.9/24"),
    "a floating IP outside the ranges": lambda: priv.address("add", "pub0", "198.51.100.9/32"),
    "option as an address": lambda: priv.address("add", "uplink0", "-6"),
    "a bridge address in the management subnet": lambda: priv.address(
        "add", "brcatest", "10.250.0.99/24"),
    "a bridge address on loopback": lambda: priv.address("add", "brcatest", "127.0.0.9/8"),
    # the firewall: text, rules, and states that would reach the host
    "an iptables ruleset as text": lambda: firewall.apply_firewall(
        "*filter\n-A INPUT -j ACCEPT\nCOMMIT\n"),
    "a bare nft statement": lambda: firewall.apply_firewall("ip filter INPUT accept"),
    "an nft policy change": lambda: firewall.apply_firewall(
        "chain ip filter INPUT { policy accept; }"),
    "a hooked nat chain": lambda: firewall.apply_firewall(
        "table ip nat { chain x { type nat hook prerouting priority 0; } }"),
    "dup to and rename": lambda: firewall.apply_firewall(
        {"nft": "rename chain ip filter INPUT x; dup to 10.250.0.1"}),
    "a rule in the state": lambda: firewall.apply_firewall(
        {**STATE, "rules": [["-A", "INPUT", "-j", "ACCEPT"]]}),
    "a network on the management subnet": lambda: firewall.apply_firewall(
        edit(networks__net1__cidr="10.250.0.0/24", networks__net1__gateway="10.250.0.1",
             networks__net1__host_address="10.250.0.1", ports__0__fixed_ips=["10.250.0.5"],
             floating_ips=[])),
    "DNAT of a floating IP to the management network": lambda: firewall.apply_firewall(
        edit(floating_ips__0__fixed_ip="10.250.0.12")),
    "a floating IP outside the floating ranges": lambda: firewall.apply_firewall(
        edit(floating_ips__0__address="10.250.0.200")),
    "a protocol that is a target": lambda: firewall.apply_firewall(
        edit(groups__all__rules__0__protocol="all -j ACCEPT")),
    "a bridge that is a wildcard": lambda: firewall.apply_firewall(
        edit(networks__net1__bridge="brca+")),
    # dnsmasq: the agent's options on the agent's bridge only
    "dnsmasq as an argv": lambda: priv.start_dnsmasq(
        "net1", ["dnsmasq", "--dhcp-script=/bin/sh"], 86400),
    "dnsmasq on a bridge not the agent's": lambda: priv.start_dnsmasq(
        "net1", net_doc(bridge="brcaother"), 86400),
    "dnsmasq at an address its bridge does not hold": lambda: priv.start_dnsmasq(
        "net1", net_doc(host_address="10.9.0.77"), 86400),
    "dnsmasq with an unknown option": lambda: priv.start_dnsmasq(
        "net1", {**net_doc(), "dhcp_script": "/bin/sh"}, 86400),
    "dnsmasq on the management subnet": lambda: priv.start_dnsmasq(
        "net1", net_doc(cidr="10.250.0.0/24", gateway=None, host_address="10.250.0.11"),
        86400),
    "dnsmasq for a network id that climbs": lambda: priv.start_dnsmasq(
        "../../etc", net_doc(), 86400),
    "signal through a path": lambda: priv.signal_dnsmasq("../../..", "TERM"),
    "a signal other than HUP or TERM": lambda: priv.signal_dnsmasq("n1", "KILL"),
}
own = [lambda: priv.create_link("brcatest", "net1", "bridge"),
       lambda: priv.set_master("uplink0", "brcatest"),
       lambda: priv.address("add", "brcatest", "10.9.0.1/24"),
       lambda: priv.address("add", "pub0", "203.0.113.10/32"),
       lambda: firewall.apply_firewall(STATE),
       lambda: print(json.dumps({"tail": logs.console_tail(guest, 100)}), file=sys.stderr)]
result = {}
if mode == "hostile":
    for what, call in hostile.items():
        try:
            call()
            result[what] = "accepted"
        except Refused as e:
            result[what] = f"refused: {e}"
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
    """A host in miniature: a foreign device on a management subnet, an
    uplink, and the public interface."""
    name = "ca-priv-" + uuid.uuid4().hex[:8]
    subprocess.run(["ip", "netns", "add", name], check=True)
    for dev in ("foreign0", "uplink0", "pub0"):
        subprocess.run(["ip", "-n", name, "link", "add", dev, "type", "veth", "peer", "name",
                        dev[:-1] + "1"], check=True)      # no dummy driver here
    for dev, cidr in (("foreign0", "10.250.0.11/24"), ("pub0", "203.0.113.1/24")):
        subprocess.run(["ip", "-n", name, "addr", "add", cidr, "dev", dev], check=True)
    subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
    yield name
    subprocess.run(["ip", "netns", "del", name], check=True)


def snapshot(ns):
    def run(*argv):
        return subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True,
                              text=True, check=True).stdout
    return {"links": run("ip", "-o", "link", "show"), "addrs": run("ip", "-o", "addr", "show"),
            "ipt": [x for x in run("iptables-save").splitlines() if not x.startswith("#")],
            "ip6t": [x for x in run("ip6tables-save").splitlines() if not x.startswith("#")],
            "nft": run("nft", "list", "ruleset")}


GUEST = "00000000-0000-4000-8000-000000000001"


@pytest.fixture
def tmp_path():
    """A directory the agent's user can reach (pytest's are under a 0700 one)."""
    path = tempfile.mkdtemp(prefix="ca-priv-")
    os.chmod(path, 0o755)
    yield pathlib.Path(path)
    shutil.rmtree(path, ignore_errors=True)


def run_in(ns, tmp_path, mode, as_root=False):
    """SCRIPT in ns, started as systemd starts the agent (its user, the
    ambient capabilities of the unit) or, as_root, as root."""
    state = tmp_path / "state"
    instances = state / "instances"
    if not instances.exists():
        _plant(state, instances, tmp_path)
    return _run_script(ns, state, instances, mode, as_root)


def _plant(state, instances, tmp_path):
    """The instances a hostile agent prepared: one with a real log (root's,
    0600, as virtlogd writes it), one whose log is a hard link to a root
    file, one whose directory is a symlink to /etc, one whose log is a
    FIFO, one where the script plants a symlink to /etc/shadow."""
    for n in ("1", "a", "c", "d"):
        (instances / f"00000000-0000-4000-8000-00000000000{n}").mkdir(parents=True)
    shutil.chown(state, "compute-agent")
    for d in [instances, *instances.iterdir()]:
        shutil.chown(d, "compute-agent")
    log = instances / GUEST / "console.log"
    log.write_text("TB: the guest's own line\n")
    os.chmod(log, 0o600)                                   # root's, as virtlogd's
    secret = tmp_path / "root-only"
    secret.write_text("root's secret\n")
    os.chmod(secret, 0o600)
    os.link(secret, instances / "00000000-0000-4000-8000-00000000000a" / "console.log")
    os.symlink("/etc", instances / "00000000-0000-4000-8000-00000000000b")
    os.mkfifo(instances / "00000000-0000-4000-8000-00000000000c" / "console.log")


def _run_script(ns, state, instances, mode, as_root):
    start = [] if as_root else [
        "setpriv", "--reuid=compute-agent", "--regid=compute-agent", "--init-groups",
        f"--inh-caps={AMBIENT}", f"--ambient-caps={AMBIENT}", f"--bounding-set=-all,{AMBIENT}"]
    out = subprocess.run(["ip", "netns", "exec", ns, *start, sys.executable, "-c", SCRIPT, mode,
                          str(state), str(instances), "compute-agent", GUEST], cwd=ROOT,
                         capture_output=True, text=True, env={**os.environ, "PYTHONPATH": ROOT})
    assert out.returncode == 0, out.stderr
    found = json.loads(out.stdout.splitlines()[-1])
    found["stderr"] = out.stderr
    return found


def mask(*names):
    return f"{sum(1 << CAPS[n] for n in names):016x}"


REASONS = {
    "console log symlinked to /etc/shadow": "symbolic links",
    "console log hard-linked to a root file": "has 2 links",
    "instance directory symlinked to /etc": "symbolic links|Not a directory",
    "console log that is a FIFO": "not a regular file",
    "a bridge address in the management subnet": "overlaps 10.250.0.0/24",
    "any address on an uplink": "only on the agent's bridges",
    "DNAT of a floating IP to the management network": "not a fixed IPv4 address",
    "a network on the management subnet": "overlaps 10.250.0.0/24",
    "dnsmasq at an address its bridge does not hold": "not an address of brcatest",
    "vxlan from another local address": "only tunnel_local_ip",
    "fdb peer on loopback": "unicast address",
    "dnsmasq for a network id that climbs": "network id",
}


def test_hostile_arguments_are_refused_and_change_nothing(netns, tmp_path):
    run_in(netns, tmp_path, "own")          # the agent's bridge, address and rules
    before = snapshot(netns)
    found = run_in(netns, tmp_path, "hostile")
    result = found["result"]
    assert len(result) == 44
    assert {what: r for what, r in result.items() if not r.startswith("refused")} == {}
    for what, reason in REASONS.items():
        assert re.search(reason, result[what]), (what, result[what])
    assert snapshot(netns) == before
    assert "root:" not in found["stderr"] and "secret" not in found["stderr"]


def test_the_agents_own_requests_work(netns, tmp_path):
    found = run_in(netns, tmp_path, "own")
    after = snapshot(netns)
    assert "brcatest" in after["links"] and "master brcatest" in after["links"]
    assert "10.9.0.1/24" in after["addrs"] and "203.0.113.10/32" in after["addrs"]
    assert "-A INPUT -j ca-input" in after["ipt"] and "-A FORWARD -j ca-forward" in after["ipt"]
    assert "-A ca-to-host -j DROP" in after["ipt"]
    assert "table bridge compute_agent" in after["nft"]
    assert "TB: the guest's own line" in found["stderr"]          # its own log still reads


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
