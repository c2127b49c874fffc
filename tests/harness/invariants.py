"""What must hold on a test bed after any crash, once the agents are back:
the instance settles (done, or ERROR with a fault); no domain without a
record and no running record without its domain; nothing at all of an
offloaded instance on its host; at most one live record of it (both
hosts' while it is resized); every migration row of it final (or
finished, while resized); the same guest never runs on two hosts, sampled
all through the operation and the restart (Watch), not once after; no
files left but the instances' own; and the last tick the guest printed
before the kill is on its disk, whatever boots it again (ticks_kept).

The decisions are pure functions over what was sampled (ticks_verdict,
two_owners, record_problems, migration_problems), each shown failing on
the data of a broken build in tests/unit/test_invariants.py."""
import os
import re
import threading
import time

from tests.harness import guest
from tests.harness.agent import wait_until

FINAL = {"confirmed", "reverted", "completed", "error", "done"}
WAIT = "wait"

RUNNING = ("active", "paused", "rescued")


def records(bed, uuid):
    """{host name: the host's record of uuid (deleted ones too) or None}."""
    return {name: h.agent.find(uuid) for name, h in bed.hosts.items()}


def wait_settled(bed, uuid, timeout=240):
    """Wait until no host's record of uuid is in a task state; the records."""
    def settled():
        recs = records(bed, uuid)
        return all(r is None or r["task_state"] is None for r in recs.values()) and recs
    return wait_until(settled, timeout, 0.5, f"{uuid} to settle on every host")


def domains(host, active_only=False):
    names = host.virsh("list", "--name", *([] if active_only else ["--all"])).split()
    return {n[len("instance-"):] for n in names if n.startswith("instance-")}


def live(rec, host_agent):
    return rec is not None and rec["vm_state"] != "deleted" and rec["host"] == host_agent.host


def running_on(host, uuid):
    return uuid in {n[len("instance-"):] for n in host.virsh(
        "list", "--name", "--state-running").split() if n.startswith("instance-")}


def two_owners(samples):
    """The first moment a guest ran on two hosts at once, from samples
    [(time, host, running?)] taken one host after another, or None (pure):
    running on Y while the samples of X just before and just after both
    say it runs on X means both ran then (a guest that moved runs on its
    source, then on its destination, never back and forth)."""
    after, latest = [None] * len(samples), {}
    for i in range(len(samples) - 1, -1, -1):     # each host's next sample, from i on
        after[i] = dict(latest)
        latest[samples[i][1]] = samples[i][2]
    latest = {}
    for i, (when, host, running) in enumerate(samples):
        if running:
            for other, was in latest.items():
                if other != host and was and after[i].get(other):
                    return f"ran on {host} and on {other} at once (t={when:.1f})"
        latest[host] = running
    return None


class Watch:
    """Samples, one host after another every interval, where uuid runs and
    what its consoles show, from start() until stop(): stop() says whether
    it ever ran on two hosts at once (two_owners); mark() is the last tick
    any console printed up to now (seen()), which an operation that moves
    the console away (a cold migration's _resize) cannot hide."""

    def __init__(self, bed, uuid, interval=0.2):
        self.bed, self.uuid, self.interval = bed, uuid, interval
        self.samples, self._stop = [], threading.Event()
        self._seen = {"tick": 0, "up": ""}
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _look(self):
        now = seen(self.bed, self.uuid)
        with self._lock:
            self._seen = later(self._seen, now)

    def mark(self):
        self._look()
        with self._lock:
            return dict(self._seen)

    def start(self):
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            for name, h in self.bed.hosts.items():
                try:
                    self.samples.append((time.monotonic(), name, running_on(h, self.uuid)))
                except Exception:      # noqa: BLE001 - a libvirtd restarting: no sample
                    pass
            self._look()
            self._stop.wait(self.interval)

    def stop(self):
        self._stop.set()
        self._thread.join(10)
        return two_owners(self.samples)


def record_problems(recs):
    """What is wrong with the hosts' records of one instance, settled
    ({host: record or None, with live: whether it is that host's live
    record}), or [] (pure): at most one live record, except the two of a
    resize awaiting its confirm or revert."""
    live_ones = {h: r for h, r in recs.items() if r is not None and r.get("live")}
    if len(live_ones) > 1 and {r["vm_state"] for r in live_ones.values()} != {"resized"}:
        return [f"live records on {sorted(live_ones)}: "
                f"{ {h: r['vm_state'] for h, r in live_ones.items()} }"]
    return []


def migration_problems(rows, resized):
    """Migration rows of one instance ({host: [rows]}) not final once it
    settled (pure): finished only while it is resized."""
    return [f"{h}: migration {m['id']} is {m['status']}" for h, ms in rows.items() for m in ms
            if m["status"] not in FINAL and not (m["status"] == "finished" and resized)]


def check(bed, uuid, watch=None):
    """Assert the invariants for uuid on every host; the host the guest
    runs on (None if it runs nowhere).  watch: the Watch that sampled the
    hosts through the operation and the restart."""
    recs = wait_settled(bed, uuid)
    if watch is not None:
        both = watch.stop()
        assert both is None, f"{uuid} {both}"
    running = [name for name, h in bed.hosts.items() if uuid in domains(h, active_only=True)]
    assert len(running) <= 1, f"{uuid} runs on {running}"
    marked = {name: None if r is None else dict(r, live=live(r, bed.hosts[name].agent))
              for name, r in recs.items()}
    assert not record_problems(marked), record_problems(marked)
    rows = {name: h.agent.api.list_migrations(h.agent.host, instance_uuid=uuid)
            for name, h in bed.hosts.items()}
    resized = any(r and r["live"] and r["vm_state"] == "resized" for r in marked.values())
    assert not migration_problems(rows, resized), migration_problems(rows, resized)
    for name, h in bed.hosts.items():
        rec = recs[name]
        mine = live(rec, h.agent)
        if mine and rec["vm_state"] == "error":
            assert rec["fault"], f"{name}: ERROR without a fault"
        if uuid in domains(h):
            assert mine, f"{name}: domain of {uuid} without a record here ({rec})"
        if mine and rec["vm_state"] in RUNNING:
            assert name in running, f"{name}: record {rec['vm_state']} but no guest runs"
        offloaded = mine and rec["vm_state"] == "shelved_offloaded"
        if offloaded:
            assert uuid not in domains(h), f"{name}: offloaded {uuid} still has a domain"
        _check_files(h, uuid, rec if mine and not offloaded else None)
    return running[0] if running else None


def _check_files(host, uuid, rec):
    """Only the instance's own files, and only where it lives: its
    directory, and the copy a resize sets aside while it is resized."""
    path = host.agent.instances_path
    names = set(os.listdir(path)) if os.path.isdir(path) else set()
    assert not {n for n in names if n.startswith(".")}, f"{host.name}: temp files {names}"
    has_dir, aside = uuid in names, uuid + "_resize" in names
    if rec is None:
        assert not has_dir, f"{host.name}: files of {uuid} without a record here"
    if aside:
        assert rec is not None and rec["vm_state"] == "resized", \
            f"{host.name}: {uuid}_resize left without a resize to confirm"


TICK = re.compile(r"^TB: tick (\d+) up=([0-9.]+)", re.M)


def last_tick(console):
    """(number, uptime text) of the console's last tick line, or (0, "")."""
    ticks = TICK.findall(console)
    return (int(ticks[-1][0]), ticks[-1][1]) if ticks else (0, "")


def later(a, b):
    """The later of two seen() results (the higher tick, then the uptime)."""
    return max(a, b, key=lambda x: (x["tick"], float(x["up"] or 0)))


def seen(bed, uuid):
    """The last tick any host's console of uuid printed: {"tick": number,
    "up": the guest's uptime then}, which names that boot's tick."""
    best = (0, "")
    for h in bed.hosts.values():
        try:
            console = h.agent.console(uuid)
        except Exception:          # noqa: BLE001 - no console of it on that host
            continue
        best = max(best, last_tick(console), key=lambda t: (t[0], float(t[1] or 0)))
    return {"tick": best[0], "up": best[1]}


def ticks_verdict(console, before, up):
    """Whether a guest kept the ticks it printed before the kill (pure):
    None when it did, WAIT when its console cannot tell yet, else what was
    lost.  console: its console on the host it runs on now; before, up:
    the last tick printed at the kill and the guest's uptime in it (a
    tick is printed before it is written: the disk has before - 1).
    - the boot that printed it still runs here (its line is in this
      console's last boot): it must tick on;
    - a console with no boot in it (the guest came by live migration): it
      must tick on, past before, later in its life than up;
    - any other boot is a new one, even in a console made anew: it must
      have read a disk-tick of at least before - 1 from its disk."""
    tail = console.rsplit(guest.BOOT_MARKER, 1)[-1]
    ticks = [(int(n), float(u)) for n, u in TICK.findall(tail)]
    if (str(before), up) in TICK.findall(tail):
        return None if ticks[-1][0] > before else WAIT
    if guest.BOOT_MARKER not in console:
        later = [n for n, u in ticks if n > before and up and u > float(up)]
        return None if later else WAIT
    if not ticks:
        return WAIT                 # booting: the disk-tick line comes first
    found = re.findall(r"^TB: disk-tick=(\d+)", tail, re.M)
    if not found:
        return (f"booted again from a disk without its ticks ({before} printed before "
                "the kill): a fresh disk, not its own")
    if int(found[0]) < before - 1:
        return f"disk-tick {found[0]} < {before - 1}: synced ticks lost"
    return None


def ticks_kept(host, uuid, at_kill):
    """Assert the guest on host kept what it printed before the kill
    (at_kill: seen() or Watch.mark() then)."""
    def verdict():
        v = ticks_verdict(host.agent.console(uuid), at_kill["tick"], at_kill["up"])
        return v != WAIT and (v or "kept")
    v = wait_until(verdict, 120, 0.5, f"{uuid}: ticks after the crash")
    assert v == "kept", f"{uuid} on {host.name}: {v}"
